package authz

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
)

// The tests in this file and in redirect_test.go, csrf_test.go,
// pkce_test.go and state_test.go hold each security control of the
// server next to its code, so that `go test ./authz` fails when one is
// broken, without the end-to-end suite. They drive the server over HTTP
// (TLS, so the __Host- cookies travel) with a real http.Client and a
// cookie jar per browser.

const (
	spaCallback    = "https://app.example.com/cb"
	webCallback    = "https://web.example.com/cb"
	legacyCallback = "https://legacy.example.com/cb"
	native4        = "http://127.0.0.1:8080/cb"
	native6        = "http://[::1]:8080/cb"
	// ctlVerifier and ctlChallenge are a PKCE pair (S256).
	ctlVerifier  = "bench-verifier-0123456789-0123456789-0123456789"
	ctlChallenge = "97Zj-g7YTE4g4dDZiilunI1wyoTNGgfDOzmh048JNqA"
)

type ctlFixture struct {
	srv    *Server
	store  storage.Store
	ts     *httptest.Server
	secret string // every confidential client's secret
	hash   string // and its hash
	sec    keys.Secret
	km     *keys.Manager
}

func ctlLifetimes() clients.Lifetimes {
	return clients.Lifetimes{AccessToken: time.Hour, ImplicitAccessToken: 30 * time.Minute, RefreshToken: 24 * time.Hour, AuthorizationCode: 10 * time.Minute, RefreshRetryWindow: 30 * time.Second}
}

// ctlClients are the clients of the controls fixture. Trusted clients skip
// the consent page; web is the one that asks.
func ctlClients(hash string) []*clients.Client {
	lt := ctlLifetimes()
	secret := []byte(hash)
	return []*clients.Client{
		{ID: "spa", GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{spaCallback},
			Scopes: []string{"read", "write"}, TokenEndpointAuthMethod: clients.AuthNone, Trusted: true, Lifetimes: lt},
		{ID: "native", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{native4, native6},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthNone, Trusted: true, Lifetimes: lt},
		{ID: "web", SecretHash: secret, GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{webCallback},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt},
		{ID: "legacy", GrantTypes: []string{"implicit"}, RedirectURIs: []string{legacyCallback},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthNone, Trusted: true, Lifetimes: lt},
		{ID: "mobile", SecretHash: secret, GrantTypes: []string{"password", "refresh_token"}, Trusted: true,
			Scopes: []string{"read", "account"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt},
		{ID: "billing", SecretHash: secret, GrantTypes: []string{"client_credentials"},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt},
		{ID: "reports", SecretHash: secret, GrantTypes: []string{"client_credentials"},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretPost, Lifetimes: lt},
		{ID: "rs", SecretHash: secret, GrantTypes: []string{"client_credentials"}, ResourceServer: true,
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt},
	}
}

func newCtlFixture(t *testing.T) *ctlFixture {
	t.Helper()
	st, sec, km := newStoreAndKeys(t)
	secret, err := clients.GenerateClientSecret()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := clients.HashClientSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	f := &ctlFixture{store: st, secret: secret, hash: hash, sec: sec, km: km}
	f.srv = f.newServer(t, ctlClients(hash))
	f.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { f.srv.ServeHTTP(w, r) }))
	t.Cleanup(f.ts.Close)
	return f
}

// newServer builds a server on the fixture's store and secrets, as a
// configuration reload does.
func (f *ctlFixture) newServer(t *testing.T, cs []*clients.Client) *Server {
	t.Helper()
	return f.newServerUsers(t, cs, []identity.User{
		{Username: "alice", Password: "alice-password"},
		{Username: "bob", Password: "bob-password"},
	})
}

// newServerUsers is newServer with other users.
func (f *ctlFixture) newServerUsers(t *testing.T, cs []*clients.Client, users []identity.User) *Server {
	t.Helper()
	srv, err := New(Config{
		Issuer:       "https://auth.example.com",
		Lifetimes:    ctlLifetimes(),
		Clients:      cs,
		Users:        identity.NewDirectory(users, identity.NewThrottle(identity.ThrottleOptions{}), passhash.NewLimiter(0, nil)),
		SecretHasher: clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
		HMACSecret:   f.sec.Derive("test hmac", 32),
		RetryKey:     f.sec.Derive("test refresh retry", 32),
		CookieKey:    f.sec.Derive("test cookies", 64),
	}, f.store, f.km)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// reply is an HTTP answer as a test looks at it; redirects are never
// followed, so location is the server's own Location header.
type reply struct {
	status   int
	body     string
	location string
	header   http.Header
}

func (r reply) String() string {
	return http.StatusText(r.status) + " Location=" + r.location + "\n" + r.body
}

// locationQuery returns the query (or, for the implicit grant, the
// fragment) of the redirect.
func (r reply) locationParams(t *testing.T) url.Values {
	t.Helper()
	u, err := url.Parse(r.location)
	if err != nil {
		t.Fatalf("Location %q: %v", r.location, err)
	}
	raw := u.RawQuery
	if u.Fragment != "" {
		raw = u.Fragment
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatalf("Location %q: %v", r.location, err)
	}
	return q
}

type browser struct {
	t   *testing.T
	f   *ctlFixture
	c   *http.Client
	jar *cookiejar.Jar
}

func (f *ctlFixture) browser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{
		Jar:       jar,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	t.Cleanup(c.CloseIdleConnections)
	return &browser{t: t, f: f, c: c, jar: jar}
}

func (b *browser) do(req *http.Request) reply {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, body: string(body), location: resp.Header.Get("Location"), header: resp.Header}
}

func (b *browser) get(path string) reply {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.f.ts.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) reply {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.f.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// cookie returns the browser's cookie of that name, or nil.
func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.f.ts.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// plant sets a cookie in the browser, as a sibling site or a shared
// machine could.
func (b *browser) plant(name, value string) {
	u, _ := url.Parse(b.f.ts.URL)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/", Secure: true}})
}

var authInput = regexp.MustCompile(`name="auth" value="([^"]*)"`)

// formFields returns the CSRF token and the pending request of a form.
func formFields(t *testing.T, body string) (csrf, auth string) {
	t.Helper()
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field in:\n%s", body)
	}
	if a := authInput.FindStringSubmatch(body); a != nil {
		auth = html.UnescapeString(a[1])
	}
	return html.UnescapeString(m[1]), auth
}

// signIn signs the browser in through the login form.
func (b *browser) signIn(user string) {
	b.t.Helper()
	page := b.get(pathLogin)
	csrf, _ := formFields(b.t, page.body)
	r := b.post(pathLogin, url.Values{csrfField: {csrf}, "username": {user}, "password": {user + "-password"}})
	if r.status != http.StatusSeeOther || r.location != pathAccount {
		b.t.Fatalf("sign-in as %s: %s", user, r)
	}
}

// codeParams is an authorization request for the code flow with S256.
func codeParams(client, redirect string) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "scope": {"read"},
		"state": {"state-0123456789"}, "code_challenge": {ctlChallenge}, "code_challenge_method": {"S256"}}
}

func (b *browser) authorize(params url.Values) reply {
	b.t.Helper()
	return b.get(pathAuthorize + "?" + params.Encode())
}

// code runs the authorization request for a trusted client in a signed-in
// browser and returns the code the callback receives.
func (b *browser) code(params url.Values) string {
	b.t.Helper()
	r := b.authorize(params)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, params.Get("redirect_uri")+"?") {
		b.t.Fatalf("authorize: %s", r)
	}
	q := r.locationParams(b.t)
	if q.Get("code") == "" || q.Get("state") != params.Get("state") {
		b.t.Fatalf("callback %v", q)
	}
	return q.Get("code")
}

// tokenCall posts to an OAuth endpoint, with HTTP Basic when user is set.
func (f *ctlFixture) tokenCall(t *testing.T, path string, form url.Values, user, pass string) (int, map[string]any, http.Header) {
	t.Helper()
	return f.rawCall(t, path, form.Encode(), user, pass)
}

func (f *ctlFixture) rawCall(t *testing.T, path, body, user, pass string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

// exchange redeems a code of a public client.
func (f *ctlFixture) exchange(t *testing.T, client, code, redirect, verifier string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code}, "redirect_uri": {redirect}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	status, body, _ := f.tokenCall(t, pathToken, form, "", "")
	return status, body
}

// active introspects a token as the resource server.
func (f *ctlFixture) active(t *testing.T, token string) bool {
	t.Helper()
	status, body, _ := f.tokenCall(t, pathIntrospect, url.Values{"token": {token}}, "rs", f.secret)
	if status != http.StatusOK {
		t.Fatalf("introspect: %d %v", status, body)
	}
	return body["active"] == true
}

func (f *ctlFixture) passwordGrant(t *testing.T) (access, refresh string) {
	t.Helper()
	status, body, _ := f.tokenCall(t, pathToken, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"read"}}, "mobile", f.secret)
	access, _ = body["access_token"].(string)
	refresh, _ = body["refresh_token"].(string)
	if status != http.StatusOK || access == "" || refresh == "" {
		t.Fatalf("password grant: %d %v", status, body)
	}
	return access, refresh
}

func wantOAuthError(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Errorf("%s: %d %v, want %d error=%s", what, status, body, wantStatus, wantCode)
	}
	if body["access_token"] != nil {
		t.Errorf("%s: tokens issued", what)
	}
}

// events returns the types of a subject's audit events, newest first.
func (f *ctlFixture) events(t *testing.T, subject string) []string {
	t.Helper()
	evs, err := f.store.ListEvents(context.Background(), subject, 50)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// TestTokenEndpointControls: the token endpoint's refusals that the
// end-to-end suite checks, held here next to the code (RFC 6749 §5.2).
func TestTokenEndpointControls(t *testing.T) {
	f := newCtlFixture(t)
	cc := "grant_type=client_credentials"
	pw := "grant_type=password&username=alice&password=alice-password"
	for _, tc := range []struct {
		name       string
		body       string
		user, pass string // HTTP Basic when user is set
		status     int
		code       string
	}{
		// The request itself.
		{"repeated grant_type", cc + "&" + cc, "billing", f.secret, 400, "invalid_request"},
		{"repeated scope", cc + "&scope=read&scope=read", "billing", f.secret, 400, "invalid_request"},
		{"body over the limit", cc + "&pad=" + strings.Repeat("a", MaxBodyBytes), "billing", f.secret, 413, "invalid_request"},
		// token_endpoint_auth_method is the one registered.
		{"client_secret_basic client posts its secret", cc + "&client_id=billing&client_secret=" + url.QueryEscape(f.secret), "", "", 401, "invalid_client"},
		{"client_secret_post client uses Basic", cc, "reports", f.secret, 401, "invalid_client"},
		{"public client sends a secret", "grant_type=authorization_code&code=x&client_id=spa&client_secret=" + url.QueryEscape(f.secret), "", "", 401, "invalid_client"},
		// Grants only for the clients registered for them; the password
		// grant is for the trusted first-party client that lists it.
		{"password grant by a code-flow client", pw, "web", f.secret, 400, "unauthorized_client"},
		{"password grant by a machine client", pw, "billing", f.secret, 400, "unauthorized_client"},
		{"password grant by a public client", pw + "&client_id=spa", "", "", 400, "unauthorized_client"},
		{"client credentials by the password client", cc, "mobile", f.secret, 400, "unauthorized_client"},
		// Controls: each client with its own method and grant.
		{"control: client_secret_basic", cc, "billing", f.secret, 200, ""},
		{"control: client_secret_post", cc + "&client_id=reports&client_secret=" + url.QueryEscape(f.secret), "", "", 200, ""},
		{"control: password grant", pw, "mobile", f.secret, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, header := f.rawCall(t, pathToken, tc.body, tc.user, tc.pass)
			if tc.status == http.StatusOK {
				if status != http.StatusOK || body["access_token"] == nil {
					t.Errorf("%d %v", status, body)
				}
				return
			}
			wantOAuthError(t, tc.name, status, body, tc.status, tc.code)
			if status == http.StatusUnauthorized && !strings.HasPrefix(header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic challenge: %q", header.Get("WWW-Authenticate"))
			}
		})
	}
	// The other OAuth endpoints read their bodies the same way.
	for _, path := range []string{pathIntrospect, pathRevoke} {
		status, body, _ := f.rawCall(t, path, "token=x&token=y", "rs", f.secret)
		wantOAuthError(t, path+" repeated token", status, body, http.StatusBadRequest, "invalid_request")
		status, body, _ = f.rawCall(t, path, "token=x&pad="+strings.Repeat("a", MaxBodyBytes), "rs", f.secret)
		wantOAuthError(t, path+" body over the limit", status, body, http.StatusRequestEntityTooLarge, "invalid_request")
	}
}

// TestAuthorizeRepeatedParameter: RFC 6749 §3.1, parameters must not
// repeat; the error page, not a redirect, since which redirect_uri or
// client_id counts is unknown.
func TestAuthorizeRepeatedParameter(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	for _, param := range []string{"redirect_uri", "client_id", "state", "code_challenge"} {
		q := codeParams("spa", spaCallback)
		q.Add(param, q.Get(param))
		r := b.authorize(q)
		if r.status != http.StatusBadRequest || r.location != "" || !strings.Contains(r.body, "included more than once") {
			t.Errorf("%s twice: %s", param, r)
		}
	}
}

// TestImplicitGrant: implicit tokens live at most 30 minutes and never
// come with a refresh token; only clients registered for the grant get
// them (RFC 6749 §4.2.2.1 unauthorized_client, in the fragment).
func TestImplicitGrant(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	q := url.Values{"response_type": {"token"}, "client_id": {"legacy"}, "redirect_uri": {legacyCallback}, "scope": {"read"}, "state": {"state-implicit"}}
	r := b.authorize(q)
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location, legacyCallback+"#") {
		t.Fatalf("implicit: %s", r)
	}
	frag := r.locationParams(t)
	tok := frag.Get("access_token")
	if tok == "" || frag.Get("state") != "state-implicit" {
		t.Fatalf("fragment %v", frag)
	}
	if frag.Has("refresh_token") {
		t.Error("implicit grant issued a refresh token")
	}
	if exp, err := strconv.Atoi(frag.Get("expires_in")); err != nil || exp <= 0 || exp > 1800 {
		t.Errorf("expires_in = %q, want at most 1800", frag.Get("expires_in"))
	}
	status, info, _ := f.tokenCall(t, pathIntrospect, url.Values{"token": {tok}}, "rs", f.secret)
	exp, _ := info["exp"].(float64)
	iat, _ := info["iat"].(float64)
	// iat is truncated to the second, exp rounded: one second of slack,
	// far from the hour an access token gets otherwise.
	if status != http.StatusOK || info["active"] != true || exp-iat > 1801 || exp-iat <= 0 {
		t.Errorf("introspection %d %v: lifetime %vs, want at most 1800", status, info, exp-iat)
	}

	q.Set("client_id", "spa")
	q.Set("redirect_uri", spaCallback)
	r = b.authorize(q)
	if !strings.HasPrefix(r.location, spaCallback+"#") {
		t.Fatalf("implicit for spa: %s", r)
	}
	if frag := r.locationParams(t); frag.Get("error") != "unauthorized_client" || frag.Has("access_token") {
		t.Errorf("implicit for a client not registered for it: %v", frag)
	}
}

// TestCodeReuseRevokesGrant: a code redeems once; presenting it again
// fails and revokes every token the first redemption issued (RFC 6749
// §4.1.2, RFC 9700 §4.14), with an audit event.
func TestCodeReuseRevokesGrant(t *testing.T) {
	f := newCtlFixture(t)
	b := f.browser(t)
	b.signIn("alice")
	code := b.code(codeParams("spa", spaCallback))
	status, first := f.exchange(t, "spa", code, spaCallback, ctlVerifier)
	at, _ := first["access_token"].(string)
	rt, _ := first["refresh_token"].(string)
	if status != http.StatusOK || at == "" || rt == "" {
		t.Fatalf("first exchange: %d %v", status, first)
	}
	status, body := f.exchange(t, "spa", code, spaCallback, ctlVerifier)
	wantOAuthError(t, "second exchange", status, body, http.StatusBadRequest, "invalid_grant")
	if f.active(t, at) || f.active(t, rt) {
		t.Error("the tokens of the reused code's grant are still active")
	}
	status, body, _ = f.tokenCall(t, pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"spa"}}, "", "")
	wantOAuthError(t, "refresh after code reuse", status, body, http.StatusBadRequest, "invalid_grant")
	if ev := f.events(t, "alice"); len(ev) == 0 || ev[0] != "authorization_code_reuse" {
		t.Errorf("events %v, want authorization_code_reuse first", ev)
	}
}

// TestRefreshReuseRevokesGrant: refresh tokens are one-time; presenting a
// used one fails and revokes the grant, the successor tokens included. With
// the retry window (flow_refresh.go), the used token presented again while
// its successor is unused gets the same answer instead, and is reuse once
// the successor has been used; with the window at 0 it is reuse at once.
func TestRefreshReuseRevokesGrant(t *testing.T) {
	for _, window := range []time.Duration{0, 30 * time.Second} {
		t.Run(window.String(), func(t *testing.T) {
			f := newCtlFixture(t)
			cs := ctlClients(f.hash)
			for _, c := range cs {
				c.Lifetimes.RefreshRetryWindow = window
			}
			f.srv = f.newServer(t, cs)
			_, rt1 := f.passwordGrant(t)
			refresh := func(rt string) (int, map[string]any) {
				status, body, _ := f.tokenCall(t, pathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "mobile", f.secret)
				return status, body
			}
			status, second := refresh(rt1)
			at2, _ := second["access_token"].(string)
			rt2, _ := second["refresh_token"].(string)
			if status != http.StatusOK || at2 == "" || rt2 == "" || rt2 == rt1 {
				t.Fatalf("refresh: %d %v", status, second)
			}
			last := []string{at2, rt2}
			if window > 0 {
				status, again := refresh(rt1)
				if status != http.StatusOK || again["access_token"] != at2 || again["refresh_token"] != rt2 {
					t.Fatalf("retry within the window: %d %v, want the same pair", status, again)
				}
				status, third := refresh(rt2)
				at3, _ := third["access_token"].(string)
				rt3, _ := third["refresh_token"].(string)
				if status != http.StatusOK || rt3 == "" {
					t.Fatalf("refresh with the successor: %d %v", status, third)
				}
				last = []string{at3, rt3}
			}
			status, body := refresh(rt1)
			wantOAuthError(t, "reused refresh token", status, body, http.StatusBadRequest, "invalid_grant")
			if f.active(t, last[0]) || f.active(t, last[1]) {
				t.Error("the newest tokens survived the reuse")
			}
			status, body = refresh(last[1])
			wantOAuthError(t, "newest refresh token", status, body, http.StatusBadRequest, "invalid_grant")
			want := []string{"refresh_token_reuse", "login"}
			if window > 0 {
				want = []string{"refresh_token_reuse", "refresh_retried", "login"}
			}
			if ev := f.events(t, "alice"); !slices.Equal(ev, want) {
				t.Errorf("events %v, want %v", ev, want)
			}
		})
	}
}

// TestIntrospectionOwnTokensOnly: a client that is not a resource server
// sees only its own tokens as active (RFC 7662 §4); a resource server
// sees every client's.
func TestIntrospectionOwnTokensOnly(t *testing.T) {
	f := newCtlFixture(t)
	userToken, _ := f.passwordGrant(t)
	_, cc, _ := f.tokenCall(t, pathToken, url.Values{"grant_type": {"client_credentials"}}, "billing", f.secret)
	billingToken, _ := cc["access_token"].(string)
	for _, tc := range []struct {
		caller, token string
		active        bool
	}{
		{"billing", userToken, false},
		{"mobile", billingToken, false},
		{"billing", billingToken, true},
		{"mobile", userToken, true},
		{"rs", userToken, true},
		{"rs", billingToken, true},
	} {
		status, body, _ := f.tokenCall(t, pathIntrospect, url.Values{"token": {tc.token}}, tc.caller, f.secret)
		if status != http.StatusOK || body["active"] != tc.active {
			t.Errorf("%s introspects: %d %v, want active=%v", tc.caller, status, body, tc.active)
		}
		if !tc.active && len(body) != 1 {
			t.Errorf("%s learns about another client's token: %v", tc.caller, body)
		}
	}
}

// TestPasswordGrantOnlyForTrustedClients: a client registered for the
// password grant but not trusted (as a runtime registration could be) is
// refused before the password is checked, right or wrong.
func TestPasswordGrantOnlyForTrustedClients(t *testing.T) {
	f := newCtlFixture(t)
	cs := ctlClients(f.hash)
	for _, c := range cs {
		if c.ID == "mobile" {
			c.Trusted = false
		}
	}
	f.srv = f.newServer(t, cs)
	for _, pw := range []string{"alice-password", "wrong"} {
		status, body, _ := f.tokenCall(t, pathToken, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {pw}}, "mobile", f.secret)
		wantOAuthError(t, "untrusted client, password "+pw, status, body, http.StatusBadRequest, "unauthorized_client")
	}
	if evs := f.events(t, "alice"); len(evs) != 0 {
		t.Errorf("the refused attempts were audited as sign-ins: %v", evs)
	}
}
