package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeStore is a FailureStore like storage.Store's (expiry judged by its
// clock), written apart from memFailures so that each checks the other.
// While err is set every call fails with it; a call whose context has
// ended fails too, as with the real stores.
type fakeStore struct {
	clock *testClock
	mu    sync.Mutex
	recs  map[string]fakeRecord
	err   error
	calls int
}

type fakeRecord struct {
	f   storage.LoginFailures
	exp time.Time
}

func newFakeStore(clock *testClock) *fakeStore {
	return &fakeStore{clock: clock, recs: map[string]fakeRecord{}}
}

func (s *fakeStore) enter(ctx context.Context) error {
	s.calls++
	if s.err != nil {
		return s.err
	}
	return ctx.Err()
}

func (s *fakeStore) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *fakeStore) AddLoginFailure(ctx context.Context, key string, now time.Time, forgetAfter time.Duration) (storage.LoginFailures, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return storage.LoginFailures{}, err
	}
	r, ok := s.recs[key]
	if !ok || r.exp.Before(now) || r.f.Last.Before(now.Add(-forgetAfter)) {
		r = fakeRecord{}
	}
	r.f.Count++
	r.f.Last = now
	r.exp = now.Add(forgetAfter)
	s.recs[key] = r
	return r.f, nil
}

func (s *fakeStore) LoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return storage.LoginFailures{}, err
	}
	if r, ok := s.recs[key]; ok && !r.exp.Before(s.clock.Now()) {
		return r.f, nil
	}
	return storage.LoginFailures{}, nil
}

func (s *fakeStore) ClearLoginFailures(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enter(ctx); err != nil {
		return err
	}
	delete(s.recs, key)
	return nil
}

func (s *fakeStore) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recs[key].f.Count
}

var _ FailureStore = storage.Store(nil)

// backings runs a test on the in-memory counters and on a store.
func backings(t *testing.T, run func(t *testing.T, clock *testClock, opt ThrottleOptions)) {
	for _, name := range []string{"memory", "store"} {
		t.Run(name, func(t *testing.T) {
			clock := newTestClock()
			opt := ThrottleOptions{Now: clock.Now}
			if name == "store" {
				opt.Store = newFakeStore(clock)
			}
			run(t, clock, opt)
		})
	}
}

func wantWait(t *testing.T, th *Throttle, want time.Duration, keys ...string) {
	t.Helper()
	if got := th.Wait(t.Context(), keys...); got != want {
		t.Fatalf("Wait(%q) = %v, want %v", keys, got, want)
	}
}

func fail(t *testing.T, th *Throttle, n int, keys ...string) {
	t.Helper()
	for range n {
		th.Fail(t.Context(), keys...)
	}
}

func TestThrottleBackOff(t *testing.T) {
	backings(t, func(t *testing.T, clock *testClock, opt ThrottleOptions) {
		opt.Max = time.Minute
		th := NewThrottle(opt)
		u := th.keys("bob", "")[0]
		fail(t, th, 4, u)
		wantWait(t, th, 0, u)
		fail(t, th, 1, u) // the 5th: paused for Base
		wantWait(t, th, time.Second, u)
		clock.Advance(400 * time.Millisecond)
		wantWait(t, th, 600*time.Millisecond, u)
		clock.Advance(600 * time.Millisecond)
		wantWait(t, th, 0, u)
		// Each further failure doubles the pause, from its own time.
		for _, want := range []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
			fail(t, th, 1, u)
			wantWait(t, th, want, u)
		}
		// Other names are not affected.
		wantWait(t, th, 0, th.keys("alice", "")[0])
	})
}

func TestThrottleAddressThreshold(t *testing.T) {
	backings(t, func(t *testing.T, clock *testClock, opt ThrottleOptions) {
		th := NewThrottle(opt)
		for i := range 19 {
			th.Fail(t.Context(), th.keys(fmt.Sprintf("user-%d", i), "192.0.2.7")...)
		}
		keys := th.keys("someone-new", "192.0.2.7")
		wantWait(t, th, 0, keys...)
		th.Fail(t.Context(), th.keys("user-19", "192.0.2.7")...)
		wantWait(t, th, time.Second, keys...)
		wantWait(t, th, 0, th.keys("someone-new", "192.0.2.8")...)
	})
}

func TestThrottleForgives(t *testing.T) {
	backings(t, func(t *testing.T, clock *testClock, opt ThrottleOptions) {
		opt.Max = time.Minute
		th := NewThrottle(opt)
		u := th.keys("bob", "")[0]
		fail(t, th, 8, u)
		// A quiet period of exactly Max keeps the count...
		clock.Advance(time.Minute)
		fail(t, th, 1, u) // the 9th
		wantWait(t, th, 16*time.Second, u)
		// ...a longer one forgives it: four more failures go unpaused.
		clock.Advance(time.Minute + time.Nanosecond)
		wantWait(t, th, 0, u)
		fail(t, th, 4, u)
		wantWait(t, th, 0, u)
		fail(t, th, 1, u)
		wantWait(t, th, time.Second, u)
	})
}

func TestThrottleSucceed(t *testing.T) {
	backings(t, func(t *testing.T, clock *testClock, opt ThrottleOptions) {
		opt.UserFailures, opt.IPFailures = 2, 3
		th := NewThrottle(opt)
		keys := th.keys("bob", "192.0.2.7")
		fail(t, th, 3, keys...)
		wantWait(t, th, 2*time.Second, keys[0])
		wantWait(t, th, time.Second, keys[1])
		th.Succeed(t.Context(), keys[0])
		wantWait(t, th, 0, keys[0])
		// The address keeps its count.
		wantWait(t, th, time.Second, keys[1])
		fail(t, th, 1, keys[0])
		wantWait(t, th, 0, keys[0])
	})
}

func TestThrottlePauseBounds(t *testing.T) {
	th := NewThrottle(ThrottleOptions{Base: time.Hour, Max: 100 * time.Hour})
	u := th.keys("bob", "")[0]
	for count, want := range map[int]time.Duration{
		0: 0, 4: 0, 5: time.Hour, 6: 2 * time.Hour, 11: 64 * time.Hour, 12: 100 * time.Hour,
		70: 100 * time.Hour, 1 << 40: 100 * time.Hour,
	} {
		if got := th.pause(u, count); got != want {
			t.Errorf("pause(%d) = %v, want %v", count, got, want)
		}
	}
}

func TestThrottleNil(t *testing.T) {
	var th *Throttle
	th.Fail(t.Context(), "u\x00bob")
	th.Succeed(t.Context(), "u\x00bob")
	if w := th.Wait(t.Context(), "u\x00bob"); w != 0 {
		t.Errorf("nil Throttle: Wait = %v", w)
	}
}

// Two processes on one store share the counters; on their own they do not.
func TestThrottleSharedStore(t *testing.T) {
	clock := newTestClock()
	store := newFakeStore(clock)
	a := NewThrottle(ThrottleOptions{Now: clock.Now, Store: store})
	b := NewThrottle(ThrottleOptions{Now: clock.Now, Store: store})
	u := a.keys("bob", "")[0]
	for i := range 5 {
		if i%2 == 0 {
			a.Fail(t.Context(), u)
		} else {
			b.Fail(t.Context(), u)
		}
		clock.Advance(100 * time.Millisecond)
	}
	if n := store.count(u); n != 5 {
		t.Fatalf("store holds %d failures, want 5", n)
	}
	wantWait(t, a, 900*time.Millisecond, u)
	wantWait(t, b, 900*time.Millisecond, u)
	b.Succeed(t.Context(), u)
	wantWait(t, a, 0, u)

	a = NewThrottle(ThrottleOptions{Now: clock.Now})
	b = NewThrottle(ThrottleOptions{Now: clock.Now})
	fail(t, a, 3, u)
	fail(t, b, 2, u)
	wantWait(t, a, 0, u)
	wantWait(t, b, 0, u)
}

// countingHandler counts warnings.
type countingHandler struct {
	slog.Handler
	mu sync.Mutex
	n  int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}

func (h *countingHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// A store outage locks nobody out and leaves this process's own counters
// in charge; when the store answers again, it is in charge again.
func TestThrottleStoreOutage(t *testing.T) {
	clock := newTestClock()
	store := newFakeStore(clock)
	logs := &countingHandler{Handler: slog.DiscardHandler}
	th := NewThrottle(ThrottleOptions{Now: clock.Now, Store: store, Logger: slog.New(logs)})
	keys := th.keys("bob", "192.0.2.7")
	fail(t, th, 3, keys...) // seen by the store and by this process

	store.setErr(storage.ErrUnavailable)
	wantWait(t, th, 0, keys...) // not locked out
	if logs.count() == 0 {
		t.Error("a store failure in Wait was not logged")
	}
	fail(t, th, 2, keys...) // only this process sees these two
	wantWait(t, th, time.Second, keys...)
	th.Succeed(t.Context(), keys[0]) // clears this process's counter, logs the store's failure
	wantWait(t, th, 0, keys...)
	fail(t, th, 5, keys[0])
	wantWait(t, th, time.Second, keys...)
	before, calls := logs.count(), store.calls
	th.Fail(t.Context(), keys...)
	th.Succeed(t.Context(), keys[0])
	if got := logs.count() - before; got != 2 {
		t.Errorf("store failures in Fail (two keys) and Succeed logged %d warnings, want 2", got)
	}
	if got := store.calls - calls; got != 2 {
		t.Errorf("Fail (two keys) and Succeed asked the failing store %d times, want 2 (Fail gives up after one)", got)
	}

	// A login asks a failing store once, not once per key and step.
	d := NewDirectory([]User{{Username: "carol", Password: "carol-password"}}, th, passhash.NewLimiter(0, nil))
	for _, pw := range []string{"wrong", "carol-password"} {
		calls := store.calls
		_, _ = d.Authenticate(t.Context(), "carol", pw, "192.0.2.9")
		if got := store.calls - calls; got != 1 {
			t.Errorf("Authenticate(%s) asked the failing store %d times, want 1", pw, got)
		}
	}

	store.setErr(nil)
	// The store holds 3 failures of bob (from before the outage).
	wantWait(t, th, 0, keys...)
	fail(t, th, 2, keys[0])
	wantWait(t, th, time.Second, keys...)
}

// A failure is recorded even when the client hung up: the request's
// context has ended by the time the password check is done.
func TestThrottleFailAfterCancel(t *testing.T) {
	clock := newTestClock()
	store := newFakeStore(clock)
	logs := &countingHandler{Handler: slog.DiscardHandler}
	th := NewThrottle(ThrottleOptions{Now: clock.Now, Store: store, Logger: slog.New(logs)})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	u := th.keys("bob", "")[0]
	for range 5 {
		th.Fail(ctx, u)
	}
	if n := store.count(u); n != 5 {
		t.Errorf("Fail with an ended context: store holds %d failures, want 5", n)
	}
	// Wait cannot read the store with an ended context and uses this
	// process's counters; a client that left is no store failure to warn of.
	if w := th.Wait(ctx, u); w != time.Second {
		t.Errorf("Wait with an ended context = %v, want 1s from this process's counters", w)
	}
	if n := logs.count(); n != 0 {
		t.Errorf("%d warnings for an ended context", n)
	}
	th.Succeed(ctx, u)
	if n := store.count(u); n != 0 {
		t.Errorf("Succeed with an ended context: store holds %d failures, want 0", n)
	}
}

// A replica whose clock runs ahead cannot stretch a pause past its length.
func TestThrottleClockAhead(t *testing.T) {
	clock := newTestClock()
	store := newFakeStore(clock)
	ahead := &testClock{now: clock.Now().Add(time.Hour)}
	a := NewThrottle(ThrottleOptions{Now: ahead.Now, Store: store})
	b := NewThrottle(ThrottleOptions{Now: clock.Now, Store: store})
	u := a.keys("bob", "")[0]
	fail(t, a, 4, u)
	wantWait(t, b, 0, u) // below the threshold: never paused
	fail(t, a, 1, u)
	wantWait(t, b, time.Second, u)
}

func TestMemFailuresBounded(t *testing.T) {
	clock := newTestClock()
	th := NewThrottle(ThrottleOptions{Now: clock.Now, MaxEntries: 10})
	for i := range 10 {
		th.Fail(t.Context(), th.keys(fmt.Sprintf("old-%d", i), "")...)
		clock.Advance(time.Second)
	}
	th.Fail(t.Context(), th.keys("new", "")...)
	if n := len(th.local.entries); n > 10 || n < 5 {
		t.Errorf("%d entries after the 11th key, want between 5 and 10", n)
	}
	if _, ok := th.local.entries[th.keys("new", "")[0]]; !ok {
		t.Error("the newest key was evicted")
	}
	if _, ok := th.local.entries[th.keys("old-0", "")[0]]; ok {
		t.Error("the oldest key was kept")
	}

	// All at one instant: still bounded.
	th = NewThrottle(ThrottleOptions{Now: clock.Now, MaxEntries: 10})
	for i := range 100 {
		th.Fail(t.Context(), th.keys(fmt.Sprintf("spray-%d", i), "")...)
	}
	if n := len(th.local.entries); n > 10 {
		t.Errorf("%d entries after a spray at one instant, want at most 10", n)
	}

	// Expired entries go first.
	th = NewThrottle(ThrottleOptions{Now: clock.Now, MaxEntries: 3, Max: time.Minute})
	fail(t, th, 1, "u\x00a")
	fail(t, th, 1, "u\x00b")
	clock.Advance(30 * time.Second)
	fail(t, th, 1, "u\x00c")
	clock.Advance(31 * time.Second)
	fail(t, th, 1, "u\x00d")
	if _, ok := th.local.entries["u\x00c"]; !ok || len(th.local.entries) != 2 {
		t.Errorf("after evicting the expired: %d entries, c kept %v; want c and d", len(th.local.entries), ok)
	}
}

// Directory.Authenticate consults and feeds the throttle, and two
// directories on one store (two replicas) count together.
func TestDirectoryThrottle(t *testing.T) {
	backings(t, func(t *testing.T, clock *testClock, opt ThrottleOptions) {
		users := []User{{Username: "bob", Password: "bob-password"}, {Username: "alice", Password: "alice-password"}}
		dirs := []*Directory{NewDirectory(users, NewThrottle(opt), passhash.NewLimiter(0, nil))}
		if opt.Store != nil {
			dirs = append(dirs, NewDirectory(users, NewThrottle(opt), passhash.NewLimiter(0, nil)))
		} else {
			dirs = append(dirs, dirs[0]) // one process
		}
		ctx := t.Context()
		for i := range 5 {
			if _, err := dirs[i%2].Authenticate(ctx, "bob", "wrong", "192.0.2.7"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("wrong password #%d: %v", i+1, err)
			}
		}
		for i, d := range dirs {
			_, err := d.Authenticate(ctx, "bob", "bob-password", "192.0.2.7")
			var throttled *ThrottledError
			if !errors.As(err, &throttled) || throttled.RetryAfter != time.Second {
				t.Fatalf("directory %d, 6th attempt (right password): %v, want ThrottledError after 1s", i, err)
			}
		}
		// Alice, from the same address, is not paused.
		if _, err := dirs[1].Authenticate(ctx, "alice", "alice-password", "192.0.2.7"); err != nil {
			t.Fatalf("alice: %v", err)
		}
		clock.Advance(time.Second)
		if u, err := dirs[1].Authenticate(ctx, "bob", "bob-password", "192.0.2.7"); err != nil || u.Username != "bob" {
			t.Fatalf("bob after the pause: %v, %v", u, err)
		}
		// The good login cleared bob's counter for both.
		for i := range 4 {
			if _, err := dirs[i%2].Authenticate(ctx, "bob", "wrong", "192.0.2.7"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("wrong password #%d after a good login: %v", i+1, err)
			}
		}
	})
}
