package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-auth/postern/catalog"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
)

// tierFixture is a server with a catalogue whose APIs give tiers, a
// gateway (resource server) that introspects, a configured client and an
// app registered in the store, subscribed to the "search" API.
type tierFixture struct {
	srv    *Server
	store  storage.Store
	secret string
}

const tierApp = "app-tier-test"

func newTierFixture(t *testing.T, format string) *tierFixture {
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
	cat, err := catalog.New([]*catalog.API{
		{ID: "search", Name: "Search", Tier: "gold", Scopes: []catalog.Scope{{Name: "search.read", Description: "Search"}}, Path: "apis[0]"},
		{ID: "maps", Name: "Maps", Tier: "silver", Scopes: []catalog.Scope{{Name: "maps.read", Description: "Maps"}}, Path: "apis[1]"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lt := clients.Lifetimes{AccessToken: time.Hour, RefreshToken: 24 * time.Hour, AuthorizationCode: 10 * time.Minute}
	cc := func(id string, rs bool) *clients.Client {
		return &clients.Client{ID: id, SecretHash: []byte(hash), GrantTypes: []string{"client_credentials"},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt, ResourceServer: rs}
	}
	srv, err := New(Config{
		Issuer:            "https://auth.example.com",
		AccessTokenFormat: format,
		Lifetimes:         lt,
		Catalog:           cat,
		Clients: []*clients.Client{cc("gw", true), cc("billing", false), {ID: "mobile", SecretHash: []byte(hash),
			GrantTypes: []string{"password"}, Trusted: true, Scopes: []string{"read", "profile"},
			TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt}},
		// A user attribute that happens to be called tier (from a
		// directory, say) is not the client's rate-limit tier.
		Users: identity.NewDirectory([]identity.User{{Username: "carol", Password: "carol-password", Claims: map[string]string{"tier": "platinum"}}},
			identity.NewThrottle(identity.ThrottleOptions{}), passhash.NewLimiter(0, nil)),
		SecretHasher: clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
		HMACSecret:   sec.Derive("test hmac", 32),
		RetryKey:     sec.Derive("test refresh retry", 32),
		CookieKey:    sec.Derive("test cookies", 64),
	}, st, km)
	if err != nil {
		t.Fatal(err)
	}
	data, err := clients.EncodeRegistration(clients.Registration{
		Name: "Tier test app", Kind: "service", AuthMethod: clients.AuthSecretBasic,
		GrantTypes: []string{"client_credentials"}, SecretHash: hash,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.CreateClient(context.Background(), storage.Client{ID: tierApp, Owner: "alice", CreatedAt: now, UpdatedAt: now,
		APIs: []string{"search", "maps"}, Data: data}); err != nil {
		t.Fatal(err)
	}
	return &tierFixture{srv: srv, store: st, secret: secret}
}

func (f *tierFixture) post(t *testing.T, path, user string, form url.Values) map[string]any {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(user, f.secret)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		t.Fatalf("%s as %s: %d %s", path, user, rec.Code, rec.Body)
	}
	return out
}

func (f *tierFixture) token(t *testing.T, client, scope string) string {
	t.Helper()
	out := f.post(t, pathToken, client, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}})
	tok, _ := out["access_token"].(string)
	return tok
}

// jwtPayload is the unverified payload of a JWT the server just issued.
func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestIntrospectionAndJWTCarryTier: a registered app's tokens name the
// tier its subscriptions give it (the first subscribed API with a tier);
// a configured client's name none. Introspection reads the app as it is
// now; the JWT claim stays what it was at issue.
func TestIntrospectionAndJWTCarryTier(t *testing.T) {
	for _, format := range []string{FormatOpaque, FormatJWT} {
		t.Run(format, func(t *testing.T) {
			f := newTierFixture(t, format)
			app := f.token(t, tierApp, "search.read")
			if got := f.post(t, pathIntrospect, "gw", url.Values{"token": {app}}); got["active"] != true || got["tier"] != "gold" {
				t.Errorf("registered app's introspection = %v, want active with tier gold", got)
			}
			cfg := f.token(t, "billing", "read")
			if got := f.post(t, pathIntrospect, "gw", url.Values{"token": {cfg}}); got["active"] != true || got["tier"] != nil {
				t.Errorf("configured client's introspection = %v, want active without tier", got)
			}
			user := f.post(t, pathToken, "mobile", url.Values{"grant_type": {"password"}, "username": {"carol"},
				"password": {"carol-password"}, "scope": {"read profile"}})["access_token"].(string)
			if got := f.post(t, pathIntrospect, "gw", url.Values{"token": {user}}); got["active"] != true || got["tier"] != nil {
				t.Errorf("introspection of a token of a user with a tier attribute = %v, want active without tier", got)
			}
			if format == FormatJWT {
				if c := jwtPayload(t, user); c["tier"] != nil {
					t.Errorf("JWT of a user with a tier attribute = %v, want no tier", c)
				}
				if c := jwtPayload(t, app); c["tier"] != "gold" {
					t.Errorf("registered app's JWT claims = %v, want tier gold", c)
				}
				if c := jwtPayload(t, cfg); c["tier"] != nil {
					t.Errorf("configured client's JWT claims = %v, want no tier", c)
				}
			}

			// Unsubscribing from search leaves maps (silver) first.
			if _, err := f.store.UpdateClient(context.Background(), tierApp, func(c storage.Client) (storage.Client, error) {
				c.APIs = []string{"maps"}
				return c, nil
			}); err != nil {
				t.Fatal(err)
			}
			if got := f.post(t, pathIntrospect, "gw", url.Values{"token": {app}}); got["tier"] != "silver" {
				t.Errorf("introspection after the subscription changed = %v, want tier silver", got)
			}
		})
	}
}

// TestPortalShowsTheTierTokensCarry: the app page names the tier the
// app's tokens carry, the first subscribed API's with a tier, not the
// first in the catalogue's order.
func TestPortalShowsTheTierTokensCarry(t *testing.T) {
	f := newTierFixture(t, FormatOpaque)
	ctx := context.Background()
	rec, err := f.store.UpdateClient(ctx, tierApp, func(c storage.Client) (storage.Client, error) {
		c.APIs = []string{"maps", "search"} // the catalogue lists search first
		return c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.srv.directory.get(ctx, tierApp)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.srv.appView(rec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Tier != "silver" || a.Tier != c.Tier {
		t.Errorf("tokens carry tier %q, the portal shows %q; want silver for both", c.Tier, a.Tier)
	}
}
