package keys

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestRotate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	opts := Options{Now: clk.now}
	store := &memStore{}
	m := mustOpen(t, store, testSecret, opts)
	oldKID := m.Active().ID
	oldTok, err := m.Sign([]byte(`{"n":1}`), map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"})
	if err != nil {
		t.Fatal(err)
	}

	clk.advance(time.Hour)
	newKID, err := Rotate(ctx, store, mustSecret(t, testSecret), opts)
	if err != nil {
		t.Fatal(err)
	}
	if newKID == oldKID {
		t.Fatal("Rotate returned the old kid")
	}
	// Not picked up until Reload: a server swaps keys only when told to.
	if m.Active().ID != oldKID {
		t.Error("manager switched keys before Reload")
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Active().ID != newKID {
		t.Errorf("active = %s, want %s", m.Active().ID, newKID)
	}
	if got := kids(m.JWKS()); !slices.Equal(got, []string{newKID, oldKID}) {
		t.Errorf("JWKS kids = %v, want [new old]", got)
	}

	// A token signed before the rotation still verifies; new ones use the new key.
	verify(t, m.JWKSJSON(), oldTok)
	if _, ok := m.PublicKey(oldKID); !ok {
		t.Error("old key no longer published")
	}
	newTok, err := m.Sign([]byte(`{"n":2}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, hdr := verify(t, m.JWKSJSON(), newTok); hdr.KeyID != newKID {
		t.Errorf("new token kid = %s, want %s", hdr.KeyID, newKID)
	}

	infos, err := List(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Fatalf("List = %+v", infos)
	}
	wantRetire := clk.now().Add(DefaultOverlap)
	if i := infos[0]; i.ID != newKID || !i.Active || !i.RetireAt.IsZero() || i.Algorithm != ES256 {
		t.Errorf("List[0] = %+v", i)
	}
	if i := infos[1]; i.ID != oldKID || i.Active || !i.RetireAt.Equal(wantRetire) {
		t.Errorf("List[1] = %+v, want retire at %v", i, wantRetire)
	}
}

func TestRotateDropsRetiredKeys(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	opts := Options{Now: clk.now, Overlap: 2 * time.Hour}
	secret := mustSecret(t, testSecret)
	store := &memStore{}
	m := mustOpen(t, store, testSecret, opts)
	k1 := m.Active().ID

	k2, err := Rotate(ctx, store, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour) // k1 still within its overlap
	k3, err := Rotate(ctx, store, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(m.JWKS()); !slices.Equal(got, []string{k3, k2, k1}) {
		t.Errorf("within overlap: JWKS kids = %v, want [k3 k2 k1]", got)
	}

	clk.advance(90 * time.Minute) // k1 past its overlap, k2 not
	k4, err := Rotate(ctx, store, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(m.JWKS()); !slices.Equal(got, []string{k4, k3, k2}) {
		t.Errorf("after overlap: JWKS kids = %v, want [k4 k3 k2]", got)
	}
	if _, ok := m.PublicKey(k1); ok {
		t.Error("expired key still published")
	}
	infos, err := List(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range infos {
		if i.ID == k1 {
			t.Error("expired key still stored")
		}
	}
}

// A server that is not Reloaded must still stop publishing a key once its
// overlap ends.
func TestRetiredKeyLeavesJWKSWithoutReload(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	opts := Options{Now: clk.now, Overlap: time.Hour}
	store := &memStore{}
	m := mustOpen(t, store, testSecret, opts)
	oldKID := m.Active().ID
	if _, err := Rotate(ctx, store, mustSecret(t, testSecret), opts); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(m.JWKS().Keys); n != 2 {
		t.Fatalf("JWKS has %d keys, want 2", n)
	}

	clk.advance(time.Hour - time.Second)
	if _, ok := m.PublicKey(oldKID); !ok {
		t.Error("old key dropped before its RetireAt")
	}
	clk.advance(time.Second)
	if _, ok := m.PublicKey(oldKID); ok {
		t.Error("old key still published at its RetireAt")
	}
	if got := kids(m.JWKS()); !slices.Equal(got, []string{m.Active().ID}) {
		t.Errorf("JWKS kids = %v", got)
	}
	if _, err := m.Sign([]byte("{}"), nil); err != nil {
		t.Error(err)
	}
}

// After a key compromise the old key must stop verifying at once.
func TestRotateNegativeOverlapRetiresImmediately(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	m := mustOpen(t, store, testSecret, Options{})
	oldKID := m.Active().ID
	newKID, err := Rotate(ctx, store, mustSecret(t, testSecret), Options{Overlap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(m.JWKS()); !slices.Equal(got, []string{newKID}) {
		t.Errorf("JWKS kids = %v, want only the new key", got)
	}
	if _, ok := m.PublicKey(oldKID); ok {
		t.Error("compromised key still published")
	}
}

func TestRotateWrongSecretChangesNothing(t *testing.T) {
	store := &memStore{}
	mustOpen(t, store, testSecret, Options{})
	before := store.snapshot()

	_, err := Rotate(context.Background(), store, mustSecret(t, testSecret+"-other"), Options{})
	if !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("err = %v, want ErrWrongSecret", err)
	}
	after := store.snapshot()
	if len(after) != len(before) || after[0].ID != before[0].ID || !after[0].Active {
		t.Error("a rotation with the wrong secret changed the store")
	}
}

func TestRotateChangesAlgorithm(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	m := mustOpen(t, store, testSecret, Options{Algorithm: ES256})
	esTok, err := m.Sign([]byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Rotate(ctx, store, mustSecret(t, testSecret), Options{Algorithm: RS256}); err != nil {
		t.Fatal(err)
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Active().Algorithm != RS256 {
		t.Fatalf("active alg = %s", m.Active().Algorithm)
	}
	rsTok, err := m.Sign([]byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for tok, alg := range map[string]string{esTok: ES256, rsTok: RS256} {
		if _, hdr := verify(t, m.JWKSJSON(), tok); hdr.Algorithm != alg {
			t.Errorf("alg = %s, want %s", hdr.Algorithm, alg)
		}
	}
}

// Rotate on an empty store creates the first key, so `postern keys rotate`
// can also initialise one.
func TestRotateEmptyStore(t *testing.T) {
	store := &memStore{}
	kid, err := Rotate(context.Background(), store, mustSecret(t, testSecret), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := mustOpen(t, store, testSecret, Options{})
	if m.Active().ID != kid {
		t.Errorf("active = %s, want %s", m.Active().ID, kid)
	}
}

func TestRotateRejectsBadInput(t *testing.T) {
	if _, err := Rotate(context.Background(), &memStore{}, mustSecret(t, testSecret), Options{Algorithm: "none"}); err == nil {
		t.Error("Rotate accepted alg none")
	}
	if _, err := Rotate(context.Background(), &memStore{}, Secret{}, Options{}); err == nil {
		t.Error("Rotate accepted the zero Secret")
	}
}

func TestRotateIfOlder(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := &memStore{}
	opts := Options{Now: clk.now}
	m := mustOpen(t, store, testSecret, opts)
	first := m.Active().ID
	secret := mustSecret(t, testSecret)

	if kid, rotated, err := RotateIfOlder(ctx, store, secret, opts, time.Hour); err != nil || rotated || kid != "" {
		t.Fatalf("fresh key: RotateIfOlder = %q, %v, %v; want no rotation", kid, rotated, err)
	}
	clk.set(clk.now().Add(2 * time.Hour))
	kid, rotated, err := RotateIfOlder(ctx, store, secret, opts, time.Hour)
	if err != nil || !rotated || kid == "" || kid == first {
		t.Fatalf("old key: RotateIfOlder = %q, %v, %v; want a new key", kid, rotated, err)
	}
	// A second replica deciding at the same moment finds the new key fresh.
	if _, rotated, err := RotateIfOlder(ctx, store, secret, opts, time.Hour); err != nil || rotated {
		t.Fatalf("second call rotated again: %v, %v", rotated, err)
	}
	if err := m.Reload(ctx); err != nil || m.Active().ID != kid {
		t.Fatalf("after reload active = %s (%v), want %s", m.Active().ID, err, kid)
	}
	if _, ok := m.PublicKey(first); !ok {
		t.Error("the previous key left the JWKS before its overlap ended")
	}
}
