package authz

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/postern-auth/postern/clients"
)

// TestCORSForBrowserApps: the endpoints a single-page app fetches answer
// CORS for the origin of a public client's redirect URI (the fixture's
// "firstparty", https://app.example.com/cb) and for no other, never with
// credentials; the others (introspection, for resource servers) do not.
func TestCORSForBrowserApps(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	const origin = "https://app.example.com"
	do := func(method, path, from string, preflight bool, body url.Values) *httptest.ResponseRecorder {
		t.Helper()
		var req *http.Request
		if body != nil {
			req = httptest.NewRequest(method, path, strings.NewReader(body.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("billing", f.secret)
		} else {
			req = httptest.NewRequest(method, path, nil)
		}
		req.Header.Set("Origin", from)
		if preflight {
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
		}
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		return rec
	}

	for _, path := range []string{pathToken, pathRevoke, pathUserinfo, pathJWKS, "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		rec := do(http.MethodOptions, path, origin, true, nil)
		if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("preflight %s: status %d, Access-Control-Allow-Origin %q", path, rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
		}
		if !strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") || rec.Header().Get("Access-Control-Allow-Methods") == "" {
			t.Errorf("preflight %s: allowed headers %q, methods %q", path, rec.Header().Get("Access-Control-Allow-Headers"), rec.Header().Get("Access-Control-Allow-Methods"))
		}
		if v := rec.Header().Get("Access-Control-Allow-Credentials"); v != "" {
			t.Errorf("preflight %s: Access-Control-Allow-Credentials %q", path, v)
		}
		// Another origin, or the same host on another port or scheme.
		for _, other := range []string{"https://evil.example", "https://app.example.com:8443", "http://app.example.com", "null"} {
			rec := do(http.MethodOptions, path, other, true, nil)
			if rec.Code != http.StatusForbidden || rec.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("preflight %s from %s: status %d, Access-Control-Allow-Origin %q", path, other, rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
			}
		}
	}
	// Introspection is for resource servers, never a page.
	if rec := do(http.MethodOptions, pathIntrospect, origin, true, nil); rec.Code == http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("introspection preflight: status %d, Access-Control-Allow-Origin %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
	}

	// The actual requests: answered as usual, readable by the allowed page.
	rec := do(http.MethodPost, pathToken, origin, false, url.Values{"grant_type": {"client_credentials"}})
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != origin || !strings.Contains(rec.Header().Get("Vary"), "Origin") {
		t.Errorf("token: status %d, Access-Control-Allow-Origin %q, Vary %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"), rec.Header().Get("Vary"))
	}
	rec = do(http.MethodPost, pathToken, "https://evil.example", false, url.Values{"grant_type": {"client_credentials"}})
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("token from another origin: status %d, Access-Control-Allow-Origin %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
	}
	rec = do(http.MethodGet, "/.well-known/openid-configuration", origin, false, nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("discovery: status %d, Access-Control-Allow-Origin %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"))
	}
	rec = do(http.MethodGet, pathUserinfo, origin, false, nil)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("Access-Control-Allow-Origin") != origin || !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Errorf("userinfo without token: status %d, Access-Control-Allow-Origin %q, exposed %q", rec.Code, rec.Header().Get("Access-Control-Allow-Origin"), rec.Header().Get("Access-Control-Expose-Headers"))
	}
}

// TestCORSOriginsOnlyPublicWebClients: a confidential client's redirect
// URI (its code goes to a server, which needs no CORS) and a native app's
// custom scheme give no origin.
func TestCORSOriginsOnlyPublicWebClients(t *testing.T) {
	got := corsOrigins(map[string]*clients.Client{
		"spa":    {ID: "spa", TokenEndpointAuthMethod: clients.AuthNone, RedirectURIs: []string{"http://127.0.0.1:3000/callback", "HTTPS://SPA.example.com/cb?x=1"}},
		"web":    {ID: "web", TokenEndpointAuthMethod: clients.AuthSecretBasic, RedirectURIs: []string{"https://web.example.com/cb"}},
		"native": {ID: "native", TokenEndpointAuthMethod: clients.AuthNone, RedirectURIs: []string{"com.example.app:/cb"}},
	})
	want := map[string]bool{"http://127.0.0.1:3000": true, "https://spa.example.com": true}
	if len(got) != len(want) {
		t.Errorf("origins %v, want %v", got, want)
	}
	for o := range want {
		if !got[o] {
			t.Errorf("origins %v lack %s", got, o)
		}
	}
}
