package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// OpenID Connect, proven with openid-client (npm), the library Node apps
// sign users in with: discovery, code + PKCE + nonce, the ID token
// validated by the library against the JWKS, userinfo, refresh, and the
// end-session URL.

// postLogoutURL is under callbackURL, where the test browser stops.
const postLogoutURL = callbackURL + "/signed-out"

// oidcConfig: an OpenID Connect SPA ("rp", public, code + refresh), a
// second client ("other"), and alice with configured claims.
func oidcConfig(t *testing.T, backchannel string) string {
	bc := ""
	if backchannel != "" {
		bc = fmt.Sprintf(`, "backchannel_logout_uri": %q`, backchannel)
	}
	return fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m"},
  "clients": [
    {"client_id": "rp", "client_name": "OIDC SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q],
     "post_logout_redirect_uris": [%q]%s, "scope": "openid profile email read"},
    {"client_id": "other", "client_name": "Other SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q],
     "post_logout_redirect_uris": ["http://127.0.0.1:3000/other-signed-out"], "scope": "openid profile"},
    {"client_id": "legacy", "client_name": "Legacy SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["implicit"], "redirect_uris": [%q], "scope": "openid profile"}
  ],
  "users": [
    {"username": "alice", "password": "alice-password", "claims": {"email": "alice@example.com", "name": "Alice Liddell", "team": "wonderland"}}
  ]
}`, callbackURL, postLogoutURL, bc, callbackURL, callbackURL)
}

// nodeScript finds node and the installed packages of dir, or skips
// outside CI.
func nodeScript(t *testing.T, dir string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is missing; .ci/run installs it")
		}
		t.Skip("node is not installed (apt-get install -y nodejs npm); skipping the openid-client test")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s/node_modules is missing; .ci/run runs npm ci there", dir)
		}
		t.Skipf("run `npm ci` in %s first; skipping", dir)
	}
	return node
}

type rpResult struct {
	Metadata             map[string]any `json:"metadata"`
	Claims               map[string]any `json:"claims"`
	IDToken              string         `json:"id_token"`
	Userinfo             map[string]any `json:"userinfo"`
	RefreshedClaims      map[string]any `json:"refreshed_claims"`
	RefreshedIDToken     string         `json:"refreshed_id_token"`
	RefreshedAccessToken string         `json:"refreshed_access_token"`
	EndSessionURL        string         `json:"end_session_url"`
}

// runRP runs rp.mjs against srv, signing in as alice in b when the
// library asks; it returns the result or the library's error.
func runRP(t *testing.T, srv *server, b *browser, mode string) (rpResult, string) {
	t.Helper()
	dir, _ := filepath.Abs("oidcclient")
	node := nodeScript(t, dir)
	cmd := exec.Command(node, "rp.mjs", srv.URL, "rp", callbackURL, postLogoutURL, mode)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	var msg struct {
		Authorize string   `json:"authorize"`
		Result    rpResult `json:"result"`
		Error     string   `json:"error"`
	}
	for lines.Scan() {
		msg.Authorize, msg.Error = "", ""
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Fatalf("rp.mjs said %q: %v", lines.Text(), err)
		}
		switch {
		case msg.Authorize != "":
			p := b.get(msg.Authorize)
			if strings.Contains(p.body, `name="password"`) {
				p = b.login(srv.URL, p, "alice", "alice-password")
			}
			if strings.Contains(p.body, `name="decision"`) {
				p = b.consent(srv.URL, p, "allow", true)
			}
			if p.status != http.StatusSeeOther && p.status != http.StatusFound {
				t.Fatalf("sign-in did not return to the client: %d\n%s", p.status, p.body)
			}
			_, _ = io.WriteString(stdin, p.location+"\n")
		case msg.Error != "":
			return rpResult{}, msg.Error
		default:
			return msg.Result, ""
		}
	}
	t.Fatalf("rp.mjs ended without a result: %v", lines.Err())
	return rpResult{}, ""
}

func TestOpenIDClientSignsIn(t *testing.T) {
	srv := startServer(t, writeConfig(t, oidcConfig(t, "")), "")
	b := newBrowser(t)
	res, errMsg := runRP(t, srv, b, "")
	if errMsg != "" {
		t.Fatalf("openid-client failed: %s", errMsg)
	}
	for _, k := range []string{"userinfo_endpoint", "end_session_endpoint", "jwks_uri"} {
		if s, _ := res.Metadata[k].(string); !strings.HasPrefix(s, srv.URL+"/") {
			t.Errorf("discovery %s = %v", k, res.Metadata[k])
		}
	}
	c := res.Claims
	if c["iss"] != srv.URL || c["sub"] != "alice" || c["name"] != "Alice Liddell" || c["email"] != "alice@example.com" {
		t.Errorf("ID token claims: %v", c)
	}
	for _, k := range []string{"auth_time", "at_hash", "nonce", "sid", "exp", "iat"} {
		if _, ok := c[k]; !ok {
			t.Errorf("ID token has no %s: %v", k, c)
		}
	}
	if amr, _ := c["amr"].([]any); len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("amr = %v, want [pwd]", c["amr"])
	}
	u := res.Userinfo
	if u["sub"] != "alice" || u["name"] != "Alice Liddell" || u["email"] != "alice@example.com" || u["team"] != "wonderland" || u["preferred_username"] != "alice" {
		t.Errorf("userinfo: %v", u)
	}
	r := res.RefreshedClaims
	if res.RefreshedIDToken == "" || res.RefreshedIDToken == res.IDToken || r["sub"] != "alice" || r["auth_time"] != c["auth_time"] || r["sid"] != c["sid"] {
		t.Errorf("refreshed ID token: %v (first: %v)", r, c)
	}
	end, err := url.Parse(res.EndSessionURL)
	if err != nil || !strings.HasPrefix(res.EndSessionURL, srv.URL+"/oauth2/logout?") {
		t.Fatalf("end-session URL %q", res.EndSessionURL)
	}
	if end.Query().Get("id_token_hint") != res.RefreshedIDToken || end.Query().Get("post_logout_redirect_uri") != postLogoutURL {
		t.Errorf("end-session URL parameters: %v", end.Query())
	}

	// The library's end-session URL signs alice out and lands back at the
	// client, with its state.
	p := b.get(res.EndSessionURL)
	if p.status != http.StatusSeeOther || p.location != postLogoutURL+"?state=bye" {
		t.Fatalf("end session: %d %q\n%s", p.status, p.location, p.body)
	}
	// Signed out: prompt=none now gets login_required.
	q := url.Values{"client_id": {"rp"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {callbackURL},
		"state": {"s-1"}, "prompt": {"none"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	p = b.get(srv.URL + "/oauth2/authorize?" + q.Encode())
	if got := callback(t, p); got.Get("error") != "login_required" {
		t.Errorf("prompt=none after sign-out: %v", got)
	}
}

func TestOpenIDClientRejectsWrongNonce(t *testing.T) {
	srv := startServer(t, writeConfig(t, oidcConfig(t, "")), "")
	_, errMsg := runRP(t, srv, newBrowser(t), "wrong-nonce")
	if !strings.Contains(errMsg, `unexpected ID Token "nonce" claim value`) {
		t.Fatalf("openid-client with a wrong expected nonce: %q, want a nonce mismatch", errMsg)
	}
}

// oidcSignIn runs the code flow with PKCE in b for client and returns the
// token response.
func oidcSignIn(t *testing.T, srv *server, b *browser, client, scope string, extra url.Values) map[string]any {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := url.Values{"client_id": {client}, "response_type": {"code"}, "scope": {scope}, "redirect_uri": {callbackURL},
		"state": {"state-1"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	p := b.get(srv.URL + "/oauth2/authorize?" + q.Encode())
	if strings.Contains(p.body, `name="password"`) {
		p = b.login(srv.URL, p, "alice", "alice-password")
	}
	if strings.Contains(p.body, `name="decision"`) {
		p = b.consent(srv.URL, p, "allow", true)
	}
	code := callback(t, p).Get("code")
	resp, body := postForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"client_id": {client}, "redirect_uri": {callbackURL}, "code_verifier": {verifier}}, "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code exchange: %d %v", resp.StatusCode, body)
	}
	return body
}

// A refresh repeated within the retry window gets the very ID token the
// first answer carried, not a second one: the OpenID refresh handler runs
// inside the retry window's capture.
func TestOpenIDRefreshRetryKeepsIDToken(t *testing.T) {
	srv := startServer(t, writeConfig(t, oidcConfig(t, "")), "")
	first := oidcSignIn(t, srv, newBrowser(t), "rp", "openid profile", nil)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}, "client_id": {"rp"}}
	_, a := postForm(t, srv.URL+"/oauth2/token", form, "", "")
	_, b := postForm(t, srv.URL+"/oauth2/token", form, "", "")
	idA, _ := a["id_token"].(string)
	if idA == "" || idA == first["id_token"] {
		t.Fatalf("refresh: %v; want a new ID token", a)
	}
	if b["id_token"] != idA || b["access_token"] != a["access_token"] || b["refresh_token"] != a["refresh_token"] {
		t.Errorf("retried refresh:\n first %v\n retry %v\nwant the very same answer, ID token included", a, b)
	}
}

func bearerGet(t *testing.T, u, token string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

// Userinfo answers RFC 6750's way: no token, a revoked token, an expired
// token, and a token without openid.
func TestOpenIDUserinfoErrors(t *testing.T) {
	cfg := strings.Replace(oidcConfig(t, ""), `"access_token_ttl": "10m"`, `"access_token_ttl": "2s", "refresh_retry_window": "1s"`, 1)
	srv := startServer(t, writeConfig(t, cfg), "")
	b := newBrowser(t)
	ui := srv.URL + "/oauth2/userinfo"

	resp, _ := bearerGet(t, ui, "")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="`+srv.URL+`"` {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	tok := oidcSignIn(t, srv, b, "rp", "openid email", nil)
	at := tok["access_token"].(string)
	resp, body := bearerGet(t, ui, at)
	if resp.StatusCode != http.StatusOK || body["email"] != "alice@example.com" || body["name"] != nil {
		t.Errorf("userinfo with scope openid email: %d %v (want email, no name)", resp.StatusCode, body)
	}
	// POST with the token in the body (RFC 6750 §2.2).
	resp, body = postForm(t, ui, url.Values{"access_token": {at}}, "", "")
	if resp.StatusCode != http.StatusOK || body["sub"] != "alice" {
		t.Errorf("POST userinfo: %d %v", resp.StatusCode, body)
	}
	if resp, _ := postForm(t, srv.URL+"/oauth2/revoke", url.Values{"token": {at}, "client_id": {"rp"}}, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	resp, _ = bearerGet(t, ui, at)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("revoked token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// A token without openid is the wrong scope; an expired one is invalid.
	plain := oidcSignIn(t, srv, b, "rp", "read", nil)["access_token"].(string)
	resp, _ = bearerGet(t, ui, plain)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("token without openid: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	short := oidcSignIn(t, srv, b, "rp", "openid", nil)["access_token"].(string)
	gwEventually(t, 10*time.Second, "the access token to expire", func() bool {
		resp, _ := bearerGet(t, ui, short)
		return resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	})
}

// prompt, max_age and login_hint at the authorization endpoint.
func TestOpenIDPromptAndMaxAge(t *testing.T) {
	srv := startServer(t, writeConfig(t, oidcConfig(t, "")), "")
	b := newBrowser(t)
	q := url.Values{"client_id": {"rp"}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {callbackURL},
		"state": {"s-1"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	with := func(k, v string) string {
		c := url.Values{}
		for kk, vv := range q {
			c[kk] = vv
		}
		c.Set(k, v)
		return srv.URL + "/oauth2/authorize?" + c.Encode()
	}
	// No session: prompt=none is login_required, without a page.
	if got := callback(t, b.get(with("prompt", "none"))); got.Get("error") != "login_required" {
		t.Errorf("prompt=none without a session: %v", got)
	}
	// login_hint fills in the username.
	if p := b.get(with("login_hint", "alice")); !strings.Contains(p.body, `value="alice"`) {
		t.Errorf("login_hint not on the login page:\n%s", p.body)
	}
	tok := oidcSignIn(t, srv, b, "rp", "openid", nil)
	// Signed in, consent remembered: prompt=none answers with a code;
	// prompt=consent and prompt=login show their pages again.
	if got := callback(t, b.get(with("prompt", "none"))); got.Get("code") == "" {
		t.Errorf("prompt=none with a session: %v", got)
	}
	if p := b.get(with("prompt", "consent")); !strings.Contains(p.body, `name="decision"`) {
		t.Errorf("prompt=consent: no consent page (%d)", p.status)
	}
	if p := b.get(with("prompt", "login")); !strings.Contains(p.body, `name="password"`) {
		t.Errorf("prompt=login: no login page (%d)", p.status)
	}
	// max_age=0: the sign-in is too old, so the user signs in again.
	if p := b.get(with("max_age", "0")); !strings.Contains(p.body, `name="password"`) {
		t.Errorf("max_age=0: no login page (%d)", p.status)
	}
	// The ID token of another user's session as a hint with prompt=none.
	hint := tok["id_token"].(string)
	other := newBrowser(t)
	if got := callback(t, other.get(with("prompt", "none")+"&id_token_hint="+hint)); got.Get("error") != "login_required" {
		t.Errorf("prompt=none with a hint but no session: %v", got)
	}
}

// RP-Initiated Logout refuses what it cannot vouch for: another client's
// ID token, an unregistered post_logout_redirect_uri. Neither redirects.
func TestOpenIDEndSessionRefusals(t *testing.T) {
	srv := startServer(t, writeConfig(t, oidcConfig(t, "")), "")
	b := newBrowser(t)
	otherHint := oidcSignIn(t, srv, b, "other", "openid", nil)["id_token"].(string)
	rpHint := oidcSignIn(t, srv, b, "rp", "openid", nil)["id_token"].(string)
	end := srv.URL + "/oauth2/logout?"
	cases := []struct{ name, query string }{
		{"another client's id_token_hint", url.Values{"id_token_hint": {otherHint}, "client_id": {"rp"}, "post_logout_redirect_uri": {postLogoutURL}}.Encode()},
		{"another client's id_token_hint alone", url.Values{"id_token_hint": {otherHint}, "post_logout_redirect_uri": {postLogoutURL}}.Encode()},
		{"unregistered post_logout_redirect_uri", url.Values{"id_token_hint": {rpHint}, "post_logout_redirect_uri": {"http://127.0.0.1:3000/callback/elsewhere"}}.Encode()},
		{"a forged hint", url.Values{"id_token_hint": {rpHint[:len(rpHint)-4] + "AAAA"}, "post_logout_redirect_uri": {postLogoutURL}}.Encode()},
	}
	for _, tc := range cases {
		p := b.get(end + tc.query)
		if p.status != http.StatusBadRequest || p.location != "" {
			t.Errorf("%s: %d %q, want 400 and no redirect", tc.name, p.status, p.location)
		}
	}
	// Still signed in: none of those signed alice out.
	if p := b.get(srv.URL + "/account"); p.status != http.StatusOK || strings.Contains(p.body, `name="password"`) {
		t.Errorf("after refused sign-outs the account page is %d", p.status)
	}
	// Without a hint the user confirms on a page (CSRF form), then lands
	// at the registered address.
	p := b.get(end + url.Values{"client_id": {"rp"}, "post_logout_redirect_uri": {postLogoutURL}, "state": {"x"}}.Encode())
	if p.status != http.StatusOK || !strings.Contains(p.body, `value="logout"`) {
		t.Fatalf("sign-out without a hint: %d, want a confirmation page\n%s", p.status, p.body)
	}
	f := formFields(t, p)
	f.Set("decision", "logout")
	p = b.post(srv.URL+"/oauth2/logout", f)
	if p.status != http.StatusSeeOther || p.location != postLogoutURL+"?state=x" {
		t.Errorf("confirmed sign-out: %d %q", p.status, p.location)
	}
}

// The implicit OpenID flows of legacy SPAs: "id_token token" and
// "id_token", nonce required (OIDC Core §3.2.2.1), the ID token carrying
// the nonce and, with an access token, its at_hash.
func TestOpenIDImplicit(t *testing.T) {
	srv := startServer(t, writeConfig(t, oidcConfig(t, "")), "")
	b := newBrowser(t)
	q := func(rt, nonce string) string {
		v := url.Values{"client_id": {"legacy"}, "response_type": {rt}, "scope": {"openid profile"}, "redirect_uri": {callbackURL}, "state": {"s-1"}}
		if nonce != "" {
			v.Set("nonce", nonce)
		}
		return srv.URL + "/oauth2/authorize?" + v.Encode()
	}
	p := b.get(q("id_token token", "n-0123456789"))
	p = b.login(srv.URL, p, "alice", "alice-password")
	if strings.Contains(p.body, `name="decision"`) {
		p = b.consent(srv.URL, p, "allow", true)
	}
	got := callback(t, p)
	c := verifyTypedJWT(t, srv, got.Get("id_token"), "JWT")
	if got.Get("access_token") == "" || c["nonce"] != "n-0123456789" || c["at_hash"] == nil || c["aud"] == nil || c["sub"] != "alice" {
		t.Errorf("id_token token: %v, claims %v", got, c)
	}
	got = callback(t, b.get(q("id_token", "n-9876543210")))
	if c := verifyTypedJWT(t, srv, got.Get("id_token"), "JWT"); got.Get("access_token") != "" || c["nonce"] != "n-9876543210" || c["at_hash"] != nil {
		t.Errorf("id_token alone: %v, claims %v", got, c)
	}
	if got := callback(t, b.get(q("id_token token", ""))); got.Get("error") != "invalid_request" || got.Get("access_token") != "" {
		t.Errorf("implicit without nonce: %v, want invalid_request", got)
	}
}
