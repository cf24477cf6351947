package test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

var (
	portalClientID     = regexp.MustCompile(`<code id="client-id">([^<]+)</code>`)
	portalClientSecret = regexp.MustCompile(`id="client-secret"[^>]* value="([^"]+)"`)
)

// TestGatewayAppliesPortalTier: a developer creates a service app in the
// portal and subscribes it to an API whose tier is gold; the gateway,
// whose configuration names no client, limits the app at gold's rate and
// tells the backend so, while a configured client gets the route's bronze.
func TestGatewayAppliesPortalTier(t *testing.T) {
	gwSecret, gwHash := newClientSecret(t)
	billingSecret, billingHash := newClientSecret(t)
	srv := startServer(t, writeConfig(t, fmt.Sprintf(`{
  "clients": [
    {"client_id": "gateway", "client_secret_hash": %q, "grant_types": ["client_credentials"], "resource_server": true},
    {"client_id": "billing", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "read"}
  ],
  "users": [{"username": "alice", "password": "alice-password"}],
  "apis": [{"id": "search", "name": "Search", "base_url": "https://api.example.com/search/v1",
            "scopes": {"search.read": "Search the catalogue"}, "tier": "gold"}],
  "portal": {"developers": ["alice"]}
}`, gwHash, billingHash)), "")

	// The developer's side, as the portal's forms post it.
	b := newBrowser(t)
	p := b.login(srv.URL, b.get(srv.URL+"/portal"), "alice", "alice-password")
	f := formFields(t, p)
	f.Set("name", "Tier test")
	f.Set("kind", "service")
	p = b.post(srv.URL+"/portal/apps", f)
	idM, secretM := portalClientID.FindStringSubmatch(p.body), portalClientSecret.FindStringSubmatch(p.body)
	if p.status != http.StatusCreated || idM == nil || secretM == nil {
		t.Fatalf("create app: status %d:\n%s", p.status, p.body)
	}
	appID, appSecret := html.UnescapeString(idM[1]), html.UnescapeString(secretM[1])
	f = formFields(t, p)
	f.Set("api", "search")
	if p = b.post(srv.URL+"/portal/apps/"+url.PathEscape(appID)+"/subscribe", f); p.status != http.StatusOK || !strings.Contains(p.body, "gold") {
		t.Fatalf("subscribe: status %d:\n%s", p.status, p.body)
	}

	backend := startEchoBackend(t)
	gw := startGateway(t, fmt.Sprintf(`{
  "listen": "127.0.0.1:0", "issuer": %q, "client_id": "gateway", "client_secret": "${GATEWAY_CLIENT_SECRET}",
  "tiers": {"gold": {"requests": 3, "per": "1h"}, "bronze": {"requests": 1, "per": "1h"}},
  "routes": [{"path_prefix": "/search/v1", "upstream": %q, "strip_prefix": true, "tier": "bronze"}]
}`, srv.URL, backend.URL), "GATEWAY_CLIENT_SECRET="+gwSecret)

	token := func(id, secret, scope string) string {
		cc := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: srv.URL + "/oauth2/token",
			Scopes: []string{scope}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatalf("%s token: %v", id, err)
		}
		return tok.AccessToken
	}
	for _, c := range []struct {
		name, token, tier string
		allowed           int
	}{
		{"portal app", token(appID, appSecret, "search.read"), "gold", 3},
		{"configured client", token("billing", billingSecret, "read"), "bronze", 1},
	} {
		for i := range c.allowed {
			resp, body := gwGet(t, gw.URL+"/search/v1/q", c.token, map[string]string{"X-Authenticated-Tier": "platinum"})
			seen := decodeSeen(t, resp, body)
			if got := seen.Headers["x-authenticated-tier"]; got != c.tier {
				t.Errorf("%s request %d: backend saw tier %q, want %q", c.name, i, got, c.tier)
			}
			if got, want := resp.Header.Get("RateLimit-Limit"), fmt.Sprint(c.allowed); got != want {
				t.Errorf("%s request %d: RateLimit-Limit %q, want %q", c.name, i, got, want)
			}
		}
		if resp, _ := gwGet(t, gw.URL+"/search/v1/q", c.token, nil); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s request %d: status %d, want 429", c.name, c.allowed, resp.StatusCode)
		}
	}
}
