package authz

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestHintMustBeIDToken: the server's keys sign ID tokens, JWT access
// tokens and logout tokens alike; only an ID token is an id_token_hint.
// A user's JWT access token, or a logout token a client was sent, must
// not sign that user out without asking.
func TestHintMustBeIDToken(t *testing.T) {
	f := newFixture(t, FormatJWT)
	at := f.passwordGrant(t, "alice", "read").AccessToken
	if strings.Count(at, ".") != 2 {
		t.Fatalf("access token %q is not a JWT", at)
	}
	lt, err := f.srv.backchannel.logoutToken("mobile", "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	for name, hint := range map[string]string{"access token": at, "logout token": lt} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			f.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pathEndSession+"?"+url.Values{"id_token_hint": {hint}}.Encode(), nil))
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "did not issue") {
				t.Errorf("end session with a %s as id_token_hint: %d, want 400 refusing the hint\n%.400s", name, rec.Code, rec.Body)
			}
		})
	}
}
