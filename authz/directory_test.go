package authz

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/postern-auth/postern/catalog"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/bolt"
)

// The directory's rules: the configuration wins on an ID clash, a stored
// registration gets its subscriptions' scopes and tier from the catalogue
// (an API gone from the catalogue gives nothing), the previous secret
// counts only during its grace, and a store that cannot answer is not an
// unknown client.
func TestClientDirectory(t *testing.T) {
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "postern.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New([]*catalog.API{
		{ID: "orders", Tier: "gold", Scopes: []catalog.Scope{{Name: "orders.read"}, {Name: "orders.write"}}, Path: "apis[0]"},
		{ID: "maps", Tier: "silver", Scopes: []catalog.Scope{{Name: "maps.read"}}, Path: "apis[1]"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	put := func(id string, apis []string, reg clients.Registration) {
		data, err := clients.EncodeRegistration(reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateClient(ctx, storage.Client{ID: id, Owner: "dev", CreatedAt: now, UpdatedAt: now, APIs: apis, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	svc := clients.Registration{Name: "Svc", Kind: clients.KindService, AuthMethod: clients.AuthSecretBasic,
		GrantTypes: []string{clients.GrantClientCredentials}, SecretHash: "new", PreviousSecretHash: "old", PreviousUntil: now.Add(time.Minute)}
	put("app-svc", []string{"gone", "maps", "orders"}, svc)
	put("shadowed", nil, svc)
	configured := &clients.Client{ID: "shadowed", Name: "From the configuration"}
	clock := now
	d := newClientDirectory(map[string]*clients.Client{"shadowed": configured}, st, catalogGrants{cat}, clients.Lifetimes{}, func() time.Time { return clock })

	c, err := d.get(ctx, "shadowed")
	if err != nil || c != configured {
		t.Errorf("a configured ID: got %+v, %v; want the configured client", c, err)
	}
	c, err = d.get(ctx, "app-svc")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"maps.read", "orders.read", "orders.write"}; !slices.Equal(c.Scopes, want) || c.Tier != "silver" || !c.Registered || c.Owner != "dev" {
		t.Errorf("registered client: scopes %v tier %q registered %v owner %q; want %v, silver (the first subscribed API with a tier), true, dev", c.Scopes, c.Tier, c.Registered, c.Owner, want)
	}
	if len(c.RotatedSecretHashes) != 1 || string(c.RotatedSecretHashes[0]) != "old" {
		t.Errorf("during the grace the previous secret counts: %q", c.RotatedSecretHashes)
	}
	clock = now.Add(time.Minute)
	if c, _ := d.get(ctx, "app-svc"); len(c.RotatedSecretHashes) != 0 {
		t.Errorf("after the grace the previous secret still counts: %q", c.RotatedSecretHashes)
	}
	for _, id := range []string{"app-nope", "", string(make([]byte, 200))} {
		if _, err := d.get(ctx, id); !errors.Is(err, errUnknownClient) {
			t.Errorf("get(%q): %v, want errUnknownClient", id, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.get(ctx, "app-svc"); err == nil || errors.Is(err, errUnknownClient) {
		t.Errorf("a closed store: %v, want its error, not an unknown client", err)
	}
	if _, err := d.get(ctx, "shadowed"); err != nil {
		t.Errorf("configured clients do not need the store: %v", err)
	}
}
