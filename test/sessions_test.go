package test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Server-side ends of login sessions: a signed-out session cookie is dead
// wherever it was copied to, "sign out everywhere" ends every session of
// one user, and both survive a restart.

// signIn signs browser b in through the login page and returns its session
// cookie (a copy, as a thief would take it).
func signIn(t *testing.T, srvURL string, b *browser, user, pass string) *http.Cookie {
	t.Helper()
	p := b.login(srvURL, b.get(srvURL+"/login"), user, pass)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Signed in as <strong>"+user+"</strong>") {
		t.Fatalf("sign-in as %s did not land on the account page: %d\n%s", user, p.status, p.body)
	}
	u, _ := url.Parse(srvURL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "postern_session" {
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatalf("no session cookie after signing in as %s", user)
	return nil
}

// replay sends a GET with only the given cookie from a fresh client that
// does not follow redirects.
func replay(t *testing.T, u string, c *http.Cookie) page {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.AddCookie(c)
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

// accountOpens reports whether the cookie opens the account page; the
// alternative is a redirect to the login page.
func accountOpens(t *testing.T, srvURL string, c *http.Cookie) bool {
	t.Helper()
	p := replay(t, srvURL+"/account", c)
	switch {
	case p.status == http.StatusOK && strings.Contains(p.body, "Signed in as"):
		return true
	case p.status == http.StatusSeeOther && p.location == "/login":
		return false
	}
	t.Fatalf("/account with a replayed cookie: %d to %q\n%s", p.status, p.location, p.body)
	return false
}

// postAccountForm loads the account page in b and posts its CSRF token to
// path, following the redirect.
func postAccountForm(t *testing.T, srvURL string, b *browser, path string) page {
	t.Helper()
	p := b.get(srvURL + "/account")
	if p.status != http.StatusOK {
		t.Fatalf("/account: %d\n%s", p.status, p.body)
	}
	return b.post(srvURL+path, url.Values{"csrf_token": {formFields(t, p).Get("csrf_token")}})
}

func TestSignedOutCookieIsDead(t *testing.T) {
	f := newAccountFixture(t)
	spa := f.oauthConfig("spa", "", "read")
	authURL := spa.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	alice := newBrowser(t)
	stolen := signIn(t, f.srv.URL, alice, "alice", "alice-password")

	// Before the sign-out the copy is as good as the original: the account
	// page opens, and the authorization request skips the login page.
	if !accountOpens(t, f.srv.URL, stolen) {
		t.Fatal("the copied cookie does not work even before the sign-out")
	}
	if p := replay(t, authURL, stolen); !isConsentPage(p) {
		t.Fatalf("authorize with the live cookie: want the consent page, got %d\n%s", p.status, p.body)
	}

	if p := postAccountForm(t, f.srv.URL, alice, "/logout"); !isLoginPage(p) {
		t.Fatalf("sign out did not end on the login page: %d\n%s", p.status, p.body)
	}
	if accountOpens(t, f.srv.URL, stolen) {
		t.Fatal("the copied cookie still opens the account page after sign out")
	}
	if p := replay(t, authURL, stolen); !isLoginPage(p) {
		t.Fatalf("authorize with the signed-out cookie: want the login page, got %d\n%s", p.status, p.body)
	}
	// The browser that signed out signs in again as usual.
	again := signIn(t, f.srv.URL, alice, "alice", "alice-password")
	if !accountOpens(t, f.srv.URL, again) {
		t.Error("a new session after the sign-out does not work")
	}
}

func TestSignOutEverywhere(t *testing.T) {
	f := newAccountFixture(t)
	laptop, phone, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	laptopCookie := signIn(t, f.srv.URL, laptop, "alice", "alice-password")
	phoneCookie := signIn(t, f.srv.URL, phone, "alice", "alice-password")
	signIn(t, f.srv.URL, bob, "bob", "bob-password")

	p := postAccountForm(t, f.srv.URL, laptop, "/account/sessions/end-all")
	if !isLoginPage(p) {
		t.Fatalf("sign out everywhere did not end on the login page: %d\n%s", p.status, p.body)
	}
	if p := phone.get(f.srv.URL + "/account"); !isLoginPage(p) {
		t.Errorf("alice's other browser is still signed in: %d\n%s", p.status, p.body)
	}
	for name, c := range map[string]*http.Cookie{"laptop": laptopCookie, "phone": phoneCookie} {
		if accountOpens(t, f.srv.URL, c) {
			t.Errorf("a copy of alice's %s cookie still works", name)
		}
	}
	if p := bob.get(f.srv.URL + "/account"); p.status != http.StatusOK || !strings.Contains(p.body, "Signed in as <strong>bob</strong>") {
		t.Errorf("bob's session ended too: %d\n%s", p.status, p.body)
	}

	// Alice signs in again at once: the new session holds, and the page
	// tells her what happened.
	signIn(t, f.srv.URL, phone, "alice", "alice-password")
	p = phone.get(f.srv.URL + "/account")
	if p.status != http.StatusOK || !strings.Contains(p.body, "You signed out on every device") {
		t.Errorf("the account page does not list the event: %d\n%s", p.status, p.body)
	}
	if p := laptop.get(f.srv.URL + "/account"); !isLoginPage(p) {
		t.Errorf("the laptop is signed in again without signing in: %d", p.status)
	}
}

func TestSessionEndsSurviveRestart(t *testing.T) {
	f := newAccountFixture(t)
	srvURL := f.srv.URL
	signedOut, stays, bob := newBrowser(t), newBrowser(t), newBrowser(t)
	revoked := signIn(t, srvURL, signedOut, "alice", "alice-password")
	live := signIn(t, srvURL, stays, "alice", "alice-password")
	bobCookie := signIn(t, srvURL, bob, "bob", "bob-password")
	if p := postAccountForm(t, srvURL, signedOut, "/logout"); !isLoginPage(p) {
		t.Fatalf("sign out: %d\n%s", p.status, p.body)
	}
	if p := postAccountForm(t, srvURL, bob, "/account/sessions/end-all"); !isLoginPage(p) {
		t.Fatalf("sign out everywhere: %d\n%s", p.status, p.body)
	}

	f.srv.Stop()
	srv := startServer(t, f.srv.Config, f.srv.DataDir)
	if accountOpens(t, srv.URL, revoked) {
		t.Error("after a restart the signed-out cookie works again")
	}
	if accountOpens(t, srv.URL, bobCookie) {
		t.Error("after a restart bob's session from before \"sign out everywhere\" works again")
	}
	// The control: a session nobody ended survives the restart, so the
	// two above fail for their revocation, not for a new cookie key.
	if !accountOpens(t, srv.URL, live) {
		t.Error("after a restart a live session no longer works")
	}
}
