package authz

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/postern-auth/postern/clients"
)

// FuzzRegistration sends fuzzed RFC 7591 documents, content types and
// bearer tokens to the registration endpoint and its RFC 7592 client URI:
// the JSON decoding and the metadata checks take strangers' bytes. Every
// answer must be a client error or a success, never a panic or a 500.
func FuzzRegistration(f *testing.F) {
	fx := newFixture(f, "opaque")
	const token = "fuzz-initial-access-token-0123456789012345"
	hash, err := clients.HashClientSecret(token)
	if err != nil {
		f.Fatal(err)
	}
	fx.srv.cfg.RegistrationTokenHash = []byte(hash)
	for _, s := range []struct{ method, id, ctype, auth, body string }{
		{http.MethodPost, "", "application/json", "Bearer " + token, `{"client_name":"x","grant_types":["client_credentials"]}`},
		{http.MethodPost, "", "application/json", "Bearer " + token, `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none","scope":"openid"}`},
		{http.MethodPost, "", "application/json; charset=utf-8", "Bearer " + token, `{"redirect_uris":"https://a.example/cb#f","grant_types":[1]}`},
		{http.MethodPost, "", "text/plain", "Bearer x", `{`},
		{http.MethodPut, "app-x", "application/json", "Bearer y", `{"client_id":"app-x"}`},
		{http.MethodGet, "billing", "", "Bearer " + token, ``},
		{http.MethodDelete, "app-%00", "", "bearer  ", ``},
	} {
		f.Add(s.method, s.id, s.ctype, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, method, id, ctype, auth, body string) {
		path := pathRegister
		switch method {
		case http.MethodGet, http.MethodPut, http.MethodDelete:
			path += "/" + id
		default:
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, "http://auth.example"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		fx.srv.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s answered %d: %s", method, path, rec.Code, rec.Body)
		}
	})
}
