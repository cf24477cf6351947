package flows

import (
	"sync"
	"time"
)

// ThrottleOptions set the brute-force back-off. Zero values take defaults.
type ThrottleOptions struct {
	// After UserFailures (IPFailures) failures attempts pause for Base;
	// each further failure doubles the pause, capped at Max. An address gets
	// more room than a name because many users may share one (NAT).
	UserFailures int           // default 5
	IPFailures   int           // default 20
	Base         time.Duration // default 1s
	Max          time.Duration // default 15m
	// MaxEntries bounds memory under a spray of usernames or addresses.
	MaxEntries int // default 100000
	Now        func() time.Time
}

// Throttle counts failed logins per username and per client address and
// pauses further attempts with exponential back-off. It lives in memory:
// one process's view (a shared store takes it over for replicas).
type Throttle struct {
	opt     ThrottleOptions
	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures  int
	threshold int
	until     time.Time
	last      time.Time
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
	return &Throttle{opt: opt, entries: map[string]*throttleEntry{}}
}

// keys names the counters for one attempt: the username first.
func (t *Throttle) keys(username, ip string) []string {
	k := []string{"u\x00" + username}
	if ip != "" {
		k = append(k, "a\x00"+ip)
	}
	return k
}

// Wait returns how long the caller must wait before the next attempt.
func (t *Throttle) Wait(keys ...string) time.Duration {
	if t == nil {
		return 0
	}
	now := t.opt.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if e := t.entries[k]; e != nil && e.until.After(now) {
			wait = max(wait, e.until.Sub(now))
		}
	}
	return wait
}

// Fail records a failed attempt against every key.
func (t *Throttle) Fail(keys ...string) {
	if t == nil {
		return
	}
	now := t.opt.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) >= t.opt.MaxEntries {
		t.evict(now)
	}
	for _, k := range keys {
		e := t.entries[k]
		if e == nil {
			e = &throttleEntry{threshold: t.opt.UserFailures}
			if k[0] == 'a' {
				e.threshold = t.opt.IPFailures
			}
			t.entries[k] = e
		}
		// A quiet period as long as the longest pause forgives the past.
		if now.Sub(e.last) > t.opt.Max {
			e.failures = 0
		}
		e.failures++
		e.last = now
		if over := e.failures - e.threshold + 1; over > 0 {
			d := t.opt.Base << min(over-1, 30)
			if d <= 0 || d > t.opt.Max {
				d = t.opt.Max
			}
			e.until = now.Add(d)
		}
	}
}

// Succeed clears the counter of a key (the username after a good login; the
// address keeps its count so one good account cannot launder a spray).
func (t *Throttle) Succeed(key string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}

// evict drops forgiven entries; if all are live, the oldest half goes.
func (t *Throttle) evict(now time.Time) {
	for k, e := range t.entries {
		if now.Sub(e.last) > t.opt.Max && !e.until.After(now) {
			delete(t.entries, k)
		}
	}
	if len(t.entries) < t.opt.MaxEntries {
		return
	}
	var cutoff time.Time
	n := 0
	for _, e := range t.entries {
		if n == 0 || e.last.Before(cutoff) {
			cutoff = e.last
		}
		n++
	}
	// Second pass: drop everything at or below the median-ish age is costly
	// to compute; dropping entries older than the midpoint between the
	// oldest entry and now removes roughly the older half.
	mid := cutoff.Add(now.Sub(cutoff) / 2)
	for k, e := range t.entries {
		if e.last.Before(mid) {
			delete(t.entries, k)
		}
	}
}
