package postgres

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// eventually polls cond until it holds, failing after a generous bound
// (the bound is a hang guard, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func trusted(s *Store) bool {
	_, ok := s.cache.position()
	return ok
}

// cachedOn reports whether s serves sig from its cache.
func cachedOn(s *Store, sig string) bool {
	_, ok := s.cache.get(sig, s.nowNanos())
	return ok
}

// openPair opens two replicas on one schema, A and B, with B's cache
// trusted.
func openPair(t *testing.T, bOpts Options) (a, b *Store) {
	dsn := freshSchema(t)
	a = openTest(t, dsn, Options{SweepInterval: -1})
	t.Cleanup(func() { _ = a.Close() })
	bOpts.SweepInterval = -1
	b = openTest(t, dsn, bOpts)
	t.Cleanup(func() { _ = b.Close() })
	eventually(t, "trusting B's cache", func() bool { return trusted(b) })
	return a, b
}

func TestRevocationOnOneReplicaEvictsAnother(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t, Options{})
	exp := time.Now().Add(time.Hour)
	tok := testToken(storage.AccessToken, "at-1", exp)
	if err := a.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "at-1"); err != nil {
		t.Fatalf("GetToken on B: %v", err)
	}
	if !cachedOn(b, "at-1") {
		t.Fatal("B did not cache the access token it read")
	}
	if n, err := a.RevokeGrant(ctx, tok.RequestID); err != nil || n != 1 {
		t.Fatalf("RevokeGrant on A = %d, %v", n, err)
	}
	eventually(t, "gone on B", func() bool {
		_, err := b.GetToken(ctx, storage.AccessToken, "at-1")
		return errors.Is(err, storage.ErrNotFound)
	})

	// A token deleted on A (no revocation event) goes the same way.
	tok2 := testToken(storage.AccessToken, "at-2", exp)
	if err := a.CreateToken(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "at-2"); err != nil || !cachedOn(b, "at-2") {
		t.Fatalf("GetToken on B: %v (cached %v)", err, cachedOn(b, "at-2"))
	}
	if err := a.DeleteToken(ctx, storage.AccessToken, "at-2"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted token gone on B", func() bool {
		_, err := b.GetToken(ctx, storage.AccessToken, "at-2")
		return errors.Is(err, storage.ErrNotFound)
	})

	// A subject's revocation (an event without token deletions) evicts
	// that subject's tokens on B.
	tok3 := testToken(storage.AccessToken, "at-3", exp)
	if err := a.CreateToken(ctx, tok3); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "at-3"); err != nil || !cachedOn(b, "at-3") {
		t.Fatalf("GetToken on B: %v", err)
	}
	if _, err := a.AppendRevocation(ctx, storage.Revocation{Kind: storage.RevokedSubject, ID: tok3.Subject, Until: exp}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "subject's token evicted on B", func() bool { return !cachedOn(b, "at-3") })
}

func TestOwnRevocationEvictsAtOnce(t *testing.T) {
	ctx := context.Background()
	_, b := openPair(t, Options{})
	tok := testToken(storage.AccessToken, "own", time.Now().Add(time.Hour))
	if err := b.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "own"); err != nil || !cachedOn(b, "own") {
		t.Fatalf("GetToken: %v", err)
	}
	if _, err := b.RevokeGrant(ctx, tok.RequestID); err != nil {
		t.Fatal(err)
	}
	// No waiting: the replica that revoked must not serve it again.
	if _, err := b.GetToken(ctx, storage.AccessToken, "own"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken right after own revocation: %v, want ErrNotFound", err)
	}
}

func TestOneTimeTokensAreNotCached(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t, Options{})
	tok := testToken(storage.RefreshToken, "rt", time.Now().Add(time.Hour))
	if err := a.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.RefreshToken, "rt"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Redeem(ctx, storage.RefreshToken, "rt", nil, nil); err != nil {
		t.Fatal(err)
	}
	// At once, on the other replica.
	if _, err := b.GetToken(ctx, storage.RefreshToken, "rt"); !errors.Is(err, storage.ErrInactive) {
		t.Fatalf("GetToken on B after redemption on A: %v, want ErrInactive", err)
	}
}

// gated holds a replica's notification connection closed until the test
// sends on gate; the first connection goes through. open lets it through
// for good; tests defer it after openPair, so that it runs before Close,
// which would otherwise wait on a listener stuck at the gate.
func gated() (gate chan<- struct{}, opts Options, open func()) {
	g := make(chan struct{}, 1)
	g <- struct{}{}
	done := make(chan struct{})
	var once sync.Once
	return g, Options{beforeListen: func() {
		select {
		case <-g:
		case <-done:
		}
	}}, func() { once.Do(func() { close(done) }) }
}

// A replica whose notification connection drops serves nothing from its
// cache until it has reconnected and read the events it missed.
func TestNotificationLossDistrustsCache(t *testing.T) {
	ctx := context.Background()
	gate, opts, open := gated()
	a, b := openPair(t, opts)
	t.Cleanup(open)
	exp := time.Now().Add(time.Hour)
	revoked, kept := testToken(storage.AccessToken, "revoked", exp), testToken(storage.AccessToken, "kept", exp)
	for _, tok := range []storage.Token{revoked, kept} {
		if err := a.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetToken(ctx, storage.AccessToken, tok.Signature); err != nil || !cachedOn(b, tok.Signature) {
			t.Fatalf("GetToken on B: %v", err)
		}
	}

	adminExec(t, testDSN(t), `SELECT pg_terminate_backend($1)`, b.listenPID.Load())
	eventually(t, "distrusting B's cache", func() bool { return !trusted(b) })
	// Revoked while B hears nothing: B must not serve it from its cache.
	if _, err := a.RevokeGrant(ctx, revoked.RequestID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "revoked"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken on disconnected B: %v, want ErrNotFound", err)
	}

	gate <- struct{}{} // let B reconnect
	eventually(t, "trusting B's cache again", func() bool { return trusted(b) })
	if cachedOn(b, "revoked") {
		t.Fatal("B caught up but still caches the token revoked while it was disconnected")
	}
	if !cachedOn(b, "kept") {
		t.Fatal("B dropped a token no missed event covered")
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "revoked"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken on B after catching up: %v, want ErrNotFound", err)
	}
}

// A token deleted on its own while a replica heard nothing has no event to
// catch up on: the replica checks what it caches against the table when it
// reconnects.
func TestTokenDeletedWhileDisconnected(t *testing.T) {
	ctx := context.Background()
	gate, opts, open := gated()
	a, b := openPair(t, opts)
	t.Cleanup(open)
	exp := time.Now().Add(time.Hour)
	deleted, kept := testToken(storage.AccessToken, "deleted", exp), testToken(storage.AccessToken, "kept", exp)
	for _, tok := range []storage.Token{deleted, kept} {
		if err := a.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetToken(ctx, storage.AccessToken, tok.Signature); err != nil || !cachedOn(b, tok.Signature) {
			t.Fatalf("GetToken on B: %v", err)
		}
	}
	adminExec(t, testDSN(t), `SELECT pg_terminate_backend($1)`, b.listenPID.Load())
	eventually(t, "distrusting B's cache", func() bool { return !trusted(b) })
	if err := a.DeleteToken(ctx, storage.AccessToken, "deleted"); err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{}
	eventually(t, "trusting B's cache again", func() bool { return trusted(b) })
	if cachedOn(b, "deleted") {
		t.Fatal("B caught up but still caches the token deleted while it was disconnected")
	}
	if !cachedOn(b, "kept") {
		t.Fatal("B dropped a token still on record")
	}
}

// Events swept before a disconnected replica read them: it cannot tell
// what they covered, so it drops its whole cache.
func TestSweptEventsDropCache(t *testing.T) {
	ctx := context.Background()
	gate, opts, open := gated()
	a, b := openPair(t, opts)
	t.Cleanup(open)
	exp := time.Now().Add(time.Hour)
	tok := testToken(storage.AccessToken, "swept", exp)
	if err := a.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, storage.AccessToken, "swept"); err != nil || !cachedOn(b, "swept") {
		t.Fatalf("GetToken on B: %v", err)
	}
	adminExec(t, testDSN(t), `SELECT pg_terminate_backend($1)`, b.listenPID.Load())
	eventually(t, "distrusting B's cache", func() bool { return !trusted(b) })
	// An event about another grant, then swept (as if its retention passed).
	if _, err := a.AppendRevocation(ctx, storage.Revocation{Kind: storage.RevokedGrant, ID: "other", Until: exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.sweepRevocations(ctx, time.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{}
	eventually(t, "trusting B's cache again", func() bool { return trusted(b) })
	if cachedOn(b, "swept") {
		t.Fatal("B kept its cache though events it missed were swept")
	}
}

func TestRevocationNoticesWakeOnOtherReplica(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t, Options{})
	woken := b.RevocationNotices()
	if _, err := a.AppendRevocation(ctx, storage.Revocation{Kind: storage.RevokedClient, ID: "c", Until: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("B's revocation notices did not fire for A's revocation")
	}
}

// Deleting a registered client evicts its cached access tokens on every
// replica: at once on the one that deleted it, through the RevokedClient
// event on the others; other clients' tokens stay cached.
func TestDeleteClientEvictsOnEveryReplica(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t, Options{})
	exp := time.Now().Add(time.Hour)
	mine, other := testToken(storage.AccessToken, "app-at", exp), testToken(storage.AccessToken, "other-at", exp)
	mine.ClientID, other.ClientID = "app", "other"
	for _, tk := range []storage.Token{mine, other} {
		if err := a.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CreateClient(ctx, storage.Client{ID: "app", Owner: "dev"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		for _, sig := range []string{"app-at", "other-at"} {
			if _, err := s.GetToken(ctx, storage.AccessToken, sig); err != nil || !cachedOn(s, sig) {
				t.Fatalf("GetToken(%s): %v (cached %v)", sig, err, cachedOn(s, sig))
			}
		}
	}
	if _, err := a.DeleteClient(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	// No waiting on A: the replica that deleted it must not serve it again.
	if _, err := a.GetToken(ctx, storage.AccessToken, "app-at"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken on A right after DeleteClient: %v, want ErrNotFound", err)
	}
	eventually(t, "the client's token evicted on B", func() bool { return !cachedOn(b, "app-at") })
	if _, err := b.GetToken(ctx, storage.AccessToken, "app-at"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken on B: %v, want ErrNotFound", err)
	}
	for _, s := range []*Store{a, b} {
		if !cachedOn(s, "other-at") {
			t.Error("another client's token was evicted")
		}
	}
}
