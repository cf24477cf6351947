package authz

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizeRedirectURIExactMatch asks the authorization endpoint to
// send the browser to near misses of a registered redirect URI. Each gets
// Postern's error page (400, "Invalid redirect") and no Location at all:
// RFC 6749 §4.1.2.1 forbids redirecting to an unverified URI, and Postern
// compares the string exactly, also for loopback URIs, whose port RFC 8252
// §7.3 (and fosite) would let vary.
func TestAuthorizeRedirectURIExactMatch(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice") // a signed-in user would be redirected at once
	cases := []struct{ client, redirect string }{
		{"spa", spaCallback + ".evil"},
		{"spa", spaCallback + ".evil.example/x"},
		{"spa", spaCallback + "?x=1"},
		{"spa", spaCallback + "/.."},
		{"spa", spaCallback + "/../cb"},
		{"spa", spaCallback + "#frag"},
		{"spa", spaCallback + "/"},
		{"spa", "https://app.example.com/CB"},
		{"spa", "https://APP.example.com/cb"},
		{"spa", "https://app.example.com:443/cb"},
		{"spa", "http://app.example.com/cb"},
		{"spa", "https://app.example.com/%63b"},
		{"spa", "https://evil@app.example.com/cb"},
		{"spa", webCallback}, // registered, for another client
		// Loopback: another port, or the same port with something else.
		{"native", "http://127.0.0.1:9999/cb"},
		{"native", "http://127.0.0.1/cb"},
		{"native", "http://[::1]:9999/cb"},
		{"native", "http://[::1]/cb"},
		{"native", "http://evil@127.0.0.1:9999/cb"},
		{"native", "http://localhost:8080/cb"},
		{"native", native4 + "/"},
		{"native", native4 + "?x=1"},
	}
	for _, tc := range cases {
		t.Run(tc.client+" "+tc.redirect, func(t *testing.T) {
			r := b.authorize(codeParams(tc.client, tc.redirect))
			if r.location != "" {
				t.Fatalf("redirected to %q", r.location)
			}
			if r.status != http.StatusBadRequest || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, "<h1>Invalid redirect</h1>") {
				t.Errorf("want Postern's 400 \"Invalid redirect\" page, got %s", r)
			}
		})
	}
	// The registered URIs themselves work, loopback ones on their port.
	for _, tc := range []struct{ client, redirect string }{{"spa", spaCallback}, {"native", native4}, {"native", native6}} {
		b.code(codeParams(tc.client, tc.redirect))
	}
}

// TestTokenRedirectURIMismatch redeems codes with a redirect_uri other than
// the one the authorization request named (RFC 6749 §4.1.3): invalid_grant.
// The code stays unredeemed, so the control exchange after the refusals
// gets tokens.
func TestTokenRedirectURIMismatch(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	for _, tc := range []struct{ client, asked, presented string }{
		{"spa", spaCallback, spaCallback + "/"},
		{"spa", spaCallback, spaCallback + "?x=1"},
		{"spa", spaCallback, "https://app.example.com/CB"},
		{"native", native4, "http://127.0.0.1:9999/cb"},
		{"native", native4, native6},
	} {
		code := b.code(codeParams(tc.client, tc.asked))
		status, body := f.exchange(t, tc.client, code, tc.presented, ctlVerifier)
		wantOAuthError(t, "redirect_uri "+tc.presented, status, body, http.StatusBadRequest, "invalid_grant")
		// A request that named redirect_uri must have it repeated.
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {tc.client}, "code": {code}, "code_verifier": {ctlVerifier}}
		status, body, _ = f.tokenCall(t, pathToken, form, "", "")
		wantOAuthError(t, "redirect_uri omitted", status, body, http.StatusBadRequest, "invalid_grant")
		if status, body := f.exchange(t, tc.client, code, tc.asked, ctlVerifier); status != http.StatusOK {
			t.Errorf("control exchange with %s: %d %v", tc.asked, status, body)
		}
	}
}
