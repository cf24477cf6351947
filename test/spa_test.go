package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

var (
	spaOnce sync.Once
	spaBin  string
	spaErr  error
)

// startSPA builds and runs examples/spa on addr (its redirect URIs must be
// registered before the server starts, so the port is chosen first).
func startSPA(t *testing.T, addr, issuer, apiURL string) *gwProc {
	t.Helper()
	dir, err := filepath.Abs("../examples/spa")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-client-ts")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("examples/spa/node_modules is missing; .ci/run runs npm ci there")
		}
		t.Skip("run `npm ci` in examples/spa first; skipping the SPA test")
	}
	spaOnce.Do(func() {
		spaBin = filepath.Join(filepath.Dir(binary), "spa")
		out, err := exec.Command("go", "build", "-o", spaBin, "github.com/postern-auth/postern/examples/spa").CombinedOutput()
		if err != nil {
			spaErr = fmt.Errorf("build examples/spa: %v\n%s", err, out)
		}
	})
	if spaErr != nil {
		t.Fatal(spaErr)
	}
	base := "http://" + addr
	return startGWProc(t, "spa", spaBin, []string{"--listen", addr, "--dir", dir, "--issuer", issuer,
		"--client-id", "spa", "--redirect-uri", base + "/callback", "--post-logout-redirect-uri", base + "/signed-out",
		"--api-url", apiURL}, nil, false)
}

// TestSPASignInCallAPIRefreshSignOut drives examples/spa, oidc-client-ts in
// a real browser with JavaScript on, against the real server and gateway:
// sign in as alice (code + PKCE, public client), her name from the ID
// token, an API call through the gateway to the echo backend with the
// access token (cross-origin: the gateway's route CORS, the server's
// token endpoint CORS), a refresh with the one-time refresh token, and
// RP-initiated logout landing back in the SPA.
func TestSPASignInCallAPIRefreshSignOut(t *testing.T) {
	spaFlow(t, nil)
}

// TestSPASAMLUser: the same SPA, with a user of the corporate SAML IdP
// (test/samlidp): the SSO button, the IdP's login, its POST form (which
// submits itself, script being on), Postern's consent, and back in the SPA
// as corp:alice with the IdP's name.
func TestSPASAMLUser(t *testing.T) {
	spaFlow(t, startSAMLIdP(t))
}

// spaFlow runs the SPA's whole flow with alice, the local user, or with the
// IdP's user when idp is not nil.
func spaFlow(t *testing.T, idp *idpProcess) {
	chromium := chromiumPath(t)
	wantName, wantUser, providers := "Alice Liddell", "alice", ""
	if idp != nil {
		wantName, wantUser = idpName, "corp:alice"
		providers = `, "saml_providers": [` + corpProvider(`"metadata_url": "`+idp.URL+`/metadata"`) + `]`
	}
	spaAddr := gwFreeAddr(t)
	spaOrigin := "http://" + spaAddr
	rsSecret, rsHash := newClientSecret(t)
	srv := startServer(t, writeConfig(t, fmt.Sprintf(`{
  "tokens": {"access_token_ttl": "10m"},
  "clients": [
    {"client_id": "spa", "client_name": "Example SPA", "token_endpoint_auth_method": "none",
     "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [%q],
     "post_logout_redirect_uris": [%q], "scope": "openid profile read"},
    {"client_id": "gateway", "client_secret_hash": %q, "grant_types": ["client_credentials"], "resource_server": true}
  ],
  "users": [
    {"username": "alice", "password": "alice-password", "claims": {"name": "Alice Liddell"}}
  ]%s
}`, spaOrigin+"/callback", spaOrigin+"/signed-out", rsHash, providers)), "")
	if idp != nil {
		idp.register(t, "corp", srv.URL+"/saml/corp/metadata")
	}
	backend := startEchoBackend(t)
	f := &gwFixture{srv: srv, gatewaySecret: rsSecret}
	gw := f.startGateway(t, backend.URL, func(c map[string]any) {
		route := c["routes"].([]any)[0].(map[string]any) // /search/v1, scope read
		route["cors"] = map[string]any{"allowed_origins": []string{spaOrigin}}
	})
	startSPA(t, spaAddr, srv.URL, gw.URL+"/search/v1/query")

	c := newChromium(t, chromium, 90*time.Second)
	if _, err := chromedp.Call(c.tab, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatalf("enable script: %v", err)
	}
	defer c.reportConsole()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(c.tab, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(c.tab, actions...); err != nil {
			html, _ := documentHTML(c.tab)
			t.Fatalf("%s: %v\n%s", what, err, html)
		}
	}
	waitText := func(sel, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			// A read may meet a page being replaced (sign-out navigates
			// away and back); the next one sees the new page.
			got, err := chromedp.Run(c.tab, chromedp.Text(chromedp.CSS(sel)))
			if err == nil && strings.Contains(got, want) {
				return
			}
			if time.Now().After(deadline) {
				html, _ := documentHTML(c.tab)
				t.Fatalf("%s shows %q (%v), want %q (error: %q)\n%s", sel, got, err, want, text("#error"), html)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	step("open the SPA", chromedp.Navigate(spaOrigin+"/"), chromedp.WaitVisible(chromedp.CSS("#sign-in")))
	waitText("#status", "Not signed in.")
	step("open Postern's login page", chromedp.Click(chromedp.CSS("#sign-in")), chromedp.WaitVisible(chromedp.CSS("#username")))
	if idp == nil {
		step("sign in", chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
			chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
			chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	} else {
		// The IdP's POST form submits itself: script is on.
		step("sign in at the IdP", chromedp.Click(chromedp.CSS(`a.button[href^="/saml/corp/login"]`)),
			chromedp.WaitVisible(chromedp.CSS("#user")),
			chromedp.SendKeys(chromedp.CSS("#user"), idpUser),
			chromedp.SendKeys(chromedp.CSS("#password"), idpPassword),
			chromedp.Click(chromedp.CSS("#login")))
	}
	step("consent", chromedp.WaitVisible(chromedp.CSS("button[value=allow]")),
		chromedp.Click(chromedp.CSS("button[value=allow]")),
		chromedp.WaitVisible(chromedp.CSS("#name")))
	if got := text("#name"); got != wantName {
		t.Errorf("name %q, want %q (from the ID token)", got, wantName)
	}
	if idp == nil {
		c.screenshots("spa-signed-in")
	}

	callAPI := func() string {
		t.Helper()
		if _, err := chromedp.Run(c.tab, chromedp.Evaluate[string](`document.getElementById("api-result").textContent = ""`)); err != nil {
			t.Fatalf("clear the API result: %v", err)
		}
		step("call the API", chromedp.Click(chromedp.CSS("#call-api")))
		waitText("#api-result", "\n")
		return text("#api-result")
	}
	// The page shows the status, a newline, and the echo backend's JSON.
	apiSeen := func(res string) echoSeen {
		t.Helper()
		status, body, _ := strings.Cut(res, "\n")
		var seen echoSeen
		if err := json.Unmarshal([]byte(body), &seen); status != "200" || err != nil {
			t.Fatalf("API answer through the gateway (%v):\n%s", err, res)
		}
		return seen
	}
	seen := apiSeen(callAPI())
	if seen.Headers["x-authenticated-userid"] != wantUser || seen.ClientID != "spa" || seen.Headers["origin"] != spaOrigin {
		t.Errorf("the backend saw user %q, client %q, origin %q", seen.Headers["x-authenticated-userid"], seen.ClientID, seen.Headers["origin"])
	}

	before := text("#token-tail")
	issued := func(grant string) int {
		return gwMetricValue(t, srv.MetricsURL(), "postern_tokens_issued_total", `grant_type="`+grant+`"`)
	}
	codes := issued("authorization_code")
	step("refresh", chromedp.Click(chromedp.CSS("#refresh")))
	waitText("#refreshes", "1")
	// Redeemed with the refresh token, not a hidden iframe's new code.
	if r, c := issued("refresh_token"), issued("authorization_code"); r != 1 || c != codes {
		t.Errorf("after the refresh: %d refresh_token grants (want 1), %d more codes redeemed (want 0)", r, c-codes)
	}
	if after := text("#token-tail"); after == before {
		t.Errorf("access token unchanged by the refresh (ends in %q)", after)
	}
	if got := text("#name"); got != wantName {
		t.Errorf("name after refresh %q", got)
	}
	if seen := apiSeen(callAPI()); seen.Headers["x-authenticated-userid"] != wantUser {
		t.Errorf("with the refreshed token the backend saw user %q", seen.Headers["x-authenticated-userid"])
	}

	step("sign out", chromedp.Click(chromedp.CSS("#sign-out")))
	waitText("#status", "Signed out.")
	loc, err := chromedp.Run(c.tab, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if loc != spaOrigin+"/" {
		t.Errorf("after sign-out the browser is at %s, want %s/", loc, spaOrigin)
	}
	if e := text("#error"); e != "" {
		t.Errorf("the page reported: %s", e)
	}
}
