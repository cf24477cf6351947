package test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// accountFixture: alice and bob; two public SPAs and a trusted mobile app
// registered for the "account" scope of the JSON API.
func newAccountFixture(t *testing.T) *userFixture {
	secret, hash := newClientSecret(t)
	cfg := fmt.Sprintf(`{
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "introspect", "resource_server": true},
    {"client_id": "spa", "client_name": "Photo SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read write"},
    {"client_id": "notes", "client_name": "Notes SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q], "scope": "read"},
    {"client_id": "mobile", "client_name": "Mobile", "client_secret": "mobile-dev-secret-0123456789", "trusted": true,
     "grant_types": ["password", "refresh_token"], "scope": "read account"}
  ],
  "users": [
    {"username": "alice", "password": "alice-password"},
    {"username": "bob", "password": "bob-password"}
  ],
  "apis": [{"id": "photos", "name": "Photos", "base_url": "https://photos.example.com", "scopes": {"read": "See your photos"}}]
}`, hash, callbackURL, callbackURL)
	return &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: secret}
}

// codeFlow runs the code flow in browser b (signing in if needed).
func (f *userFixture) codeFlow(t *testing.T, b *browser, conf *oauth2.Config, user, pass string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	p := b.get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)))
	if strings.Contains(p.body, `name="password"`) {
		p = b.login(f.srv.URL, p, user, pass)
	}
	if strings.Contains(p.body, `name="decision"`) {
		p = b.consent(f.srv.URL, p, "allow", true)
	}
	tok, err := conf.Exchange(context.Background(), callback(t, p).Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

var grantIDField = regexp.MustCompile(`name="grant" value="([^"]+)"`)

func grantIDs(p page) []string {
	var ids []string
	for _, m := range grantIDField.FindAllStringSubmatch(p.body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestAccountPageRevokesOneGrant(t *testing.T) {
	f := newAccountFixture(t)
	ctx := context.Background()
	alice := newBrowser(t)
	spa := f.oauthConfig("spa", "", "read")
	notes := f.oauthConfig("notes", "", "read")
	spaTok := f.codeFlow(t, alice, spa, "alice", "alice-password")
	notesTok := f.codeFlow(t, alice, notes, "alice", "alice-password")

	p := alice.get(f.srv.URL + "/account")
	if p.status != http.StatusOK {
		t.Fatalf("/account: %d\n%s", p.status, p.body)
	}
	ids := grantIDs(p)
	if len(ids) != 2 || !strings.Contains(p.body, "Photo SPA") || !strings.Contains(p.body, "Notes SPA") {
		t.Fatalf("want two grant rows naming both apps, got %d:\n%s", len(ids), p.body)
	}
	if !strings.Contains(p.body, "Remembered permissions") || strings.Count(p.body, `name="client" value=`) != 2 {
		t.Errorf("the two remembered consents are not listed")
	}
	// Both lists say what "read" allows, in the API catalogue's words.
	if n := strings.Count(p.body, `See your photos <small class="scope-name"><code>read</code></small>`); n != 4 {
		t.Errorf("the catalogue's description of read appears %d times, want 4 (two grants, two consents):\n%s", n, p.body)
	}

	// Which row is the SPA's? Revoke it through the form.
	spaID := ""
	for _, id := range ids {
		i := strings.Index(p.body, `value="`+id+`"`)
		row := p.body[strings.LastIndex(p.body[:i], "<tr>"):i]
		if strings.Contains(row, "Photo SPA") {
			spaID = id
		}
	}
	if spaID == "" {
		t.Fatal("could not find the Photo SPA row")
	}
	form := formFields(t, p)
	form.Set("grant", spaID)
	r := alice.post(f.srv.URL+"/account/grants/revoke", form)
	if r.status != http.StatusOK || !strings.Contains(r.body, "Access revoked") {
		t.Fatalf("revoke: %d\n%s", r.status, r.body)
	}
	if f.introspect(t, spaTok.AccessToken)["active"] != false {
		t.Error("revoked grant's access token still active")
	}
	spaTok.Expiry = time.Now().Add(-time.Minute)
	if _, err := spa.TokenSource(ctx, spaTok).Token(); !isOAuthError(err, "invalid_grant") {
		t.Errorf("refresh of revoked grant: %v, want invalid_grant", err)
	}
	if f.introspect(t, notesTok.AccessToken)["active"] != true {
		t.Error("the other app's token was revoked too")
	}
	notesTok.Expiry = time.Now().Add(-time.Minute)
	if _, err := notes.TokenSource(ctx, notesTok).Token(); err != nil {
		t.Errorf("the other app can no longer refresh: %v", err)
	}
	p = alice.get(f.srv.URL + "/account")
	if len(grantIDs(p)) != 1 || !strings.Contains(p.body, "You revoked the access of Photo SPA") {
		t.Errorf("after revocation: %d grants; event shown: %v", len(grantIDs(p)), strings.Contains(p.body, "You revoked"))
	}
}

func TestAccountIDORAndCSRF(t *testing.T) {
	f := newAccountFixture(t)
	alice, bob := newBrowser(t), newBrowser(t)
	aliceTok := f.codeFlow(t, alice, f.oauthConfig("spa", "", "read"), "alice", "alice-password")
	f.codeFlow(t, bob, f.oauthConfig("spa", "", "read"), "bob", "bob-password")
	aliceID := grantIDs(alice.get(f.srv.URL + "/account"))[0]

	// Bob, signed in with a valid CSRF token, names alice's grant: 404.
	bp := bob.get(f.srv.URL + "/account")
	form := formFields(t, bp)
	form.Set("grant", aliceID)
	if r := bob.post(f.srv.URL+"/account/grants/revoke", form); r.status != http.StatusNotFound {
		t.Errorf("bob revoking alice's grant: %d, want 404", r.status)
	}
	if f.introspect(t, aliceTok.AccessToken)["active"] != true {
		t.Fatal("bob revoked alice's grant")
	}
	// Bob's revoke-all leaves alice alone.
	if r := bob.post(f.srv.URL+"/account/grants/revoke-all", formFields(t, bp)); r.status != http.StatusOK {
		t.Errorf("revoke-all: %d", r.status)
	}
	if f.introspect(t, aliceTok.AccessToken)["active"] != true {
		t.Fatal("bob's revoke-all touched alice's grant")
	}
	// Alice without (or with a wrong) CSRF token: 403, nothing happens.
	for _, csrf := range []string{"", "forged-token-value-forged-token-value"} {
		r := alice.post(f.srv.URL+"/account/grants/revoke", url.Values{"grant": {aliceID}, "csrf_token": {csrf}})
		if r.status != http.StatusForbidden {
			t.Errorf("CSRF %q: status %d, want 403", csrf, r.status)
		}
	}
	if r := alice.get(f.srv.URL + "/account/grants/revoke?grant=" + aliceID); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET revoke: %d, want 405", r.status)
	}
	if f.introspect(t, aliceTok.AccessToken)["active"] != true {
		t.Fatal("a request without CSRF revoked the grant")
	}
	// Signed out: the account page sends to the login page.
	anon := newBrowser(t)
	anon.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if r := anon.get(f.srv.URL + "/account"); r.status != http.StatusSeeOther || r.location != "/login" {
		t.Errorf("anonymous /account: %d → %q", r.status, r.location)
	}
}

func TestAccountJSONAPI(t *testing.T) {
	f := newAccountFixture(t)
	ctx := context.Background()
	mobile := f.oauthConfig("mobile", "mobile-dev-secret-0123456789")
	withAccount, err := mobile.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	mobile.Scopes = []string{"read"}
	without, err := mobile.PasswordCredentialsToken(ctx, "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	api := f.srv.URL + "/account/api/grants"
	get := func(tok string) (*http.Response, map[string]any) {
		req := mustGet(t, api)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return do(t, req)
	}
	if resp, body := get(without.AccessToken); resp.StatusCode != http.StatusForbidden || body["error"] != "insufficient_scope" ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("token without account scope: %d %v %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, _ := get(""); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer realm="postern"` {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, body := get("garbage"); resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_token" {
		t.Errorf("bad token: %d %v", resp.StatusCode, body)
	}
	resp, body := get(withAccount.AccessToken)
	grants, _ := body["grants"].([]any)
	if resp.StatusCode != http.StatusOK || len(grants) != 2 {
		t.Fatalf("list: %d %v", resp.StatusCode, body)
	}
	// Revoke the grant of the token without the account scope.
	var target string
	for _, g := range grants {
		gm := g.(map[string]any)
		if fmt.Sprint(gm["scopes"]) == "[read]" {
			target = gm["id"].(string)
		}
		if gm["client_name"] != "Mobile" || gm["grant_type"] != "password" {
			t.Errorf("grant = %v", gm)
		}
	}
	del := func(id string) int {
		req, _ := http.NewRequest(http.MethodDelete, api+"/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+withAccount.AccessToken)
		resp, _ := do(t, req)
		return resp.StatusCode
	}
	if code := del(target); code != http.StatusNoContent {
		t.Fatalf("DELETE own grant: %d", code)
	}
	if f.introspect(t, without.AccessToken)["active"] != false {
		t.Error("revoked through the API but still active")
	}
	if code := del(target); code != http.StatusNotFound {
		t.Errorf("DELETE again: %d, want 404", code)
	}
	if code := del("no-such-grant"); code != http.StatusNotFound {
		t.Errorf("DELETE unknown: %d, want 404", code)
	}
}

func TestAccountShowsRefreshReuse(t *testing.T) {
	f := newAccountFixture(t)
	ctx := context.Background()
	alice := newBrowser(t)
	conf := f.oauthConfig("spa", "", "read")
	tok := f.codeFlow(t, alice, conf, "alice", "alice-password")
	tok.Expiry = time.Now().Add(-time.Minute)
	next, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatal(err)
	}
	// Its successor used, the first refresh token is no retry but reuse.
	next.Expiry = time.Now().Add(-time.Minute)
	if _, err := conf.TokenSource(ctx, next).Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := conf.TokenSource(ctx, tok).Token(); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("replay: %v", err)
	}
	p := alice.get(f.srv.URL + "/account")
	if !strings.Contains(p.body, "A refresh token of Photo SPA was used twice; we signed the app out to be safe") {
		t.Errorf("reuse event not on the page:\n%s", p.body)
	}
	if len(grantIDs(p)) != 0 {
		t.Error("the revoked grant is still listed")
	}
	if !strings.Contains(p.body, "Signed in") {
		t.Error("login event not listed")
	}
}
