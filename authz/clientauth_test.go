package authz

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
)

// TestMalformedAuthorization: an Authorization header that is not usable
// HTTP Basic is a failed client authentication (RFC 6749 §2.3.1, §5.2):
// 401 invalid_client with a Basic challenge, at every endpoint where a
// client authenticates, even when the body carries credentials too.
func TestMalformedAuthorization(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	headers := map[string]string{
		"bearer scheme":           "Bearer " + b64([]byte("billing:"+envSecret)),
		"digest scheme":           `Digest username="billing"`,
		"bad base64":              "Basic !!!not-base64!!!",
		"no colon":                "Basic " + b64([]byte("billing")),
		"not form-encoded id":     "Basic " + b64([]byte("bill%zzing:"+envSecret)),
		"not form-encoded secret": "Basic " + b64([]byte("billing:"+envSecret+"%zz")),
		"scheme only":             "Basic",
	}
	bodies := map[string]url.Values{
		"token":            {"grant_type": {"client_credentials"}},
		"token, post auth": {"grant_type": {"client_credentials"}, "client_id": {"poster"}, "client_secret": {envSecret}},
		"introspect":       {"token": {"x"}},
		"introspect, post": {"token": {"x"}, "client_id": {"poster"}, "client_secret": {envSecret}},
		"revoke":           {"token": {"x"}},
		"revoke, post":     {"token": {"x"}, "client_id": {"poster"}, "client_secret": {envSecret}},
	}
	paths := map[string]string{"token": pathToken, "introspect": pathIntrospect, "revoke": pathRevoke}
	e := newOutcomeEnv(t, identity.ThrottleOptions{})
	e.srv.clients["poster"] = &clients.Client{ID: "poster", SecretHash: []byte(envSecret), GrantTypes: []string{clients.GrantClientCredentials},
		Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretPost, ResourceServer: true}
	for hname, header := range headers {
		for bname, body := range bodies {
			t.Run(hname+"/"+bname, func(t *testing.T) {
				path := paths[strings.Split(bname, ",")[0]]
				req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", header)
				rec := httptest.NewRecorder()
				e.srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"invalid_client"`) {
					t.Errorf("answer %d %s, want 401 invalid_client", rec.Code, rec.Body)
				}
				if ch := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Basic ") {
					t.Errorf("WWW-Authenticate = %q, want a Basic challenge", ch)
				}
			})
		}
	}
	// The same requests with good credentials succeed: the refusal is the
	// header's, not the endpoint's.
	req := tokenRequest(url.Values{"grant_type": {"client_credentials"}}, "billing")
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("good Basic credentials: %d %s", rec.Code, rec.Body)
	}
	rec = e.post(url.Values{"grant_type": {"client_credentials"}, "client_id": {"poster"}, "client_secret": {envSecret}}, "")
	if rec.Code != http.StatusOK {
		t.Errorf("good client_secret_post credentials: %d %s", rec.Code, rec.Body)
	}
}
