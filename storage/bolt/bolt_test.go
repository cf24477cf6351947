package bolt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.RunTests(t, func(t *testing.T) storage.Store {
		return openTest(t, filepath.Join(t.TempDir(), "postern.db"), Options{})
	})
}

func openTest(tb testing.TB, path string, opts Options) *Store {
	tb.Helper()
	s, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

func closeTest(tb testing.TB, s *Store) {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Errorf("Close: %v", err)
	}
}

func testToken(sig, subject string, exp time.Time) storage.Token {
	return storage.Token{
		Kind:      storage.AccessToken,
		Signature: sig,
		RequestID: "req-" + sig,
		ClientID:  "client-1",
		Subject:   subject,
		CreatedAt: exp.Add(-time.Hour),
		ExpiresAt: exp,
		Active:    true,
		Data:      []byte(`{"scopes":["openid","profile"],"session":{"subject":"` + subject + `","extra":{}}}`),
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "nested", "postern.db")
	s := openTest(t, path, Options{})
	defer closeTest(t, s)
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postern.db")
	s := openTest(t, path, Options{})
	defer closeTest(t, s)

	// bbolt's flock is per open file, so a second Open in this process
	// contends like a second process would. The select only keeps a hang
	// from stalling the suite; it asserts nothing about speed.
	done := make(chan error, 1)
	go func() {
		s2, err := Open(path, Options{})
		if err == nil {
			_ = s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("second Open: err = %v, want ErrLocked", err)
		}
		for _, want := range []string{path, "another postern process"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second Open hangs")
	}

	// Once the holder closes, the file opens again.
	closeTest(t, s)
	s3 := openTest(t, path, Options{})
	closeTest(t, s3)
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "postern.db")
	exp := time.Now().Add(time.Hour)
	tok := testToken("sig", "alice", exp)
	key := storage.Key{ID: "k1", Algorithm: "ES256", CreatedAt: time.Now(), Active: true, Public: []byte("{}"), Private: []byte("sealed")}

	s := openTest(t, path, Options{})
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.UseOnce(ctx, "jti", "j1", exp); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) { return []storage.Key{key}, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendEvent(ctx, storage.Event{Type: "login", Subject: "alice"}); err != nil {
		t.Fatal(err)
	}
	closeTest(t, s)
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.GetToken(ctx, tok.Kind, tok.Signature); err == nil {
		t.Error("GetToken on a closed store succeeded")
	}
	if err := s.CreateToken(ctx, testToken("late", "alice", exp)); err == nil {
		t.Error("CreateToken on a closed store succeeded")
	}

	s = openTest(t, path, Options{})
	defer closeTest(t, s)
	got, err := s.GetToken(ctx, tok.Kind, tok.Signature)
	if err != nil || got.Subject != "alice" || string(got.Data) != string(tok.Data) {
		t.Errorf("GetToken after reopen = %+v, %v", got, err)
	}
	if list, err := s.SubjectTokens(ctx, "alice"); err != nil || len(list) != 1 {
		t.Errorf("SubjectTokens after reopen = %d tokens, %v; want 1", len(list), err)
	}
	if err := s.UseOnce(ctx, "jti", "j1", exp); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Errorf("UseOnce after reopen: err = %v, want ErrAlreadyExists", err)
	}
	if keys, err := s.Keys(ctx); err != nil || len(keys) != 1 || keys[0].ID != "k1" {
		t.Errorf("Keys after reopen = %+v, %v", keys, err)
	}
	if events, err := s.ListEvents(ctx, "alice", 10); err != nil || len(events) != 1 || events[0].ID == "" {
		t.Errorf("ListEvents after reopen = %+v, %v", events, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postern.db")
	closeTest(t, openTest(t, path, Options{}))
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaSchema, []byte{schemaVersion + 1}) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); err == nil {
		_ = s.Close()
		t.Fatal("Open accepted a newer schema")
	}
}

// fakeClock is an injectable Now that tests move by hand.
type fakeClock struct{ nanos atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.nanos.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }

// countRecords counts the entries of the buckets that expire: tokens, their
// indexes and one-time markers.
func countRecords(t *testing.T, s *Store) (n int) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if string(name) != string(bucketMeta) && string(name) != string(bucketKeys) && string(name) != string(bucketEvents) {
				n += tx.Bucket(name).Stats().KeyN
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSweeper(t *testing.T) {
	ctx := t.Context()
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openTest(t, filepath.Join(t.TempDir(), "postern.db"), Options{SweepInterval: 5 * time.Millisecond, Now: clock.Now})
	defer closeTest(t, s)

	short := testToken("short", "alice", clock.Now().Add(time.Minute))
	long := testToken("long", "alice", clock.Now().Add(time.Hour))
	for _, tk := range []storage.Token{short, long} {
		if err := s.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UseOnce(ctx, "jti", "j1", clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// The store's expiry follows the injected clock, not the wall clock
	// (for which 2030 is far away).
	if _, err := s.GetToken(ctx, short.Kind, short.Signature); err != nil {
		t.Fatalf("GetToken before expiry: %v", err)
	}
	const recordsPerToken = 5 // token, grant, subject, client, expiry
	if n := countRecords(t, s); n != 2*recordsPerToken+2 {
		t.Fatalf("%d records before sweep, want %d", n, 2*recordsPerToken+2)
	}

	clock.Advance(2 * time.Minute)
	if _, err := s.GetToken(ctx, short.Kind, short.Signature); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken after expiry: err = %v, want ErrNotFound", err)
	}
	// Wait for the sweeper to remove the short token and the marker, with
	// every index entry; the deadline only bounds a failing run.
	want := recordsPerToken
	deadline := time.Now().Add(30 * time.Second)
	for n := countRecords(t, s); n != want; n = countRecords(t, s) {
		if time.Now().After(deadline) {
			t.Fatalf("sweeper left %d records, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.GetToken(ctx, long.Kind, long.Signature); err != nil {
		t.Errorf("GetToken(long) after sweep: %v", err)
	}
	if err := s.UseOnce(ctx, "jti", "j1", clock.Now().Add(time.Minute)); err != nil {
		t.Errorf("UseOnce after its marker was swept: %v", err)
	}
}

func TestSweeperDisabled(t *testing.T) {
	clock := newFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openTest(t, filepath.Join(t.TempDir(), "postern.db"), Options{SweepInterval: -1, Now: clock.Now})
	defer closeTest(t, s)
	if s.sweepDone != nil {
		t.Fatal("sweeper started with a negative interval")
	}
	if err := s.CreateToken(t.Context(), testToken("t", "alice", clock.Now().Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	n, err := s.DeleteExpired(t.Context(), clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1, nil", n, err)
	}
}

// TestDeleteExpiredChunks crosses the per-transaction chunk size.
func TestDeleteExpiredChunks(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "postern.db"), Options{SweepInterval: -1})
	defer closeTest(t, s)
	now := time.Now()
	const n = 2*sweepChunk + 17
	fill(t, s, n, func(i int) storage.Token {
		return testToken(fmt.Sprintf("old-%d", i), fmt.Sprintf("s-%d", i%10), now.Add(-time.Duration(i+1)*time.Second))
	})
	fill(t, s, 3, func(i int) storage.Token { return testToken(fmt.Sprintf("live-%d", i), "s-0", now.Add(time.Hour)) })
	got, err := s.DeleteExpired(t.Context(), now)
	if err != nil || got != n {
		t.Fatalf("DeleteExpired = %d, %v; want %d, nil", got, err, n)
	}
	if c := countRecords(t, s); c != 3*5 {
		t.Fatalf("%d records left, want %d", c, 3*5)
	}
}

// fill writes n tokens in one transaction: benchmark and test set-up, not
// the path under test.
func fill(tb testing.TB, s *Store, n int, mk func(i int) storage.Token) {
	tb.Helper()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := openTokenBuckets(tx)
		for i := range n {
			p, err := prepare(mk(i))
			if err != nil {
				return err
			}
			if err := b.put(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkCreateTokenParallel(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "postern.db"), Options{SweepInterval: -1})
	defer closeTest(b, s)
	exp := time.Now().Add(time.Hour)
	var seq atomic.Int64
	b.SetParallelism(16) // request handlers, not CPUs, are the writers
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			if err := s.CreateToken(b.Context(), testToken(fmt.Sprintf("sig-%d", i), fmt.Sprintf("subject-%d", i%100), exp)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCreateTokenSerial is one writer alone: every call waits for its
// own batch and fsync.
func BenchmarkCreateTokenSerial(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "postern.db"), Options{SweepInterval: -1})
	defer closeTest(b, s)
	exp := time.Now().Add(time.Hour)
	i := 0
	for b.Loop() {
		i++
		if err := s.CreateToken(b.Context(), testToken(fmt.Sprintf("sig-%d", i), "alice", exp)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetToken(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "postern.db"), Options{SweepInterval: -1})
	defer closeTest(b, s)
	const n = 20000
	exp := time.Now().Add(time.Hour)
	fill(b, s, n, func(i int) storage.Token {
		return testToken(fmt.Sprintf("sig-%d", i), fmt.Sprintf("subject-%d", i%100), exp)
	})
	sigs := make([]string, n)
	for i := range sigs {
		sigs[i] = fmt.Sprintf("sig-%d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetToken(b.Context(), storage.AccessToken, sigs[rand.IntN(n)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubjectTokens(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "postern.db"), Options{SweepInterval: -1})
	defer closeTest(b, s)
	const mine, others = 1000, 20000
	exp := time.Now().Add(time.Hour)
	fill(b, s, others, func(i int) storage.Token {
		return testToken(fmt.Sprintf("other-%d", i), fmt.Sprintf("subject-%d", i%500), exp)
	})
	fill(b, s, mine, func(i int) storage.Token { return testToken(fmt.Sprintf("mine-%d", i), "alice", exp) })
	b.ReportAllocs()
	for b.Loop() {
		toks, err := s.SubjectTokens(b.Context(), "alice")
		if err != nil || len(toks) != mine {
			b.Fatalf("SubjectTokens = %d, %v", len(toks), err)
		}
	}
}

// BenchmarkRedeemContended is the replay case: many redemptions of one
// token at once.
func BenchmarkRedeemContended(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "postern.db"), Options{SweepInterval: -1})
	defer closeTest(b, s)
	exp := time.Now().Add(time.Hour)
	code := testToken("code", "alice", exp)
	code.Kind = storage.AuthorizationCode
	if err := s.CreateToken(b.Context(), code); err != nil {
		b.Fatal(err)
	}
	var wins atomic.Int64
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			_, err := s.Redeem(b.Context(), code.Kind, code.Signature, []storage.Token{testToken(fmt.Sprintf("at-%d", i), "alice", exp)}, nil)
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, storage.ErrInactive):
				b.Error(err)
				return
			}
		}
	})
	if wins.Load() != 1 {
		b.Fatalf("%d redemptions succeeded", wins.Load())
	}
}

// A store written before the refresh retry window (testdata/before-retry.bolt,
// made by the postern of 2026-12-06 with a token, a redeemed refresh token and
// its successors, and an event) opens, keeps everything, and takes retries.
func TestOpenStoreFromBeforeRetries(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "before-retry.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "postern.db")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path, Options{})
	defer closeTest(t, s)
	ctx := t.Context()
	for _, sig := range []string{"at-1", "at-2"} {
		if _, err := s.GetToken(ctx, storage.AccessToken, sig); err != nil {
			t.Errorf("GetToken(%s): %v", sig, err)
		}
	}
	if _, err := s.GetToken(ctx, storage.RefreshToken, "rt-1"); !errors.Is(err, storage.ErrInactive) {
		t.Errorf("GetToken(rt-1) = %v, want ErrInactive (redeemed before the upgrade)", err)
	}
	if _, err := s.RetryOf(ctx, storage.RefreshToken, "rt-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RetryOf(rt-1) = %v, want ErrNotFound (redeemed without a retry)", err)
	}
	if evs, err := s.ListEvents(ctx, "alice", 10); err != nil || len(evs) != 1 {
		t.Errorf("ListEvents = %d events, %v; want the one from before", len(evs), err)
	}
	exp := time.Now().Add(time.Hour)
	next := testToken("rt-3", "alice", exp)
	next.Kind, next.RequestID = storage.RefreshToken, "grant-1"
	r := &storage.Retry{Successor: "rt-3", Until: time.Now().Add(time.Minute), Sealed: []byte("answer")}
	if _, err := s.Redeem(ctx, storage.RefreshToken, "rt-2", []storage.Token{next}, r); err != nil {
		t.Fatalf("Redeem with retry on an upgraded store: %v", err)
	}
	if got, err := s.RetryOf(ctx, storage.RefreshToken, "rt-2"); err != nil || string(got.Sealed) != "answer" {
		t.Errorf("RetryOf(rt-2) = %q, %v; want the stored answer", got.Sealed, err)
	}
	if n, err := s.RevokeGrant(ctx, "grant-1"); err != nil || n != 5 {
		t.Errorf("RevokeGrant = %d, %v; want the 5 tokens of the grant", n, err)
	}
	if _, err := s.RetryOf(ctx, storage.RefreshToken, "rt-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RetryOf after RevokeGrant = %v, want ErrNotFound", err)
	}
	// The buckets of registered clients came with the upgrade too.
	if err := s.CreateClient(ctx, storage.Client{ID: "app", Owner: "alice"}); err != nil {
		t.Fatalf("CreateClient on an upgraded store: %v", err)
	}
	if cs, err := s.ListClients(ctx, "alice"); err != nil || len(cs) != 1 {
		t.Errorf("ListClients = %+v, %v; want the one created", cs, err)
	}
}
