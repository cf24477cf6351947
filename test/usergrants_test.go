package test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const callbackURL = "http://127.0.0.1:3000/callback"

// userGrantsConfig has the quickstart's public SPA, a confidential web app,
// a trusted first-party mobile app (password grant), an implicit legacy SPA,
// a machine client to introspect with, and alice and bob.
func userGrantsConfig(t *testing.T) (cfg, introspectSecret string) {
	secret, hash := newClientSecret(t)
	aliceHash := hashPassword(t, "alice-password")
	return fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m", "implicit_access_token_ttl": "5m"},
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "introspect", "resource_server": true},
    {"client_id": "spa", "client_name": "Example SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read write"},
    {"client_id": "web", "client_name": "Web App", "client_secret": "web-dev-secret-0123456789",
     "grant_types": ["authorization_code"], "redirect_uris": [%q], "scope": "read"},
    {"client_id": "mobile", "client_name": "Mobile", "client_secret": "mobile-dev-secret-0123456789", "trusted": true,
     "grant_types": ["password", "refresh_token"], "scope": "read write"},
    {"client_id": "firstparty", "client_name": "First party", "token_endpoint_auth_method": "none", "trusted": true,
     "grant_types": ["authorization_code"], "redirect_uris": [%q], "scope": "read"},
    {"client_id": "legacy", "client_name": "Legacy SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["implicit"], "redirect_uris": [%q], "scope": "read"}
  ],
  "users": [
    {"username": "alice", "password_hash": %q, "claims": {"email": "alice@example.com", "name": "Alice"}},
    {"username": "bob", "password": "bob-password"}
  ]
}`, hash, callbackURL, callbackURL, callbackURL, callbackURL, aliceHash), secret
}

func hashPassword(t *testing.T, pw string) string {
	t.Helper()
	out, errOut, code := runPostern(t, pw+"\n", "users", "hash")
	if code != 0 {
		t.Fatalf("postern users hash: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

type userFixture struct {
	srv    *server
	rsPass string
}

func newUserFixture(t *testing.T) *userFixture {
	cfg, secret := userGrantsConfig(t)
	return &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: secret}
}

// newUserFixtureWindow is newUserFixture with tokens.refresh_retry_window
// set ("0s": strict one-time refresh tokens).
func newUserFixtureWindow(t *testing.T, window string) *userFixture {
	cfg, secret := userGrantsConfig(t)
	with := strings.Replace(cfg, `"tokens": {`, `"tokens": {"refresh_retry_window": "`+window+`", `, 1)
	if with == cfg {
		t.Fatal("could not set refresh_retry_window in the fixture config")
	}
	return &userFixture{srv: startServer(t, writeConfig(t, with), ""), rsPass: secret}
}

func (f *userFixture) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	resp, body := postForm(t, f.srv.URL+"/oauth2/introspect", url.Values{"token": {token}}, "rs", f.rsPass)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: %d %v", resp.StatusCode, body)
	}
	return body
}

func (f *userFixture) oauthConfig(clientID, secret string, scopes ...string) *oauth2.Config {
	style := oauth2.AuthStyleInParams
	if secret != "" {
		style = oauth2.AuthStyleInHeader
	}
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, Scopes: scopes, RedirectURL: callbackURL,
		Endpoint: oauth2.Endpoint{AuthURL: f.srv.URL + "/oauth2/authorize", TokenURL: f.srv.URL + "/oauth2/token", AuthStyle: style},
	}
}

// browser is an HTTP client with a cookie jar that stops at the callback,
// like a user agent handing the redirect to the app.
type browser struct {
	t      *testing.T
	client *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, client: &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), callbackURL) {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

type page struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

func (b *browser) post(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// formFields returns the hidden fields of the page's form.
func formFields(t *testing.T, p page) url.Values {
	t.Helper()
	v := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(p.body, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	if v.Get("csrf_token") == "" {
		t.Fatalf("page has no CSRF field (status %d):\n%s", p.status, p.body)
	}
	return v
}

// login submits the login form on p.
func (b *browser) login(srvURL string, p page, user, pass string) page {
	b.t.Helper()
	if !strings.Contains(p.body, `name="password"`) {
		b.t.Fatalf("not a login page (status %d):\n%s", p.status, p.body)
	}
	f := formFields(b.t, p)
	f.Set("username", user)
	f.Set("password", pass)
	return b.post(srvURL+"/login", f)
}

func (b *browser) consent(srvURL string, p page, decision string, remember bool) page {
	b.t.Helper()
	if !strings.Contains(p.body, `name="decision"`) {
		b.t.Fatalf("not a consent page (status %d):\n%s", p.status, p.body)
	}
	f := formFields(b.t, p)
	f.Set("decision", decision)
	if remember {
		f.Set("remember", "yes")
	}
	return b.post(srvURL+"/consent", f)
}

// callback parses the redirect to the client.
func callback(t *testing.T, p page) url.Values {
	t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound {
		t.Fatalf("expected a redirect to the client, got %d:\n%s", p.status, p.body)
	}
	if !strings.HasPrefix(p.location, callbackURL) {
		t.Fatalf("redirect to %q, want the registered callback", p.location)
	}
	u, _ := url.Parse(p.location)
	if u.Fragment != "" {
		v, _ := url.ParseQuery(u.Fragment)
		return v
	}
	return u.Query()
}

func TestAuthorizationCodePKCEAndRefresh(t *testing.T) {
	f := newUserFixture(t)
	ctx := context.Background()
	conf := f.oauthConfig("spa", "", "read")
	verifier := oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()[:16]
	b := newBrowser(t)

	p := b.get(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
	if p.status != http.StatusOK {
		t.Fatalf("authorize: %d\n%s", p.status, p.body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"} {
		if p.header.Get(h) == "" {
			t.Errorf("login page lacks %s", h)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP = %q", csp)
	}
	p = b.login(f.srv.URL, p, "alice", "alice-password")
	if p.status != http.StatusOK || !strings.Contains(p.body, "Example SPA") {
		t.Fatalf("after login, want the consent page naming the client; got %d\n%s", p.status, p.body)
	}
	q := callback(t, b.consent(f.srv.URL, p, "allow", false))
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback query = %v", q)
	}

	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for a client registered for refresh_token")
	}
	info := f.introspect(t, tok.AccessToken)
	if info["active"] != true || info["sub"] != "alice" || info["client_id"] != "spa" || info["scope"] != "read" || info["email"] != "alice@example.com" {
		t.Errorf("introspection = %v", info)
	}

	// The code is single-use; a second exchange fails and revokes what
	// the first one issued (RFC 6749 §4.1.2).
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("code reuse: %v, want invalid_grant", err)
	}
	if f.introspect(t, tok.AccessToken)["active"] != false {
		t.Error("tokens issued from a reused code are still active")
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	f := newUserFixture(t)
	ctx := context.Background()
	conf := f.oauthConfig("spa", "", "read", "write")
	tok := f.authorize(t, conf)

	// Rotate: each use returns a new refresh token.
	old := tok
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == old.RefreshToken || next.AccessToken == old.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", next)
	}
	if f.introspect(t, next.AccessToken)["active"] != true {
		t.Fatal("new access token inactive")
	}
	if got := f.introspect(t, old.RefreshToken); got["active"] != false {
		t.Errorf("used refresh token still introspects active: %v", got)
	}

	// Once its successor has been used, replaying the used refresh token
	// is reuse (within the retry window too): the whole grant is revoked.
	newest, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: next.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: old.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh reuse: %v, want invalid_grant", err)
	}
	for name, tk := range map[string]string{"newer access token": next.AccessToken, "newest access token": newest.AccessToken, "newest refresh token": newest.RefreshToken} {
		if f.introspect(t, tk)["active"] != false {
			t.Errorf("%s still active after reuse was detected", name)
		}
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: newest.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if !isOAuthError(err, "invalid_grant") {
		t.Errorf("refresh after revocation: %v, want invalid_grant", err)
	}
	logged(t, f.srv.logs, 0, "refresh_token_reuse")
}

// authorize runs the code flow for alice and returns the tokens.
func (f *userFixture) authorize(t *testing.T, conf *oauth2.Config) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t)
	p := b.login(f.srv.URL, b.get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier))), "alice", "alice-password")
	if strings.Contains(p.body, `name="decision"`) {
		p = b.consent(f.srv.URL, p, "allow", false)
	}
	q := callback(t, p)
	tok, err := conf.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func isOAuthError(err error, code string) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == code
}

// TestPublicClientRevokesItsRefreshToken: an SPA signs out by revoking its
// refresh token with only its client_id (RFC 7009 §2.1); the whole grant
// ends.
func TestPublicClientRevokesItsRefreshToken(t *testing.T) {
	f := newUserFixture(t)
	tok := f.authorize(t, f.oauthConfig("spa", "", "read"))
	resp, _ := postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {"spa"}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("public revocation: %d", resp.StatusCode)
	}
	for name, tk := range map[string]string{"refresh": tok.RefreshToken, "access": tok.AccessToken} {
		if f.introspect(t, tk)["active"] != false {
			t.Errorf("%s token still active after the SPA revoked its grant", name)
		}
	}
	// Public clients still cannot introspect.
	if resp, body := postForm(t, f.srv.URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}, "client_id": {"spa"}}, "", ""); resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("public introspection: %d %v", resp.StatusCode, body)
	}
}
