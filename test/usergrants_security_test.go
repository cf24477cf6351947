package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Security cases of the user grants (issue 4): each asserts the exact
// outcome — status, OAuth error code, and whether and where a redirect
// happened. Every test runs its own server.

// otherCallbackURL is registered for the "other" client of
// newSecurityFixture only, so that a request can name another client's
// redirect URI.
const otherCallbackURL = "http://127.0.0.1:3000/other/callback"

// newSecurityFixture is the user-grants fixture plus a client "other" whose
// redirect URI no other client has.
func newSecurityFixture(t *testing.T) *userFixture {
	cfg, secret := userGrantsConfig(t)
	other := fmt.Sprintf(`{"client_id": "other", "client_name": "Other", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code"], "redirect_uris": [%q], "scope": "read"},
    `, otherCallbackURL)
	withOther := strings.Replace(cfg, `"clients": [`, `"clients": [`+"\n    "+other, 1)
	if withOther == cfg {
		t.Fatal("could not add the client \"other\" to the fixture config")
	}
	return &userFixture{srv: startServer(t, writeConfig(t, withOther), ""), rsPass: secret}
}

// fetch sends req with the browser's cookies but follows no redirect, so
// the test sees the Location and Set-Cookie of the answer itself.
func (b *browser) fetch(req *http.Request) page {
	b.t.Helper()
	c := &http.Client{Jar: b.client.Jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return page{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

// jsonDecode reads a JSON object answer (safe to call off the test goroutine).
func jsonDecode(resp *http.Response, v *map[string]any) error {
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("status %d, body is not JSON: %q", resp.StatusCode, raw)
	}
	return nil
}

func (b *browser) getNoFollow(u string) page {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.fetch(req)
}

func (b *browser) postNoFollow(u string, form url.Values) page {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.fetch(req)
}

func (f *userFixture) authURL(params url.Values) string {
	return f.srv.URL + "/oauth2/authorize?" + params.Encode()
}

// codeRequest is an authorization request for the code flow with S256 PKCE.
func codeRequest(clientID, state, verifier string) url.Values {
	v := url.Values{
		"response_type": {"code"},
		"client_id":     {clientID},
		"redirect_uri":  {callbackURL},
		"scope":         {"read"},
		"state":         {state},
	}
	if verifier != "" {
		v.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		v.Set("code_challenge_method", "S256")
	}
	return v
}

// approve drives the browser from the authorization URL to the callback as
// alice (signing in and allowing consent when asked) and returns the
// callback's parameters, checking the echoed state.
func (f *userFixture) approve(t *testing.T, b *browser, authURL string) url.Values {
	t.Helper()
	p := b.get(authURL)
	if strings.Contains(p.body, `name="password"`) {
		p = b.login(f.srv.URL, p, "alice", "alice-password")
	}
	if strings.Contains(p.body, `name="decision"`) {
		p = b.consent(f.srv.URL, p, "allow", false)
	}
	q := callback(t, p)
	u, _ := url.Parse(authURL)
	if want := u.Query().Get("state"); q.Get("state") != want {
		t.Fatalf("callback state = %q, want %q (callback %v)", q.Get("state"), want, q)
	}
	return q
}

// tokenCall posts to the token endpoint (HTTP Basic when user is set).
func (f *userFixture) tokenCall(t *testing.T, form url.Values, user, pass string) (*http.Response, map[string]any) {
	t.Helper()
	return postForm(t, f.srv.URL+"/oauth2/token", form, user, pass)
}

// wantOAuthError checks an RFC 6749 §5.2 error answer.
func wantOAuthError(t *testing.T, what string, resp *http.Response, body map[string]any, status int, code string) {
	t.Helper()
	if resp.StatusCode != status || body["error"] != code {
		t.Errorf("%s: status %d error %v (%v), want %d %s", what, resp.StatusCode, body["error"], body["error_description"], status, code)
	}
}

// wantErrorPage checks that p is the HTML error page with the given status
// and that nothing redirected.
func wantErrorPage(t *testing.T, what string, p page, status int) {
	t.Helper()
	if p.status != status {
		t.Errorf("%s: status %d, want %d (Location %q)\n%s", what, p.status, status, p.location, p.body)
	}
	if p.location != "" {
		t.Errorf("%s: redirected to %q, want no redirect at all", what, p.location)
	}
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q, want an HTML page", what, ct)
	}
	if strings.Contains(p.body, `name="password"`) || strings.Contains(p.body, `name="decision"`) {
		t.Errorf("%s: got a login or consent page, want the error page", what)
	}
}

// wantCallbackError checks a redirect to the registered callback carrying
// an authorization error (and the state, and no code or token).
func wantCallbackError(t *testing.T, what string, p page, code, state string) url.Values {
	t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound {
		t.Errorf("%s: status %d, want a redirect to the client with error=%s\n%s", what, p.status, code, p.body)
		return nil
	}
	if !strings.HasPrefix(p.location, callbackURL) {
		t.Errorf("%s: redirect to %q, want the registered callback", what, p.location)
		return nil
	}
	q := callback(t, p)
	if q.Get("error") != code || q.Get("state") != state || q.Get("code") != "" || q.Get("access_token") != "" {
		t.Errorf("%s: callback %v, want error=%s state=%s and no code or token", what, q, code, state)
	}
	return q
}

func isLoginPage(p page) bool {
	return p.status == http.StatusOK && strings.Contains(p.body, `name="password"`)
}

func isConsentPage(p page) bool {
	return p.status == http.StatusOK && strings.Contains(p.body, `name="decision"`)
}

func cookiesOf(p page) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

// 1. Public clients must use PKCE, and only S256.
func TestSecurityPublicClientRequiresS256PKCE(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()

	q := codeRequest("spa", "state-no-pkce-0001", "")
	wantCallbackError(t, "public client without PKCE", b.getNoFollow(f.authURL(q)), "invalid_request", "state-no-pkce-0001")

	q = codeRequest("spa", "state-plain-pkce-01", "")
	q.Set("code_challenge", verifier)
	q.Set("code_challenge_method", "plain")
	wantCallbackError(t, "code_challenge_method=plain", b.getNoFollow(f.authURL(q)), "invalid_request", "state-plain-pkce-01")

	// Without a method the challenge is plain (RFC 7636 §4.3).
	q.Del("code_challenge_method")
	q.Set("state", "state-default-plain")
	wantCallbackError(t, "code_challenge without method", b.getNoFollow(f.authURL(q)), "invalid_request", "state-default-plain")

	// Nothing was issued for any of them: the user was never asked.
	if p := b.get(f.authURL(codeRequest("spa", "state-good-pkce-01", verifier))); !isLoginPage(p) {
		t.Errorf("a correct S256 request does not show the login page: %d", p.status)
	}
}

// 2. A wrong or missing code_verifier fails the exchange with invalid_grant.
func TestSecurityPKCEWrongOrMissingVerifier(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)

	verifier := oauth2.GenerateVerifier()
	code := f.approve(t, b, f.authURL(codeRequest("spa", "state-wrong-verif", verifier))).Get("code")
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callbackURL}, "client_id": {"spa"}}
	exchange.Set("code_verifier", oauth2.GenerateVerifier())
	resp, body := f.tokenCall(t, exchange, "", "")
	wantOAuthError(t, "wrong code_verifier", resp, body, http.StatusBadRequest, "invalid_grant")
	if body["access_token"] != nil {
		t.Error("tokens issued for a wrong verifier")
	}

	// fosite answers a missing verifier with invalid_grant ("must be at
	// least 43 characters"), as RFC 7636 §4.6 asks.
	verifier = oauth2.GenerateVerifier()
	code = f.approve(t, b, f.authURL(codeRequest("spa", "state-no-verifier", verifier))).Get("code")
	exchange.Set("code", code)
	exchange.Del("code_verifier")
	resp, body = f.tokenCall(t, exchange, "", "")
	wantOAuthError(t, "missing code_verifier", resp, body, http.StatusBadRequest, "invalid_grant")
	if body["access_token"] != nil {
		t.Error("tokens issued without a verifier")
	}
}

// 3. A confidential client may use the code flow without PKCE (client
// authentication binds the code); its code cannot be redeemed by another
// client.
func TestSecurityConfidentialClientCode(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	ctx := context.Background()
	conf := f.oauthConfig("web", "web-dev-secret-0123456789", "read")
	b := newBrowser(t)

	q := f.approve(t, b, conf.AuthCodeURL("state-web-nopkce"))
	tok, err := conf.Exchange(ctx, q.Get("code"))
	if err != nil {
		t.Fatalf("web exchange (client_secret_basic, no PKCE): %v", err)
	}
	if tok.RefreshToken != "" {
		t.Error("refresh token issued to a client not registered for refresh_token")
	}
	if info := f.introspect(t, tok.AccessToken); info["active"] != true || info["sub"] != "alice" || info["client_id"] != "web" {
		t.Errorf("introspection = %v", info)
	}

	// Another code for web, presented by spa (public) or with web's wrong
	// secret.
	code := f.approve(t, b, conf.AuthCodeURL("state-web-stolen")).Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callbackURL}}
	resp, body := f.tokenCall(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callbackURL}, "client_id": {"spa"}}, "", "")
	wantOAuthError(t, "web's code redeemed by spa", resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = f.tokenCall(t, form, "web", "wrong-secret")
	wantOAuthError(t, "web's code with a wrong secret", resp, body, http.StatusUnauthorized, "invalid_client")
	if body["access_token"] != nil {
		t.Error("tokens issued to the wrong client")
	}
}

// 4. Redirect URIs match exactly; a mismatch is an error page, never a
// redirect.
func TestSecurityRedirectURIExactMatch(t *testing.T) {
	t.Parallel()
	f := newSecurityFixture(t)
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()

	bad := []string{
		"http://127.0.0.1:3001/callback",
		"http://127.0.0.1:3000/callback/",
		"https://127.0.0.1:3000/callback",
		"http://127.0.0.1:3000/callback?x=1",
		"http://127.0.0.1:3000/callback#x",
		"http://127.0.0.1:3000/Callback",
		"http://127.0.0.1:3000/callbac",
		"http://127.0.0.1/callback",
		"http://localhost:3000/callback",
		"http://127.0.0.1:3000/callback/../callback",
		"http://127.0.0.1:3000//callback",
		"http://127.0.0.1:3000/%63allback",
		"HTTP://127.0.0.1:3000/callback",
		"https://evil.example/callback",
		"//evil.example/callback",
		"/callback",
		otherCallbackURL, // registered, but for another client
	}
	for _, ru := range bad {
		q := codeRequest("spa", "state-bad-redirect", verifier)
		q.Set("redirect_uri", ru)
		wantErrorPage(t, "redirect_uri "+ru, b.getNoFollow(f.authURL(q)), http.StatusBadRequest)
	}
	// Also for the error cases that would otherwise be redirected: a bad
	// redirect URI wins over a missing PKCE challenge.
	q := codeRequest("spa", "state-bad-redirect", "")
	q.Set("redirect_uri", "http://127.0.0.1:3001/callback")
	wantErrorPage(t, "bad redirect_uri and no PKCE", b.getNoFollow(f.authURL(q)), http.StatusBadRequest)

	q = codeRequest("nobody", "state-unknown-cli", verifier)
	wantErrorPage(t, "unknown client_id", b.getNoFollow(f.authURL(q)), http.StatusBadRequest)
	q.Del("client_id")
	wantErrorPage(t, "no client_id", b.getNoFollow(f.authURL(q)), http.StatusBadRequest)

	// Omitting redirect_uri is fine when the client has exactly one; the
	// code then redeems without redirect_uri (RFC 6749 §4.1.3).
	q = codeRequest("spa", "state-no-redirect", verifier)
	q.Del("redirect_uri")
	code := f.approve(t, b, f.authURL(q)).Get("code")
	resp, body := f.tokenCall(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"spa"}, "code_verifier": {verifier}}, "", "")
	if resp.StatusCode != http.StatusOK || body["access_token"] == nil {
		t.Errorf("exchange of a code requested without redirect_uri: %d %v", resp.StatusCode, body)
	}

	// At the token endpoint redirect_uri must be the one of the request.
	for _, ru := range []string{callbackURL + "/", "http://127.0.0.1:3001/callback", ""} {
		verifier := oauth2.GenerateVerifier()
		code := f.approve(t, b, f.authURL(codeRequest("spa", "state-token-redir", verifier))).Get("code")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {"spa"}, "code_verifier": {verifier}}
		if ru != "" {
			form.Set("redirect_uri", ru)
		}
		resp, body := f.tokenCall(t, form, "", "")
		wantOAuthError(t, fmt.Sprintf("token endpoint redirect_uri %q", ru), resp, body, http.StatusBadRequest, "invalid_grant")
	}
}

// 5. The login form needs the CSRF token that matches the browser's cookie.
func TestSecurityLoginCSRF(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	authURL := f.authURL(codeRequest("spa", "state-login-csrf", oauth2.GenerateVerifier()))
	a := newBrowser(t)
	lp := a.get(authURL)
	if !isLoginPage(lp) {
		t.Fatalf("no login page: %d", lp.status)
	}
	good := formFields(t, lp)
	good.Set("username", "alice")
	good.Set("password", "alice-password")

	attempt := func(what string, b *browser, form url.Values) {
		t.Helper()
		p := b.postNoFollow(f.srv.URL+"/login", form)
		if p.status != http.StatusForbidden || p.location != "" {
			t.Errorf("%s: status %d Location %q, want 403 and no redirect", what, p.status, p.location)
		}
		if c, ok := cookiesOf(p)["postern_session"]; ok && c.Value != "" {
			t.Errorf("%s: a session cookie was set", what)
		}
		if p := b.get(authURL); !isLoginPage(p) {
			t.Errorf("%s: after the refused login, authorize shows %d, want the login page again", what, p.status)
		}
	}

	noToken := url.Values{}
	for k, v := range good {
		noToken[k] = v
	}
	noToken.Del("csrf_token")
	attempt("login without csrf_token", a, noToken)

	wrong := url.Values{}
	for k, v := range good {
		wrong[k] = v
	}
	wrong.Set("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	attempt("login with a wrong csrf_token", a, wrong)

	// A fresh browser has no CSRF cookie: a's token is worthless there.
	attempt("login with a token but no csrf cookie", newBrowser(t), good)

	// Nor with a CSRF cookie of its own.
	c := newBrowser(t)
	if p := c.get(authURL); !isLoginPage(p) {
		t.Fatalf("no login page: %d", p.status)
	}
	attempt("login with another browser's token", c, good)

	// The untouched form works: the refusals were the CSRF check's.
	if p := a.post(f.srv.URL+"/login", good); !isConsentPage(p) {
		t.Errorf("login with the right token: status %d, want the consent page", p.status)
	}
}

// 5. The consent form needs its CSRF token too.
func TestSecurityConsentCSRF(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	cp := b.login(f.srv.URL, b.get(f.authURL(codeRequest("spa", "state-consentcsrf", oauth2.GenerateVerifier()))), "alice", "alice-password")
	if !isConsentPage(cp) {
		t.Fatalf("no consent page: %d\n%s", cp.status, cp.body)
	}
	good := formFields(t, cp)
	good.Set("decision", "allow")

	for name, token := range map[string]string{"no csrf_token": "", "wrong csrf_token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		form := url.Values{}
		for k, v := range good {
			form[k] = v
		}
		if token == "" {
			form.Del("csrf_token")
		} else {
			form.Set("csrf_token", token)
		}
		p := b.postNoFollow(f.srv.URL+"/consent", form)
		if p.status != http.StatusForbidden || p.location != "" {
			t.Errorf("consent with %s: status %d Location %q, want 403 and no redirect", name, p.status, p.location)
		}
	}
	// A signed-in browser without the CSRF cookie (the cross-site case is
	// the session cookie alone) is refused as well.
	stripped := newBrowser(t)
	u, _ := url.Parse(f.srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "postern_session" {
			stripped.client.Jar.SetCookies(u, []*http.Cookie{{Name: c.Name, Value: c.Value, Path: "/"}})
		}
	}
	if p := stripped.postNoFollow(f.srv.URL+"/consent", good); p.status != http.StatusForbidden || p.location != "" {
		t.Errorf("consent with the session cookie but no CSRF cookie: status %d Location %q, want 403 and no redirect", p.status, p.location)
	}

	// Remembered consent was not recorded by the refused posts.
	if p := b.get(f.authURL(codeRequest("spa", "state-consentcsrf", oauth2.GenerateVerifier()))); !isConsentPage(p) {
		t.Errorf("after refused consent posts, authorize shows %d, want the consent page", p.status)
	}
	q := callback(t, b.post(f.srv.URL+"/consent", good))
	if q.Get("code") == "" {
		t.Errorf("consent with the right token: callback %v, want a code", q)
	}
}

// 6. Denying consent sends access_denied to the client.
func TestSecurityConsentDeny(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	cp := b.login(f.srv.URL, b.get(f.authURL(codeRequest("spa", "state-consent-deny", oauth2.GenerateVerifier()))), "alice", "alice-password")
	wantCallbackError(t, "deny", b.consent(f.srv.URL, cp, "deny", false), "access_denied", "state-consent-deny")
}

// 7. Consent is remembered only when asked, and only for the scopes given;
// trusted clients never ask.
func TestSecurityRememberedConsent(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	req := func(state string, scope string) string {
		q := codeRequest("spa", state, oauth2.GenerateVerifier())
		q.Set("scope", scope)
		return f.authURL(q)
	}

	p := b.login(f.srv.URL, b.get(req("state-remember-01", "read")), "alice", "alice-password")
	if q := callback(t, b.consent(f.srv.URL, p, "allow", false)); q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	// Not remembered: asked again.
	p = b.get(req("state-remember-02", "read"))
	if !isConsentPage(p) {
		t.Fatalf("second authorize without remember: status %d, want the consent page", p.status)
	}
	if q := callback(t, b.consent(f.srv.URL, p, "allow", true)); q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	// Remembered: straight to the callback.
	verifier := oauth2.GenerateVerifier()
	q := codeRequest("spa", "state-remember-03", verifier)
	p = b.getNoFollow(f.authURL(q))
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, callbackURL+"?") {
		t.Fatalf("remembered consent: status %d Location %q, want a redirect to the callback\n%s", p.status, p.location, p.body)
	}
	cb := callback(t, p)
	if cb.Get("code") == "" || cb.Get("state") != "state-remember-03" {
		t.Fatalf("remembered consent callback %v", cb)
	}
	tok, err := f.oauthConfig("spa", "", "read").Exchange(context.Background(), cb.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange of a code issued on remembered consent: %v", err)
	}
	if info := f.introspect(t, tok.AccessToken); info["active"] != true || info["scope"] != "read" {
		t.Errorf("introspection = %v", info)
	}
	// The remembered decision covers read only.
	if p := b.get(req("state-remember-04", "read write")); !isConsentPage(p) {
		t.Errorf("authorize for more scopes than remembered: status %d, want the consent page", p.status)
	}
	// Another user in another browser is asked.
	other := newBrowser(t)
	if p := other.login(f.srv.URL, other.get(req("state-remember-05", "read")), "bob", "bob-password"); !isConsentPage(p) {
		t.Errorf("bob after alice remembered consent: status %d, want the consent page", p.status)
	}
}

func TestSecurityTrustedClientSkipsConsent(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	lp := b.get(f.authURL(codeRequest("firstparty", "state-firstparty", verifier)))
	p := b.login(f.srv.URL, lp, "alice", "alice-password")
	if strings.Contains(p.body, `name="decision"`) {
		t.Fatal("a trusted client got the consent page")
	}
	q := callback(t, p)
	if q.Get("code") == "" || q.Get("state") != "state-firstparty" {
		t.Fatalf("callback %v", q)
	}
	tok, err := f.oauthConfig("firstparty", "", "read").Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if info := f.introspect(t, tok.AccessToken); info["active"] != true || info["sub"] != "alice" || info["client_id"] != "firstparty" {
		t.Errorf("introspection = %v", info)
	}
}

// 8. Implicit: token in the fragment, short-lived, no refresh token; only
// for clients registered for it.
func TestSecurityImplicit(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	q := url.Values{"response_type": {"token"}, "client_id": {"legacy"}, "redirect_uri": {callbackURL}, "scope": {"read"}, "state": {"state-implicit-001"}}
	p := b.login(f.srv.URL, b.get(f.authURL(q)), "alice", "alice-password")
	// legacy is not trusted: the user must be asked.
	if !isConsentPage(p) {
		t.Fatalf("implicit for the untrusted legacy client: no consent page (status %d, location %q)\n%s", p.status, p.location, p.body)
	}
	p = b.consent(f.srv.URL, p, "allow", false)
	if p.status != http.StatusSeeOther {
		t.Fatalf("implicit: status %d, want 303 to the callback\n%s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil || !strings.HasPrefix(p.location, callbackURL+"#") {
		t.Fatalf("implicit redirect %q, want the callback with a fragment", p.location)
	}
	if u.RawQuery != "" {
		t.Errorf("implicit redirect has a query %q: the token must be in the fragment only", u.RawQuery)
	}
	frag, _ := url.ParseQuery(u.Fragment)
	if frag.Get("access_token") == "" || !strings.EqualFold(frag.Get("token_type"), "bearer") || frag.Get("state") != "state-implicit-001" {
		t.Errorf("fragment = %v", frag)
	}
	if frag.Has("refresh_token") {
		t.Error("implicit grant returned a refresh token")
	}
	if frag.Has("code") {
		t.Error("implicit grant returned a code")
	}
	exp, err := strconv.Atoi(frag.Get("expires_in"))
	if err != nil || exp <= 0 || exp > 300 {
		t.Errorf("expires_in = %q, want 1..300 (implicit_access_token_ttl 5m)", frag.Get("expires_in"))
	}
	info := f.introspect(t, frag.Get("access_token"))
	if info["active"] != true || info["sub"] != "alice" || info["client_id"] != "legacy" {
		t.Errorf("introspection = %v", info)
	}
	if e, ok := info["exp"].(float64); !ok || time.Until(time.Unix(int64(e), 0)) > 5*time.Minute+5*time.Second {
		t.Errorf("introspected exp = %v, want at most 5m from now", info["exp"])
	}

	// spa is not registered for the implicit grant: RFC 6749 §4.2.2.1
	// unauthorized_client, in the fragment.
	q = url.Values{"response_type": {"token"}, "client_id": {"spa"}, "redirect_uri": {callbackURL}, "scope": {"read"}, "state": {"state-implicit-002"}}
	p = b.getNoFollow(f.authURL(q))
	wantCallbackError(t, "implicit for spa", p, "unauthorized_client", "state-implicit-002")
	if u, err := url.Parse(p.location); err == nil && (u.Query().Has("error") || !strings.Contains(u.Fragment, "error=")) {
		t.Errorf("implicit error %q: want it in the fragment (RFC 6749 §4.2.2.1)", p.location)
	}
	// Nor can legacy use the code flow it is not registered for.
	q = codeRequest("legacy", "state-implicit-003", oauth2.GenerateVerifier())
	wantCallbackError(t, "code flow for legacy", b.getNoFollow(f.authURL(q)), "unauthorized_client", "state-implicit-003")
}

// 9. The password grant is for trusted clients registered for it.
func TestSecurityPasswordGrant(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	ctx := context.Background()
	conf := f.oauthConfig("mobile", "mobile-dev-secret-0123456789", "read")
	tok, err := conf.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("password grant for a client with refresh_token: %+v", tok)
	}
	info := f.introspect(t, tok.AccessToken)
	if info["active"] != true || info["sub"] != "alice" || info["client_id"] != "mobile" || info["email"] != "alice@example.com" || info["scope"] != "read" {
		t.Errorf("introspection = %v", info)
	}

	if _, err := conf.PasswordCredentialsToken(ctx, "alice", "wrong-password"); !isOAuthError(err, "invalid_grant") {
		t.Errorf("wrong password: %v, want invalid_grant", err)
	}
	if _, err := conf.PasswordCredentialsToken(ctx, "mallory", "alice-password"); !isOAuthError(err, "invalid_grant") {
		t.Errorf("unknown user: %v, want invalid_grant", err)
	}

	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}
	resp, body := f.tokenCall(t, form, "web", "web-dev-secret-0123456789")
	wantOAuthError(t, "password grant by web", resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = f.tokenCall(t, form, "rs", f.rsPass)
	wantOAuthError(t, "password grant by rs", resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = f.tokenCall(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "client_id": {"spa"}}, "", "")
	wantOAuthError(t, "password grant by spa (public)", resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = f.tokenCall(t, form, "mobile", "wrong-secret")
	wantOAuthError(t, "password grant with a wrong client secret", resp, body, http.StatusUnauthorized, "invalid_client")
}

// 10. Five failures for a username pause it: the sixth attempt is refused
// even with the right password (issue 4: "back-off after 5 failures").
func TestSecurityPasswordThrottle(t *testing.T) {
	f := newUserFixture(t)
	const mobile, mobileSecret = "mobile", "mobile-dev-secret-0123456789"
	grant := func(pw string) (*http.Response, map[string]any) {
		return f.tokenCall(t, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {pw}}, mobile, mobileSecret)
	}
	for i := 1; i <= 5; i++ {
		resp, body := grant(fmt.Sprintf("wrong-%d", i))
		wantOAuthError(t, fmt.Sprintf("wrong password #%d", i), resp, body, http.StatusBadRequest, "invalid_grant")
	}
	resp, body := grant("bob-password")
	wantOAuthError(t, "6th attempt (right password)", resp, body, http.StatusTooManyRequests, "invalid_grant")
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("6th attempt: Retry-After %q, want a positive number of seconds", resp.Header.Get("Retry-After"))
	}
	if body["access_token"] != nil {
		t.Fatal("tokens issued to a throttled username")
	}

	// The login form shares the counter.
	b := newBrowser(t)
	p := b.login(f.srv.URL, b.get(f.authURL(codeRequest("spa", "state-throttle-01", oauth2.GenerateVerifier()))), "bob", "bob-password")
	if p.status != http.StatusTooManyRequests || p.header.Get("Retry-After") == "" {
		t.Errorf("login form after 5 failures: status %d Retry-After %q, want 429 with Retry-After", p.status, p.header.Get("Retry-After"))
	}
}

// 10. Whatever the exact threshold, once bob is paused by the password
// grant the login form refuses him too, and vice versa: one set of
// counters. The pause after the first over-threshold failure is 1s, so the
// requests right after it fall inside it.
func TestSecurityThrottleSharedWithLoginForm(t *testing.T) {
	f := newUserFixture(t)
	const mobile, mobileSecret = "mobile", "mobile-dev-secret-0123456789"
	grant := func(user, pw string) (*http.Response, map[string]any) {
		return f.tokenCall(t, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}}, mobile, mobileSecret)
	}
	throttledAt := 0
	for i := 1; i <= 8 && throttledAt == 0; i++ {
		resp, body := grant("bob", fmt.Sprintf("wrong-%d", i))
		switch resp.StatusCode {
		case http.StatusTooManyRequests:
			throttledAt = i
			if body["error"] != "invalid_grant" || resp.Header.Get("Retry-After") == "" {
				t.Errorf("throttled answer: error %v Retry-After %q, want invalid_grant with Retry-After", body["error"], resp.Header.Get("Retry-After"))
			}
		case http.StatusBadRequest:
			if body["error"] != "invalid_grant" {
				t.Errorf("wrong password #%d: %v", i, body["error"])
			}
		default:
			t.Fatalf("wrong password #%d: status %d %v", i, resp.StatusCode, body)
		}
	}
	if throttledAt == 0 {
		t.Fatal("8 wrong passwords in a row were never throttled")
	}
	t.Logf("password grant throttled bob at attempt %d", throttledAt)

	b := newBrowser(t)
	authURL := f.authURL(codeRequest("spa", "state-throttle-02", oauth2.GenerateVerifier()))
	p := b.login(f.srv.URL, b.get(authURL), "bob", "bob-password")
	if p.status != http.StatusTooManyRequests {
		t.Errorf("login form for bob while the password grant is paused: status %d, want 429", p.status)
	}
	if ra, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("login form 429: Retry-After %q", p.header.Get("Retry-After"))
	}
	if !strings.Contains(p.body, `name="password"`) || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
		t.Errorf("login form 429 is not the login page:\n%s", p.body)
	}
	if p := b.get(authURL); !isLoginPage(p) {
		t.Errorf("a throttled login established a session: authorize shows %d", p.status)
	}
	// Alice is not affected by bob's counter.
	if _, err := f.oauthConfig(mobile, mobileSecret).PasswordCredentialsToken(context.Background(), "alice", "alice-password"); err != nil {
		t.Errorf("alice while bob is throttled: %v", err)
	}
}

// 11. With strict one-time refresh tokens (refresh_retry_window "0s"), ten
// concurrent uses of one refresh token: one wins, the rest are reuse, and
// reuse revokes the grant including the winner's tokens. (With a retry
// window all ten get the winner's answer: TestRefreshRetryConcurrent.)
func TestSecurityConcurrentRefreshRace(t *testing.T) {
	t.Parallel()
	f := newUserFixtureWindow(t, "0s")
	tok := f.authorize(t, f.oauthConfig("spa", "", "read"))

	const n = 10
	type result struct {
		status int
		body   map[string]any
		err    error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"spa"}}.Encode()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/oauth2/token", strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			<-start
			resp, err := client.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			results[i].status = resp.StatusCode
			results[i].err = jsonDecode(resp, &results[i].body)
		}()
	}
	close(start)
	wg.Wait()

	var winners []map[string]any
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("request %d: %v", i, r.err)
		case r.status == http.StatusOK:
			winners = append(winners, r.body)
		case r.status != http.StatusBadRequest || r.body["error"] != "invalid_grant":
			t.Errorf("request %d: status %d %v, want 400 invalid_grant", i, r.status, r.body)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1", len(winners), n)
	}
	w := winners[0]
	at, _ := w["access_token"].(string)
	rt, _ := w["refresh_token"].(string)
	if at == "" || rt == "" {
		t.Fatalf("winner's answer = %v", w)
	}
	for name, tk := range map[string]string{"winner's access token": at, "winner's refresh token": rt, "original access token": tok.AccessToken} {
		if got := f.introspect(t, tk); got["active"] != false {
			t.Errorf("%s still active after the concurrent reuse: %v", name, got)
		}
	}
	resp, body := f.tokenCall(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}}, "", "")
	wantOAuthError(t, "refresh with the winner's refresh token", resp, body, http.StatusBadRequest, "invalid_grant")
	logged(t, f.srv.logs, 0, "refresh_token_reuse")
}

// 12. Refresh tokens are bound to their client and grant.
func TestSecurityRefreshClientBinding(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	ctx := context.Background()
	spaTok := f.authorize(t, f.oauthConfig("spa", "", "read"))
	const mobileSecret = "mobile-dev-secret-0123456789"
	mobileConf := f.oauthConfig("mobile", mobileSecret, "read")
	mobileTok, err := mobileConf.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	}

	resp, body := f.tokenCall(t, refresh(spaTok.RefreshToken), "mobile", mobileSecret)
	wantOAuthError(t, "spa's refresh token used by mobile", resp, body, http.StatusBadRequest, "invalid_grant")
	form := refresh(mobileTok.RefreshToken)
	form.Set("client_id", "spa")
	resp, body = f.tokenCall(t, form, "", "")
	wantOAuthError(t, "mobile's refresh token used by spa", resp, body, http.StatusBadRequest, "invalid_grant")
	resp, body = f.tokenCall(t, refresh(spaTok.RefreshToken), "web", "web-dev-secret-0123456789")
	wantOAuthError(t, "refresh by web (not registered for refresh_token)", resp, body, http.StatusBadRequest, "unauthorized_client")
	resp, body = f.tokenCall(t, refresh(mobileTok.RefreshToken), "rs", f.rsPass)
	wantOAuthError(t, "refresh by rs (client credentials only)", resp, body, http.StatusBadRequest, "unauthorized_client")

	// A client that may not use a token cannot burn it either.
	form = refresh(spaTok.RefreshToken)
	form.Set("client_id", "spa")
	if resp, body := f.tokenCall(t, form, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("spa's own refresh after foreign attempts: %d %v", resp.StatusCode, body)
	}

	// Refresh after the grant was revoked (RFC 7009).
	resp, _ = postForm(t, f.srv.URL+"/oauth2/revoke", url.Values{"token": {mobileTok.RefreshToken}}, "mobile", mobileSecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	resp, body = f.tokenCall(t, refresh(mobileTok.RefreshToken), "mobile", mobileSecret)
	wantOAuthError(t, "refresh after revocation", resp, body, http.StatusBadRequest, "invalid_grant")
	if f.introspect(t, mobileTok.AccessToken)["active"] != false {
		t.Error("access token still active after its refresh token was revoked")
	}
}

// 13. Nothing the request says can send the browser off this server.
func TestSecurityNoOpenRedirect(t *testing.T) {
	t.Parallel()
	f := newSecurityFixture(t)
	evil := url.Values{
		"return_to": {"https://evil.example/r"},
		"next":      {"https://evil.example/n"},
		"redirect":  {"//evil.example/d"},
		"continue":  {"https://evil.example/c"},
	}
	sameServer := func(what, loc, wantPath string) {
		t.Helper()
		u, err := url.Parse(loc)
		if err != nil || u.Scheme != "" || u.Host != "" || u.Path != wantPath {
			t.Errorf("%s: Location %q, want a path on this server (%s)", what, loc, wantPath)
		}
		// Resuming a request carries its parameters back to authorize,
		// where they are inert; the account target carries nothing.
		if wantPath == "/account" && u != nil && u.RawQuery != "" {
			t.Errorf("%s: Location %q carries a query", what, loc)
		}
		if strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, `/\`) {
			t.Errorf("%s: Location %q is protocol-relative", what, loc)
		}
	}

	// Plain sign-in, with return_to style parameters on GET and POST.
	b := newBrowser(t)
	lp := b.get(f.srv.URL + "/login?" + evil.Encode())
	if !isLoginPage(lp) {
		t.Fatalf("GET /login: %d", lp.status)
	}
	form := formFields(t, lp)
	if form.Get("auth") != "" || strings.Contains(lp.body, "evil.example") {
		t.Errorf("login page carries the return_to style parameters: auth=%q", form.Get("auth"))
	}
	for k, v := range evil {
		form[k] = v
	}
	form.Set("username", "alice")
	form.Set("password", "alice-password")
	p := b.postNoFollow(f.srv.URL+"/login?"+evil.Encode(), form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /login: %d, want 303\n%s", p.status, p.body)
	}
	sameServer("login without a pending request", p.location, "/account")

	// Sign-in for a pending authorization request with the same extras.
	b = newBrowser(t)
	q := codeRequest("spa", "state-open-redir01", oauth2.GenerateVerifier())
	for k, v := range evil {
		q[k] = v
	}
	lp = b.get(f.authURL(q))
	if !isLoginPage(lp) {
		t.Fatalf("authorize: %d", lp.status)
	}
	form = formFields(t, lp)
	for k, v := range evil {
		form[k] = v
	}
	form.Set("username", "alice")
	form.Set("password", "alice-password")
	p = b.postNoFollow(f.srv.URL+"/login?"+evil.Encode(), form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /login: %d, want 303\n%s", p.status, p.body)
	}
	sameServer("login with a pending request", p.location, "/oauth2/authorize")
	if cp := b.get(f.srv.URL + p.location); !isConsentPage(cp) {
		t.Errorf("resuming the request: %d, want the consent page", cp.status)
	}

	// A forged auth field naming an unregistered redirect URI, or another
	// client's, ends on the error page: from the login form (after its
	// redirect to this server's authorize endpoint) and from the consent
	// form.
	for name, ru := range map[string]string{
		"unregistered redirect_uri":     "https://evil.example/callback",
		"another client's redirect_uri": otherCallbackURL,
		"one character off":             "http://127.0.0.1:3001/callback",
	} {
		auth := codeRequest("spa", "state-open-redir02", oauth2.GenerateVerifier())
		auth.Set("redirect_uri", ru)
		b := newBrowser(t)
		lp := b.get(f.srv.URL + "/login?auth=" + url.QueryEscape(auth.Encode()))
		if lp.status != http.StatusOK {
			t.Errorf("%s: GET /login?auth=: %d", name, lp.status)
			continue
		}
		form := formFields(t, lp)
		form.Set("username", "alice")
		form.Set("password", "alice-password")
		p := b.postNoFollow(f.srv.URL+"/login", form)
		if p.status != http.StatusSeeOther {
			t.Errorf("%s: POST /login: %d, want 303 to this server's authorize endpoint", name, p.status)
			continue
		}
		sameServer(name+": login", p.location, "/oauth2/authorize")
		wantErrorPage(t, name+": after login", b.getNoFollow(f.srv.URL+p.location), http.StatusBadRequest)

		form = formFields(t, lp)
		form.Set("auth", auth.Encode())
		form.Set("decision", "allow")
		wantErrorPage(t, name+": consent", b.postNoFollow(f.srv.URL+"/consent", form), http.StatusBadRequest)
	}
	// The same with an unknown client in auth: refused at once.
	lb := newBrowser(t)
	lp = lb.get(f.authURL(codeRequest("spa", "state-open-redir03", oauth2.GenerateVerifier())))
	form = formFields(t, lp)
	form.Set("auth", url.Values{"client_id": {"nobody"}, "redirect_uri": {"https://evil.example/cb"}, "response_type": {"code"}}.Encode())
	form.Set("username", "alice")
	form.Set("password", "alice-password")
	wantErrorPage(t, "login with an unknown client in auth", lb.postNoFollow(f.srv.URL+"/login", form), http.StatusBadRequest)
}

// 14. Logout is a POST with CSRF; a GET changes nothing.
func TestSecurityLogout(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	authURL := f.authURL(codeRequest("spa", "state-logout-0001", oauth2.GenerateVerifier()))
	cp := b.login(f.srv.URL, b.get(authURL), "alice", "alice-password")
	if !isConsentPage(cp) {
		t.Fatalf("no consent page: %d", cp.status)
	}
	csrf := formFields(t, cp).Get("csrf_token")

	p := b.getNoFollow(f.srv.URL + "/logout")
	if p.status != http.StatusMethodNotAllowed || p.location != "" {
		t.Errorf("GET /logout: status %d Location %q, want 405 and no redirect", p.status, p.location)
	}
	if !isConsentPage(b.get(authURL)) {
		t.Fatal("GET /logout signed the user out")
	}
	p = b.postNoFollow(f.srv.URL+"/logout", url.Values{})
	if p.status != http.StatusForbidden {
		t.Errorf("POST /logout without CSRF: status %d, want 403", p.status)
	}
	p = b.postNoFollow(f.srv.URL+"/logout", url.Values{"csrf_token": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}})
	if p.status != http.StatusForbidden {
		t.Errorf("POST /logout with a wrong CSRF token: status %d, want 403", p.status)
	}
	if !isConsentPage(b.get(authURL)) {
		t.Fatal("a POST /logout without a valid CSRF token signed the user out")
	}

	p = b.postNoFollow(f.srv.URL+"/logout", url.Values{"csrf_token": {csrf}})
	if p.status != http.StatusSeeOther || p.location != "/login" {
		t.Errorf("POST /logout: status %d Location %q, want 303 to /login", p.status, p.location)
	}
	if c, ok := cookiesOf(p)["postern_session"]; !ok || c.MaxAge >= 0 {
		t.Errorf("POST /logout does not expire the session cookie: %v", c)
	}
	if p := b.get(authURL); !isLoginPage(p) {
		t.Errorf("after logout authorize shows %d, want the login page", p.status)
	}
}

// 15. Security headers on every page, and the session cookie's attributes.
func TestSecurityPageHeaders(t *testing.T) {
	t.Parallel()
	f := newUserFixture(t)
	b := newBrowser(t)
	check := func(what string, p page) {
		t.Helper()
		csp := p.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: Content-Security-Policy %q", what, csp)
		}
		if strings.Contains(csp, "script-src") && !strings.Contains(csp, "script-src 'none'") {
			t.Errorf("%s: CSP allows scripts: %q", what, csp)
		}
		if !strings.Contains(csp, "default-src 'none'") && !strings.Contains(csp, "script-src 'none'") {
			t.Errorf("%s: CSP does not forbid scripts: %q", what, csp)
		}
		if got := p.header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", what, got)
		}
		if got := p.header.Get("Referrer-Policy"); got != "no-referrer" && got != "same-origin" && got != "strict-origin" {
			t.Errorf("%s: Referrer-Policy %q", what, got)
		}
		if !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q", what, p.header.Get("Content-Type"))
		}
		if strings.Contains(strings.ToLower(p.body), "<script") {
			t.Errorf("%s: page has a script element", what)
		}
	}
	wantCookie := func(what string, c *http.Cookie) {
		t.Helper()
		if c == nil {
			t.Errorf("%s: not set", what)
			return
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" {
			t.Errorf("%s: HttpOnly=%v SameSite=%v Secure=%v Path=%q, want HttpOnly, SameSite=Lax, not Secure (http issuer), Path=/", what, c.HttpOnly, c.SameSite, c.Secure, c.Path)
		}
	}

	authURL := f.authURL(codeRequest("spa", "state-headers-001", oauth2.GenerateVerifier()))
	lp := b.getNoFollow(authURL)
	check("login page", lp)
	wantCookie("CSRF cookie", cookiesOf(lp)["postern_csrf"])

	form := formFields(t, lp)
	form.Set("username", "alice")
	form.Set("password", "wrong-password")
	check("login page after a wrong password", b.postNoFollow(f.srv.URL+"/login", form))
	form.Del("csrf_token")
	check("login page refused for CSRF", b.postNoFollow(f.srv.URL+"/login", form))

	form = formFields(t, lp)
	form.Set("username", "alice")
	form.Set("password", "alice-password")
	p := b.postNoFollow(f.srv.URL+"/login", form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("POST /login: %d", p.status)
	}
	sess := cookiesOf(p)["postern_session"]
	wantCookie("session cookie", sess)
	if sess != nil && (sess.MaxAge <= 0 || sess.Value == "" || strings.Contains(sess.Value, "alice")) {
		t.Errorf("session cookie MaxAge=%d value %q: want a lifetime and an opaque value", sess.MaxAge, sess.Value)
	}

	cp := b.get(f.srv.URL + p.location)
	if !isConsentPage(cp) {
		t.Fatalf("no consent page: %d", cp.status)
	}
	check("consent page", cp)
	cf := formFields(t, cp)
	cf.Del("csrf_token")
	cf.Set("decision", "allow")
	check("consent refused for CSRF", b.postNoFollow(f.srv.URL+"/consent", cf))

	check("error page (unknown client)", b.getNoFollow(f.authURL(codeRequest("nobody", "state-headers-002", oauth2.GenerateVerifier()))))
	q := codeRequest("spa", "state-headers-003", oauth2.GenerateVerifier())
	q.Set("redirect_uri", "https://evil.example/cb")
	check("error page (bad redirect_uri)", b.getNoFollow(f.authURL(q)))
	check("GET /logout", b.getNoFollow(f.srv.URL+"/logout"))
}
