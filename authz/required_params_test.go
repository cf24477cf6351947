package authz

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/postern-auth/postern/identity"
)

// TestMissingGrantParameter: a grant without the parameter it cannot do
// without is a malformed request (RFC 6749 §5.2 invalid_request), not a bad
// grant; client authentication and the client's grant registration are
// still judged first.
func TestMissingGrantParameter(t *testing.T) {
	cases := []struct {
		name   string
		form   url.Values
		client string
		secret string
		status int
		code   string
	}{
		{"refresh_token missing", url.Values{"grant_type": {"refresh_token"}}, "mobile", envSecret, 400, "invalid_request"},
		{"refresh_token empty", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {""}}, "mobile", envSecret, 400, "invalid_request"},
		{"code missing", url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {webappRedir}}, "webapp", envSecret, 400, "invalid_request"},
		{"code missing, client not registered for the grant", url.Values{"grant_type": {"authorization_code"}}, "mobile", envSecret, 400, "unauthorized_client"},
		{"refresh_token missing, client not registered for the grant", url.Values{"grant_type": {"refresh_token"}}, "billing", envSecret, 400, "unauthorized_client"},
		{"refresh_token missing, wrong secret", url.Values{"grant_type": {"refresh_token"}}, "mobile", "wrong", 401, "invalid_client"},
		{"unknown refresh token stays invalid_grant", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"pr_nope"}}, "mobile", envSecret, 400, "invalid_grant"},
		{"unknown code stays invalid_grant", url.Values{"grant_type": {"authorization_code"}, "code": {"pc_nope"}, "redirect_uri": {webappRedir}}, "webapp", envSecret, 400, "invalid_grant"},
	}
	e := newOutcomeEnv(t, identity.ThrottleOptions{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := tokenRequest(c.form, "")
			req.SetBasicAuth(c.client, c.secret)
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if b := decodeToken(t, rec); rec.Code != c.status || b.Error != c.code {
				t.Errorf("answer %d %q (%s), want %d %q", rec.Code, b.Error, b.Description, c.status, c.code)
			}
		})
	}
}
