package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// offboardingConfig: a trusted password client with refresh, an SPA, the
// introspecting rs, and users alice and bob (alice's password varies).
func offboardingConfig(alicePassword string, withAlice bool) string {
	users := `{"username": "bob", "password": "bob-password"}`
	if withAlice {
		users = fmt.Sprintf(`{"username": "alice", "password": %q}, `, alicePassword) + users
	}
	return fmt.Sprintf(`{
  "clients": [
    {"client_id": "rs", "client_secret": %q, "grant_types": ["client_credentials"], "resource_server": true},
    {"client_id": "mobile", "client_secret": "mobile-dev-secret-0123456789", "trusted": true, "grant_types": ["password", "refresh_token"], "scope": "read"},
    {"client_id": "spa", "client_name": "SPA", "token_endpoint_auth_method": "none", "trusted": true,
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read"}
  ],
  "users": [%s]
}`, reloadRSSecret, callbackURL, users)
}

// TestOffboarding: removing a user, or changing their password, in the
// configuration ends what they hold at once: refresh tokens, access tokens
// and the login session (RFC 9700 §4.14: revoke on credential change).
func TestOffboarding(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after string
	}{
		{"user removed", offboardingConfig("", false)},
		{"password changed", offboardingConfig("a-new-password-0123", true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, writeConfig(t, offboardingConfig("alice-password", true)), "")
			f := &userFixture{srv: srv, rsPass: reloadRSSecret}
			ctx := context.Background()
			mobile := f.oauthConfig("mobile", "mobile-dev-secret-0123456789")
			alice, err := mobile.PasswordCredentialsToken(ctx, "alice", "alice-password")
			if err != nil {
				t.Fatal(err)
			}
			bob, err := mobile.PasswordCredentialsToken(ctx, "bob", "bob-password")
			if err != nil {
				t.Fatal(err)
			}
			b := newBrowser(t)
			spa := f.oauthConfig("spa", "", "read")
			f.codeFlow(t, b, spa, "alice", "alice-password")

			srv.reload(tc.after)
			eventually(t, "the reload to apply", srv.logs, func() bool {
				return f.introspect(t, alice.AccessToken)["active"] == false
			})
			alice.Expiry = time.Now().Add(-time.Minute)
			if _, err := mobile.TokenSource(ctx, alice).Token(); !isOAuthError(err, "invalid_grant") {
				t.Errorf("alice's refresh after offboarding: %v, want invalid_grant", err)
			}
			// Her browser session no longer mints codes: the login page again.
			p := b.get(spa.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
			if p.status != http.StatusOK || !strings.Contains(p.body, `name="password"`) {
				t.Errorf("authorize with alice's old session: %d %q, want the login page", p.status, p.location)
			}
			if r := b.get(f.srv.URL + "/account"); !strings.Contains(r.body, `name="password"`) && r.status != http.StatusOK {
				t.Errorf("/account with the old session: %d", r.status)
			}
			// Bob is untouched.
			if f.introspect(t, bob.AccessToken)["active"] != true {
				t.Error("bob's token died with alice's")
			}
		})
	}
}

// TestRefreshChainHasAbsoluteLifetime: rotation does not extend a grant
// past refresh_token_ttl from the moment the user authorized it.
func TestRefreshChainHasAbsoluteLifetime(t *testing.T) {
	cfg := strings.Replace(offboardingConfig("alice-password", true), `{
  "clients"`, `{
  "tokens": {"refresh_token_ttl": "3s", "access_token_ttl": "1s"},
  "keys": {"rotation_overlap": "1h"},
  "clients"`, 1)
	srv := startServer(t, writeConfig(t, cfg), "")
	f := &userFixture{srv: srv, rsPass: reloadRSSecret}
	ctx := context.Background()
	mobile := f.oauthConfig("mobile", "mobile-dev-secret-0123456789")
	tok, err := mobile.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Keep rotating; the chain must end about 3s after it began.
	var last error
	for time.Since(start) < 6*time.Second {
		tok.Expiry = time.Now().Add(-time.Minute)
		next, err := mobile.TokenSource(ctx, tok).Token()
		if err != nil {
			last = err
			break
		}
		tok = next
		time.Sleep(500 * time.Millisecond)
	}
	if !isOAuthError(last, "invalid_grant") {
		t.Fatalf("a refresh chain rotated for %s without ending (last error %v)", time.Since(start).Round(time.Second), last)
	}
}
