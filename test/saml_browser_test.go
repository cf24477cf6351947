package test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestBrowserSAMLLogin drives Chromium through single sign-on: the
// authorization URL shows Postern's login page, its "Sign in with Corporate
// SSO" button leads to the IdP (test/samlidp), whose login form signs alice
// in; the IdP's form posts the response back to Postern's ACS, then consent
// and the redirect to the client, whose code buys a token for corp:alice.
//
// Script stays off in the whole browser, IdP included: the IdP's POST form
// submits itself with JavaScript, but it also shows a Continue button for
// browsers without, which the test presses. So every Postern page is
// checked to need no script, as before.
func TestBrowserSAMLLogin(t *testing.T) {
	chromium := chromiumPath(t)
	idp := startSAMLIdP(t)
	redirectURI, callbackQuery := startCallback(t)
	cfg, rsSecret := samlConfig(t, redirectURI, corpProvider(`"metadata_url": "`+idp.URL+`/metadata"`))
	f := &userFixture{srv: startServer(t, writeConfig(t, cfg), ""), rsPass: rsSecret}
	idp.register(t, "corp", f.srv.URL+"/saml/corp/metadata")
	conf := &oauth2.Config{
		ClientID: "spa", Scopes: []string{"read"}, RedirectURL: redirectURI,
		Endpoint: oauth2.Endpoint{AuthURL: f.srv.URL + "/oauth2/authorize", TokenURL: f.srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	state := "state-" + oauth2.GenerateVerifier()[:16]

	c := newChromium(t, chromium, 60*time.Second)
	tab := c.tab
	fail := func(format string, args ...any) {
		t.Helper()
		html, _ := documentHTML(tab)
		t.Fatalf(format+"\npage:\n%s", append(args, html)...)
	}

	// Postern's login page offers the SSO button.
	if err := chromedp.Do(tab,
		chromedp.Navigate(conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.CSS("#username")),
	); err != nil {
		fail("open the login page: %v", err)
	}
	c.checkPage("login", "Example SPA", "Sign in with Corporate SSO", `href="/saml/corp/login?auth=`)
	c.screenshots("saml-login")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(`a.button[href^="/saml/corp/login"]`))); err != nil {
		fail("click the SSO button: %v", err)
	}

	// The IdP's login form.
	if err := chromedp.Do(tab,
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), idpUser),
		chromedp.SendKeys(chromedp.CSS("#password"), idpPassword),
		chromedp.Click(chromedp.CSS("#login")),
	); err != nil {
		fail("sign in at the IdP: %v", err)
	}

	// The IdP's POST form, submitted by hand since script is off.
	if err := chromedp.Do(tab,
		chromedp.WaitVisible(chromedp.CSS("#SAMLSubmitButton")),
		chromedp.Click(chromedp.CSS("#SAMLSubmitButton")),
	); err != nil {
		fail("post the response to Postern: %v", err)
	}

	// Back at Postern: consent, as corp:alice.
	if err := chromedp.Do(tab, chromedp.WaitVisible(chromedp.CSS("button[value=allow]"))); err != nil {
		fail("no consent page after the ACS: %v", err)
	}
	html := c.checkPage("consent", "Allow access?", "Example SPA", "<strong>corp:alice</strong>")
	if strings.Contains(html, "alice@local.example") {
		t.Error("the consent page shows the local alice")
	}
	c.screenshots("saml-consent")
	if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("button[value=allow]"))); err != nil {
		fail("allow: %v", err)
	}

	var q url.Values
	select {
	case q = <-callbackQuery:
	case <-c.ctx.Done():
		fail("the browser never reached %s: %v", redirectURI, c.ctx.Err())
	}
	t.Logf("SSO flow took %v", time.Since(c.started).Round(time.Millisecond))
	if q.Get("state") != state || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("callback query = %v", q)
	}
	tok, err := conf.Exchange(c.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	info := f.introspect(t, tok.AccessToken)
	if info["active"] != true || info["sub"] != "corp:alice" || info["email"] != idpEmail || info["name"] != idpName {
		t.Errorf("introspection = %v", info)
	}
	c.reportConsole()
}
