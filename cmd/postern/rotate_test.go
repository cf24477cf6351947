package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/bolt"
)

// lockedBuffer is a bytes.Buffer safe for the logger goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// notifyingStore reports each finished UpdateKeys, so a test knows when
// rotateKeys has made its first check without sleeping.
type notifyingStore struct {
	keys.Store
	updated chan struct{}
}

func (s *notifyingStore) UpdateKeys(ctx context.Context, fn func([]storage.Key) ([]storage.Key, error)) error {
	err := s.Store.UpdateKeys(ctx, fn)
	select {
	case s.updated <- struct{}{}:
	default:
	}
	return err
}

// newRotateFixture opens a bbolt store whose first signing key was created
// age ago, with a manager over it.
func newRotateFixture(t *testing.T, age time.Duration) (*notifyingStore, keys.Secret, *keys.Manager) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "postern.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := keys.NewSecret([]byte("rotate-test-secret-0123456789abcdef-xyz"))
	if err != nil {
		t.Fatal(err)
	}
	km, err := keys.Open(context.Background(), st, sec, keys.Options{Now: func() time.Time { return time.Now().Add(-age) }})
	if err != nil {
		t.Fatal(err)
	}
	return &notifyingStore{Store: st, updated: make(chan struct{}, 1)}, sec, km
}

// startRotateKeys runs rotateKeys in a goroutine; the returned stop cancels
// it and waits for it to return.
func startRotateKeys(t *testing.T, store keys.Store, sec keys.Secret, km *keys.Manager, maxAge time.Duration, log *slog.Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rotateKeys(ctx, store, sec, km, keys.Options{}, maxAge, log)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("rotateKeys did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestRotateKeysOnSchedule(t *testing.T) {
	store, sec, km := newRotateFixture(t, 91*24*time.Hour)
	old := km.Active().ID
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	stop := startRotateKeys(t, store, sec, km, 90*24*time.Hour, log)
	deadline := time.Now().Add(10 * time.Second)
	for km.Active().ID == old && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop() // the first check has reloaded the manager; let it log and end

	if got := km.Active().ID; got == old {
		t.Fatalf("active key still %s after the first check of a 91-day-old key with a 90-day maximum\nlogs:\n%s", old, logs)
	}
	if _, ok := km.PublicKey(old); !ok {
		t.Errorf("the rotated-out key %s is no longer published: tokens it signed would stop verifying", old)
	}
	if _, ok := km.PublicKey(km.Active().ID); !ok {
		t.Errorf("the new active key %s is not published", km.Active().ID)
	}
	if !strings.Contains(logs.String(), "rotated the signing key on schedule") {
		t.Errorf("no rotation logged:\n%s", logs)
	}
	list, err := keys.List(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("store holds %d signing keys after one rotation, want 2: %+v", len(list), list)
	}
}

func TestRotateKeysKeepsFreshKey(t *testing.T) {
	store, sec, km := newRotateFixture(t, 0)
	old := km.Active().ID
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))

	stop := startRotateKeys(t, store, sec, km, 90*24*time.Hour, log)
	select {
	case <-store.updated: // the first check has decided
	case <-time.After(10 * time.Second):
		t.Fatal("rotateKeys made no check within 10s")
	}
	stop()

	if got := km.Active().ID; got != old {
		t.Errorf("a fresh key was rotated: active %s, was %s", got, old)
	}
	list, err := keys.List(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != old || !list[0].Active {
		t.Errorf("store keys after the check of a fresh key: %+v, want only %s, active", list, old)
	}
	if strings.Contains(logs.String(), "rotated the signing key") || strings.Contains(logs.String(), "failed") {
		t.Errorf("unexpected log for a fresh key:\n%s", logs)
	}
}
