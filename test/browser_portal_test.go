package test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestBrowserPortal is the developer's journey in headless Chromium (script
// off): sign in to the portal, read the Orders API's operations, create a
// service app and copy its secret, subscribe it to the API, get a
// client-credentials token with x/oauth2 and call the API through a real
// gateway (the backend sees the app's client ID and tier), rotate the
// secret (the old one works during the grace, then fails), delete the app
// (the gateway refuses its token within a second, through the revocation
// feed). Then a SPA app created in the portal signs alice in with code and
// PKCE. Pages are saved at 1280 and 360 pixels.
func TestBrowserPortal(t *testing.T) {
	chromium := chromiumPath(t)
	spaURI, spaCallback := startCallback(t)
	cfg, rsSecret := portalConfig(t, "")
	srv := startServer(t, writeConfig(t, cfg), "")
	backend := startEchoBackend(t)
	gwCfg, err := json.Marshal(map[string]any{
		"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0",
		"issuer": srv.URL, "client_id": "rs", "client_secret": "${GATEWAY_CLIENT_SECRET}",
		"cache":  map[string]any{"ttl": "1h", "negative_ttl": "1s"},
		"tiers":  map[string]any{"bronze": map[string]any{"requests": 1, "per": "1h", "burst": 1}, "gold": map[string]any{"requests": 1000, "per": "1s"}},
		"routes": []any{map[string]any{"path_prefix": "/orders/v1", "upstream": backend.URL, "strip_prefix": true, "scopes": []string{"orders.read"}, "tier": "bronze"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, string(gwCfg), "GATEWAY_CLIENT_SECRET="+rsSecret)
	waitFeedConnected(t, gw)

	c := newChromium(t, chromium, 120*time.Second)
	tab := c.tab
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tab, actions...); err != nil {
			html, _ := documentHTML(tab)
			t.Fatalf("%s: %v\n%s", what, err, html)
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	value := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Value(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("value of %s: %v", sel, err)
		}
		return v
	}

	// Sign in: /portal sends the developer to the login page and back.
	run("sign in to the portal",
		chromedp.Navigate(srv.URL+"/portal"),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "dev"),
		chromedp.SendKeys(chromedp.CSS("#password"), "dev-password"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/portal/apis/orders"]`)),
	)
	c.checkPage("portal", "Developer portal", "Orders API", "Create an app")
	c.screenshots("portal")

	// The API's page lists its operations and scopes.
	run("open the API page",
		chromedp.Click(chromedp.CSS(`a[href="/portal/apis/orders"]`)),
		chromedp.WaitVisible(chromedp.CSS("#operations")),
	)
	c.checkPage("portal-api", "Orders API", "List your orders", "Place an order", "See your orders", "<code>/orders</code>")
	c.screenshots("portal-api")

	// A service app; its secret is on the page once.
	run("create a service app",
		chromedp.Navigate(srv.URL+"/portal"),
		chromedp.WaitVisible(chromedp.CSS("#app-name")),
		chromedp.SendKeys(chromedp.CSS("#app-name"), "Billing sync"),
		chromedp.Click(chromedp.CSS("#kind-service")),
		chromedp.Click(chromedp.CSS(`form[action="/portal/apps"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#client-secret")),
	)
	c.checkPage("portal-app", "Copy the client secret now")
	c.screenshots("portal-app")
	appID, secret := text("#client-id"), value("#client-secret")
	if !strings.HasPrefix(appID, "app-") || len(secret) < 32 {
		t.Fatalf("client ID %q, secret of %d characters", appID, len(secret))
	}
	run("subscribe to the API",
		chromedp.SetValue(chromedp.CSS("#subscribe-api"), "orders"),
		chromedp.Click(chromedp.CSS(`form.subscribe button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role=status]`)),
	)
	if tier := text(`.facts dd:nth-of-type(3)`); tier != "gold" {
		t.Errorf("the app page gives tier %q after subscribing, want gold", tier)
	}

	ctx := context.Background()
	cc := func(secret string) (*oauth2.Token, error) {
		conf := clientcredentials.Config{ClientID: appID, ClientSecret: secret, TokenURL: srv.URL + "/oauth2/token", Scopes: []string{"orders.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		return conf.Token(ctx)
	}
	tok, err := cc(secret)
	if err != nil {
		t.Fatalf("client credentials for the portal app: %v", err)
	}
	// The route's own tier (bronze) allows one request an hour; the app's
	// gold tier, learnt from introspection, lets all of these through.
	for i := range 3 {
		seen := gwSeen(t, gw.URL+"/orders/v1/orders", tok.AccessToken, nil)
		if seen.ClientID != appID || seen.Headers["x-authenticated-tier"] != "gold" {
			t.Fatalf("request %d: the backend saw client %q tier %q, want %s and gold", i, seen.ClientID, seen.Headers["x-authenticated-tier"], appID)
		}
	}

	// Rotation: the old secret works during the grace (5s), then stops.
	run("rotate the secret",
		chromedp.Click(chromedp.CSS(`form[action$="/rotate"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#client-secret")),
	)
	rotated := value("#client-secret")
	if rotated == secret {
		t.Fatal("rotation showed the old secret")
	}
	if _, err := cc(rotated); err != nil {
		t.Errorf("the new secret: %v", err)
	}
	if _, err := cc(secret); err != nil {
		t.Errorf("the old secret during the grace: %v", err)
	}
	gwEventually(t, 20*time.Second, "the old secret stops working after the grace", func() bool {
		_, err := cc(secret)
		return err != nil && strings.Contains(err.Error(), "invalid_client")
	})
	if _, err := cc(rotated); err != nil {
		t.Errorf("the new secret after the grace: %v", err)
	}

	// Deletion cuts the app's token at the gateway within a second.
	passes(t, gw, "/orders/v1/orders", tok.AccessToken)
	run("delete the app",
		chromedp.Click(chromedp.CSS(`form[action$="/delete"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role=status]`)),
	)
	refusedWithin(t, gw, "/orders/v1/orders", tok.AccessToken, feedWithin)

	// A SPA app registered in the portal signs a user in with code + PKCE.
	run("create a SPA app",
		chromedp.WaitVisible(chromedp.CSS("#app-name")),
		chromedp.SendKeys(chromedp.CSS("#app-name"), "Orders SPA"),
		chromedp.Click(chromedp.CSS("#kind-spa")),
		chromedp.SendKeys(chromedp.CSS("#app-redirects"), spaURI),
		chromedp.Click(chromedp.CSS(`form[action="/portal/apps"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#client-id")),
		chromedp.SetValue(chromedp.CSS("#subscribe-api"), "orders"),
		chromedp.Click(chromedp.CSS(`form.subscribe button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role=status]`)),
	)
	spaID := text("#client-id")
	spa := &oauth2.Config{ClientID: spaID, Scopes: []string{"openid", "orders.read"}, RedirectURL: spaURI,
		Endpoint: oauth2.Endpoint{AuthURL: srv.URL + "/oauth2/authorize", TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	state := "state-" + verifier[:12]
	// dev is signed in already; the consent page shows the API's words.
	run("authorize the SPA",
		chromedp.Navigate(spa.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))),
		chromedp.WaitVisible(chromedp.CSS("button[value=allow]")),
	)
	c.checkPage("portal-spa-consent", "Orders SPA", "See your orders")
	run("allow", chromedp.Click(chromedp.CSS("button[value=allow]")))
	var q url.Values
	select {
	case q = <-spaCallback:
	case <-c.ctx.Done():
		t.Fatalf("the browser never reached the SPA's redirect URI: %v", c.ctx.Err())
	}
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("SPA callback: %v", q)
	}
	spaTok, err := spa.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("SPA code exchange: %v", err)
	}
	if spaTok.Extra("id_token") == nil || spaTok.RefreshToken == "" {
		t.Errorf("SPA tokens lack an ID token or a refresh token: %+v", spaTok)
	}
	seen := gwSeen(t, gw.URL+"/orders/v1/orders", spaTok.AccessToken, nil)
	if seen.ClientID != spaID || seen.UserID != "dev" {
		t.Errorf("the backend saw client %q user %q, want %s and dev", seen.ClientID, seen.UserID, spaID)
	}
	c.reportConsole()
}
