package identity

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/postern-auth/postern/storage"
)

// FailureStore keeps the failed-login counters, with the semantics of the
// storage.Store methods of the same names (which satisfy it): replicas that
// share a store share the counters, so N replicas do not give an attacker N
// times the attempts.
type FailureStore interface {
	AddLoginFailure(ctx context.Context, key string, now time.Time, forgetAfter time.Duration) (storage.LoginFailures, error)
	LoginFailures(ctx context.Context, key string) (storage.LoginFailures, error)
	ClearLoginFailures(ctx context.Context, key string) error
}

// ThrottleOptions set the brute-force back-off. Zero values take defaults.
type ThrottleOptions struct {
	// After UserFailures (IPFailures) failures attempts pause for Base;
	// each further failure doubles the pause, capped at Max. An address gets
	// more room than a name because many users may share one (NAT). A quiet
	// period longer than Max forgives a counter's past.
	UserFailures int           // default 5
	IPFailures   int           // default 20
	Base         time.Duration // default 1s
	Max          time.Duration // default 15m
	// MaxEntries bounds the counters kept in memory under a spray of
	// usernames or addresses (a Store bounds its own by expiry).
	MaxEntries int // default 100000
	Now        func() time.Time
	// Store keeps the counters, shared with every process using it. Nil
	// keeps them in this process's memory only.
	Store FailureStore
	// Logger receives the Store's failures (nil discards them).
	Logger *slog.Logger
}

// Throttle counts failed logins per username and per client address and
// pauses further attempts with exponential back-off.
//
// The counters live in opt.Store when there is one, else in memory. With a
// Store, this process also counts the failures it sees in memory, and a
// Store failure neither locks everyone out nor opens the door: it is logged
// and Wait falls back to those counters for the keys it could not read, so
// an outage degrades to per-process throttling (a good login on another
// replica does not clear them; forgiveness after Max does). Directory
// stops asking the Store for the rest of a login once it failed, so a Store
// that hangs costs a login one Store timeout. Failures and successes are
// written even when the request's context has ended, so hanging up
// mid-login does not escape the count.
type Throttle struct {
	opt   ThrottleOptions
	store FailureStore // opt.Store, or local
	local *memFailures // this process's counters: the only ones, or the fallback
	log   *slog.Logger

	// inflight counts attempts being checked right now, per key. The
	// counters are read before a password is verified and written after,
	// so without this bound a burst of parallel guesses would all be
	// checked before the first failure was counted.
	mu       sync.Mutex
	inflight map[string]int
}

// In-flight attempts allowed at once: one per username (a person does not
// type two passwords at the same moment), a few per address (people behind
// one NAT).
const (
	userInflight = 1
	addrInflight = 4
)

// begin reserves an in-flight slot for every key, or reports that one is
// taken. The caller must call the returned release.
func (t *Throttle) begin(keys []string) (release func(), ok bool) {
	if t == nil {
		return func() {}, true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inflight == nil {
		t.inflight = map[string]int{}
	}
	for _, k := range keys {
		limit := userInflight
		if k[0] == 'a' {
			limit = addrInflight
		}
		if t.inflight[k] >= limit {
			return nil, false
		}
	}
	for _, k := range keys {
		t.inflight[k]++
	}
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, k := range keys {
			if t.inflight[k]--; t.inflight[k] <= 0 {
				delete(t.inflight, k)
			}
		}
	}, true
}

func NewThrottle(opt ThrottleOptions) *Throttle {
	if opt.UserFailures <= 0 {
		opt.UserFailures = 5
	}
	if opt.IPFailures <= 0 {
		opt.IPFailures = 20
	}
	if opt.Base <= 0 {
		opt.Base = time.Second
	}
	if opt.Max <= 0 {
		opt.Max = 15 * time.Minute
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = 100000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Throttle{
		opt:   opt,
		local: &memFailures{max: opt.MaxEntries, now: opt.Now, entries: map[string]*memFailure{}},
		log:   opt.Logger,
	}
	t.store = opt.Store
	if t.store == nil {
		t.store = t.local
	}
	return t
}

// keys names the counters for one attempt: the username first. The first
// byte tells the kinds apart, so a name and an address never share one.
func (t *Throttle) keys(username, ip string) []string {
	k := []string{"u\x00" + username}
	if ip != "" {
		k = append(k, "a\x00"+ip)
	}
	return k
}

func (t *Throttle) threshold(key string) int {
	if key != "" && key[0] == 'a' {
		return t.opt.IPFailures
	}
	return t.opt.UserFailures
}

// pause is how long a counter holds attempts back after its last failure:
// nothing below the threshold, then Base doubling per failure, capped at Max.
func (t *Throttle) pause(key string, count int) time.Duration {
	shift := count - t.threshold(key)
	if shift < 0 {
		return 0
	}
	if shift < 62 && t.opt.Base <= t.opt.Max>>shift {
		return t.opt.Base << shift
	}
	return t.opt.Max
}

// shared reports whether the counters live in a Store.
func (t *Throttle) shared() bool { return t.opt.Store != nil }

func (t *Throttle) storeFailed(ctx context.Context, op string, err error) {
	level := slog.LevelWarn
	if ctx.Err() != nil {
		level = slog.LevelDebug // the client went away, not the store
	}
	t.log.Log(ctx, level, "login throttle: store failed; using this process's counters", "op", op, "error", err)
}

// Wait returns how long the caller must wait before the next attempt.
func (t *Throttle) Wait(ctx context.Context, keys ...string) time.Duration {
	wait, _ := t.wait(ctx, keys...)
	return wait
}

// Fail records a failed attempt against every key.
func (t *Throttle) Fail(ctx context.Context, keys ...string) { t.fail(ctx, true, keys...) }

// Succeed clears the counter of a key (the username after a good login; the
// address keeps its count so one good account cannot launder a spray).
func (t *Throttle) Succeed(ctx context.Context, key string) { t.succeed(ctx, true, key) }

// wait is Wait, which also reports whether the Store answered. After the
// first Store failure it reads only this process's counters, and so do
// fail and succeed when told the Store did not answer: a login against a
// Store that hangs waits out one Store timeout, not one per key and step.
func (t *Throttle) wait(ctx context.Context, keys ...string) (wait time.Duration, storeOK bool) {
	if t == nil {
		return 0, true
	}
	now := t.opt.Now()
	storeOK = true
	for _, k := range keys {
		var f storage.LoginFailures
		if storeOK {
			var err error
			if f, err = t.store.LoginFailures(ctx, k); err != nil {
				t.storeFailed(ctx, "read", err)
				storeOK = false
			}
		}
		if !storeOK {
			f, _ = t.local.LoginFailures(ctx, k)
		}
		d := t.pause(k, f.Count)
		if until := f.Last.Add(d); d > 0 && until.After(now) {
			// Never longer than the pause itself, even when Last comes
			// from a replica whose clock runs ahead.
			wait = max(wait, min(until.Sub(now), d))
		}
	}
	return wait, storeOK
}

func (t *Throttle) fail(ctx context.Context, useStore bool, keys ...string) {
	if t == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	now := t.opt.Now()
	useStore = useStore && t.shared()
	for _, k := range keys {
		if useStore {
			if _, err := t.opt.Store.AddLoginFailure(ctx, k, now, t.opt.Max); err != nil {
				t.storeFailed(ctx, "add", err)
				useStore = false
			}
		}
		_, _ = t.local.AddLoginFailure(ctx, k, now, t.opt.Max)
	}
}

func (t *Throttle) succeed(ctx context.Context, useStore bool, key string) {
	if t == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if useStore && t.shared() {
		if err := t.opt.Store.ClearLoginFailures(ctx, key); err != nil {
			t.storeFailed(ctx, "clear", err)
		}
	}
	_ = t.local.ClearLoginFailures(ctx, key)
}

// memFailures is a FailureStore in this process's memory, bounded by max
// entries.
type memFailures struct {
	max     int
	now     func() time.Time
	mu      sync.Mutex
	entries map[string]*memFailure
}

type memFailure struct {
	storage.LoginFailures
	exp time.Time
}

func (m *memFailures) AddLoginFailure(_ context.Context, key string, now time.Time, forgetAfter time.Duration) (storage.LoginFailures, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key]
	if e == nil {
		if len(m.entries) >= m.max {
			m.evict(now)
		}
		e = &memFailure{}
		m.entries[key] = e
	}
	// As storage.Store: an expired counter or a quiet period longer than
	// forgetAfter starts again.
	if e.exp.Before(now) || now.Sub(e.Last) > forgetAfter {
		e.Count = 0
	}
	e.Count++
	e.Last = now
	e.exp = now.Add(forgetAfter)
	return e.LoginFailures, nil
}

func (m *memFailures) LoginFailures(_ context.Context, key string) (storage.LoginFailures, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.entries[key]; e != nil && !e.exp.Before(now) {
		return e.LoginFailures, nil
	}
	return storage.LoginFailures{}, nil
}

func (m *memFailures) ClearLoginFailures(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.entries, key)
	m.mu.Unlock()
	return nil
}

// evict drops expired entries; if all are live, the older half goes.
func (m *memFailures) evict(now time.Time) {
	for k, e := range m.entries {
		if e.exp.Before(now) {
			delete(m.entries, k)
		}
	}
	if len(m.entries) < m.max {
		return
	}
	var oldest time.Time
	first := true
	for _, e := range m.entries {
		if first || e.Last.Before(oldest) {
			oldest, first = e.Last, false
		}
	}
	// Finding the median is costly; dropping entries older than the
	// midpoint between the oldest entry and now removes roughly the older
	// half.
	mid := oldest.Add(now.Sub(oldest) / 2)
	for k, e := range m.entries {
		if e.Last.Before(mid) {
			delete(m.entries, k)
		}
	}
	if len(m.entries) < m.max {
		return
	}
	// All failed at one instant: any half will do.
	for k := range m.entries {
		if len(m.entries) < m.max/2+1 {
			break
		}
		delete(m.entries, k)
	}
}
