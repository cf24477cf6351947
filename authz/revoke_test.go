package authz

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/postern-auth/postern/identity"
)

// TestRevocationEndsGrantOnce: revoking a token (RFC 7009) ends its whole
// grant, access and refresh tokens alike, with one store write: fosite asks
// for the grant's refresh and access tokens to be revoked in turn, and the
// second ask must not cost a second write transaction.
func TestRevocationEndsGrantOnce(t *testing.T) {
	for _, hint := range []string{"", "refresh_token", "access_token"} {
		t.Run("hint="+hint, func(t *testing.T) {
			e := newOutcomeEnv(t, identity.ThrottleOptions{})
			rec := e.post(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}, "mobile")
			tok := decodeToken(t, rec)
			if rec.Code != http.StatusOK || tok.RefreshToken == "" {
				t.Fatalf("password grant: %d %s", rec.Code, rec.Body)
			}
			revoked := tok.RefreshToken
			if hint == "access_token" {
				revoked = tok.AccessToken
			}
			before := e.store.revokeGrantCalls()
			form := url.Values{"token": {revoked}}
			if hint != "" {
				form.Set("token_type_hint", hint)
			}
			req := httptest.NewRequest(http.MethodPost, pathRevoke, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("mobile", envSecret)
			rec = httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
			}
			if n := e.store.revokeGrantCalls() - before; n != 1 {
				t.Errorf("the revocation reached the store's RevokeGrant %d times, want 1", n)
			}
			// The grant is gone: neither token works any more.
			if rec := e.post(refreshForm(tok.RefreshToken), "mobile"); rec.Code != http.StatusBadRequest {
				t.Errorf("refresh after revocation: %d %s, want 400", rec.Code, rec.Body)
			}
			form = url.Values{"token": {tok.AccessToken}}
			req = httptest.NewRequest(http.MethodPost, pathIntrospect, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("mobile", envSecret)
			rec = httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":false`) {
				t.Errorf("introspection of the access token after revocation: %d %s, want active false", rec.Code, rec.Body)
			}
		})
	}
}
