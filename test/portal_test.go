package test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The developer portal through the real binary with a cookie-jar client:
// who may use it, whose apps one sees, the limits, and the audit trail.
// The browser test (browser_portal_test.go) drives the full journey.

const portalOpenAPI = `openapi: 3.0.3
info:
  title: Orders
  version: "1.4"
paths:
  /orders:
    get:
      operationId: listOrders
      summary: List your orders
      security: [{oauth: [orders.read]}]
      responses: {"200": {description: ok}}
    post:
      operationId: createOrder
      summary: Place an order
      security: [{oauth: [orders.write]}]
      responses: {"201": {description: created}}
components:
  securitySchemes:
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://auth.example/oauth2/token
          scopes: {orders.read: read, orders.write: write}
`

// portalConfig is a server with one API (orders, tier gold, an OpenAPI
// document), the portal open to dev and bob, alice a plain user, and the
// rs client that introspects. extra is spliced into the top level.
func portalConfig(t *testing.T, extra string) (cfg, rsSecret string) {
	t.Helper()
	dir := t.TempDir()
	spec := filepath.Join(dir, "orders.yaml")
	if err := os.WriteFile(spec, []byte(portalOpenAPI), 0o644); err != nil {
		t.Fatal(err)
	}
	secret, hash := newClientSecret(t)
	return fmt.Sprintf(`{
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "resource_server": true}
  ],
  "users": [
    {"username": "dev", "password": "dev-password"},
    {"username": "bob", "password": "bob-password"},
    {"username": "alice", "password": "alice-password"}
  ],
  "apis": [{
    "id": "orders", "name": "Orders API", "description": "Place and track orders.",
    "base_url": "https://api.example.com/orders/v1",
    "scopes": {"orders.read": "See your orders", "orders.write": "Place orders for you"},
    "tier": "gold", "openapi": %q
  }],
  "portal": {"developers": ["dev", "bob"], "max_apps_per_developer": 2, "secret_rotation_grace": "5s"}%s
}`, hash, spec, extra), secret
}

// portalSignIn signs user in through the portal's login redirect and
// returns the portal page it lands on.
func portalSignIn(t *testing.T, srvURL, user, pass string) (*browser, page) {
	t.Helper()
	b := newBrowser(t)
	login := b.get(srvURL + "/portal")
	if !strings.Contains(login.body, `name="then" value="portal"`) {
		t.Fatalf("/portal without a session is not the login page for the portal (%d):\n%s", login.status, login.body)
	}
	return b, b.login(srvURL, login, user, pass)
}

var (
	secretField = regexp.MustCompile(`id="client-secret" type="text" readonly value="([^"]+)"`)
)

// createApp submits the create form and returns the new app's ID and
// secret (empty for a public app).
func createApp(t *testing.T, b *browser, srvURL string, portal page, name, kind, redirects string) (id, secret string, p page) {
	t.Helper()
	f := formFields(t, portal)
	f.Set("name", name)
	f.Set("kind", kind)
	f.Set("redirect_uris", redirects)
	p = b.post(srvURL+"/portal/apps", f)
	if p.status != http.StatusCreated {
		return "", "", p
	}
	m := regexp.MustCompile(`<code id="client-id">([^<]+)</code>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("created app page without its client ID:\n%s", p.body)
	}
	if s := secretField.FindStringSubmatch(p.body); s != nil {
		secret = html.UnescapeString(s[1])
	}
	return m[1], secret, p
}

func TestPortalAccess(t *testing.T) {
	cfg, rsSecret := portalConfig(t, "")
	srv := startServer(t, writeConfig(t, cfg), "")

	dev, home := portalSignIn(t, srv.URL, "dev", "dev-password")
	if home.status != http.StatusOK || !strings.Contains(home.body, "Developer portal") || !strings.Contains(home.body, `href="/portal/apis/orders"`) {
		t.Fatalf("dev's portal (%d):\n%s", home.status, home.body)
	}

	t.Run("API page and document", func(t *testing.T) {
		p := dev.get(srv.URL + "/portal/apis/orders")
		for _, want := range []string{"Orders API", "https://api.example.com/orders/v1", "See your orders", "<code>orders.read</code>", "<code>GET</code>", "<code>/orders</code>", "List your orders", "Place an order", "OpenAPI 3.0.3"} {
			if !strings.Contains(p.body, want) {
				t.Errorf("API page lacks %q", want)
			}
		}
		doc := dev.get(srv.URL + "/portal/apis/orders/openapi")
		if doc.status != 200 || doc.body != portalOpenAPI || !strings.HasPrefix(doc.header.Get("Content-Disposition"), "attachment") {
			t.Errorf("document download: %d %q %q", doc.status, doc.header.Get("Content-Type"), doc.header.Get("Content-Disposition"))
		}
		if p := dev.get(srv.URL + "/portal/apis/nope"); p.status != http.StatusNotFound {
			t.Errorf("unknown API: %d", p.status)
		}
	})

	id, secret, created := createApp(t, dev, srv.URL, home, "Billing sync", "service", "")
	if id == "" || secret == "" {
		t.Fatalf("create a service app: %d\n%s", created.status, created.body)
	}
	if created.header.Get("Cache-Control") != "no-store" {
		t.Error("the page showing the secret may be cached")
	}
	if again := dev.get(srv.URL + "/portal/apps/" + id); strings.Contains(again.body, secret) || again.status != 200 {
		t.Errorf("the app page shows the secret again (or fails: %d)", again.status)
	}

	t.Run("unsubscribed app may request no API scope", func(t *testing.T) {
		conf := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: srv.URL + "/oauth2/token", Scopes: []string{"orders.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		if _, err := conf.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_scope") {
			t.Errorf("token for orders.read before subscribing: %v, want invalid_scope", err)
		}
	})

	t.Run("another developer's app is not found", func(t *testing.T) {
		bob, bobHome := portalSignIn(t, srv.URL, "bob", "bob-password")
		if strings.Contains(bobHome.body, id) {
			t.Error("bob's portal lists dev's app")
		}
		f := formFields(t, bobHome)
		f.Set("api", "orders")
		for _, c := range []struct {
			what string
			p    page
		}{
			{"view", bob.get(srv.URL + "/portal/apps/" + id)},
			{"rotate", bob.post(srv.URL+"/portal/apps/"+id+"/rotate", f)},
			// Not following redirects: a success redirects to the app's
			// page, which would be bob's 404 again.
			{"subscribe", bob.postNoFollow(srv.URL+"/portal/apps/"+id+"/subscribe", f)},
			{"unsubscribe", bob.postNoFollow(srv.URL+"/portal/apps/"+id+"/unsubscribe", f)},
			{"delete", bob.postNoFollow(srv.URL+"/portal/apps/"+id+"/delete", f)},
		} {
			if c.p.status != http.StatusNotFound {
				t.Errorf("bob can %s dev's app: %d", c.what, c.p.status)
			}
		}
		if p := dev.get(srv.URL + "/portal/apps/" + id); p.status != 200 {
			t.Errorf("dev's app after bob's attempts: %d", p.status)
		}
	})

	t.Run("not a developer", func(t *testing.T) {
		alice, p := portalSignIn(t, srv.URL, "alice", "alice-password")
		if p.status != http.StatusForbidden {
			t.Errorf("alice (no developer) on /portal: %d, want 403", p.status)
		}
		if p := alice.get(srv.URL + "/portal/apps/" + id); p.status != http.StatusForbidden {
			t.Errorf("alice on dev's app: %d, want 403", p.status)
		}
		if p := alice.get(srv.URL + "/account"); strings.Contains(p.body, `href="/portal"`) {
			t.Error("alice's account page links to a portal she may not use")
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		f := formFields(t, home)
		f.Set("csrf_token", "forged")
		f.Set("name", "x")
		f.Set("kind", "service")
		if p := dev.post(srv.URL+"/portal/apps", f); p.status != http.StatusForbidden {
			t.Errorf("create with a forged CSRF token: %d, want 403", p.status)
		}
		if p := dev.post(srv.URL+"/portal/apps/"+id+"/delete", url.Values{}); p.status != http.StatusForbidden {
			t.Errorf("delete without a CSRF token: %d, want 403", p.status)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct{ name, kind, redirects, want string }{
			{"", "service", "", "Name"},
			{strings.Repeat("n", 101), "service", "", "Name"},
			{"Web", "web", "", "redirect URI"},
			{"Web", "web", "http://app.example/cb", "plain http is only allowed for loopback"},
			{"Web", "web", "https://app.example/cb#frag", "fragment"},
			{"Svc", "service", "https://app.example/cb", "no redirect URIs"},
			{"Odd", "admin", "", "kind"},
		} {
			_, _, p := createApp(t, dev, srv.URL, home, c.name, c.kind, c.redirects)
			if p.status != http.StatusBadRequest || !strings.Contains(p.body, c.want) {
				t.Errorf("create %q (%s, %q): %d, want 400 saying %q", c.name, c.kind, c.redirects, p.status, c.want)
			}
		}
	})

	t.Run("limit", func(t *testing.T) {
		if id2, _, p := createApp(t, dev, srv.URL, home, "Second", "spa", "http://127.0.0.1:9/cb"); id2 == "" {
			t.Fatalf("second app: %d\n%s", p.status, p.body)
		}
		if _, _, p := createApp(t, dev, srv.URL, home, "Third", "service", ""); p.status != http.StatusConflict || !strings.Contains(p.body, "Delete one first") {
			t.Errorf("third app with max_apps_per_developer 2: %d", p.status)
		}
	})

	t.Run("subscribe, rotate and delete leave an audit trail", func(t *testing.T) {
		f := formFields(t, dev.get(srv.URL+"/portal/apps/"+id))
		f.Set("api", "orders")
		if p := dev.post(srv.URL+"/portal/apps/"+id+"/subscribe", f); p.status != 200 || !strings.Contains(p.body, "Subscribed.") {
			t.Fatalf("subscribe: %d\n%s", p.status, p.body)
		}
		conf := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: srv.URL + "/oauth2/token", Scopes: []string{"orders.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := conf.Token(context.Background())
		if err != nil {
			t.Fatalf("token after subscribing: %v", err)
		}
		if info := introspectAs(t, srv.URL, "rs", rsSecret, tok.AccessToken); info["active"] != true || info["client_id"] != id || info["scope"] != "orders.read" {
			t.Errorf("introspection: %v", info)
		}
		if p := dev.post(srv.URL+"/portal/apps/"+id+"/unsubscribe", f); p.status != 200 || !strings.Contains(p.body, "Unsubscribed.") {
			t.Fatalf("unsubscribe: %d", p.status)
		}
		if info := introspectAs(t, srv.URL, "rs", rsSecret, tok.AccessToken); info["active"] != false {
			t.Errorf("a token carrying the API's scope outlived the subscription: %v", info)
		}
		if p := dev.post(srv.URL+"/portal/apps/"+id+"/rotate", f); p.status != 200 || !secretField.MatchString(p.body) {
			t.Fatalf("rotate: %d", p.status)
		}
		if p := dev.post(srv.URL+"/portal/apps/"+id+"/delete", f); p.status != 200 || !strings.Contains(p.body, "App deleted.") {
			t.Fatalf("delete: %d", p.status)
		}
		if p := dev.get(srv.URL + "/portal/apps/" + id); p.status != http.StatusNotFound {
			t.Errorf("deleted app page: %d", p.status)
		}
		acct := dev.get(srv.URL + "/account")
		if !strings.Contains(acct.body, `<a href="/portal">Developer portal</a>`) {
			t.Error("a developer's account page has no link to the portal")
		}
		for _, want := range []string{"You created the app Billing sync", "You subscribed", "You unsubscribed", "You rotated the secret", "You deleted the app Billing sync"} {
			if !strings.Contains(acct.body, want) {
				t.Errorf("dev's security events lack %q", want)
			}
		}
	})
}

// Without a portal block there is no portal.
func TestPortalOff(t *testing.T) {
	srv := startServer(t, writeConfig(t, `{"users": [{"username": "dev", "password": "dev-password"}]}`), "")
	if p := newBrowser(t).get(srv.URL + "/portal"); p.status != http.StatusNotFound {
		t.Errorf("/portal without a portal block: %d, want 404", p.status)
	}
}
