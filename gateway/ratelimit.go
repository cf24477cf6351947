package gateway

import (
	"math"
	"sync"
	"time"
)

// tierState is a configured Tier in the units the bucket math uses.
type tierState struct {
	name     string
	rate     float64 // tokens per second
	capacity float64 // burst
	limit    int     // reported as RateLimit-Limit
}

func newTierState(name string, t Tier) *tierState {
	burst := t.Burst
	if burst == 0 {
		burst = t.Requests
	}
	return &tierState{
		name:     name,
		rate:     float64(t.Requests) / t.Per.Seconds(),
		capacity: float64(burst),
		limit:    burst,
	}
}

// limiter holds one token bucket per (tier, caller). A caller is a
// client_id, or the client address on public routes. Memory is bounded:
// a bucket that has refilled completely is indistinguishable from a new
// one, so idle buckets are dropped by a periodic sweep, and a hard cap
// evicts arbitrary buckets when a flood of callers outruns the sweep.
type limiter struct {
	mu        sync.Mutex
	buckets   map[bucketKey]*bucket
	max       int
	lastSweep time.Time
	now       func() time.Time
}

type bucketKey struct {
	tier   *tierState
	caller string
}

type bucket struct {
	tokens float64
	last   time.Time
}

// decision is the outcome of one take, with what the RateLimit-* and
// Retry-After headers report.
type decision struct {
	allowed    bool
	limit      int
	remaining  int
	reset      time.Duration // until the bucket is full again
	retryAfter time.Duration // until one request is allowed; 0 if allowed
}

func newLimiter(max int, now func() time.Time) *limiter {
	return &limiter{buckets: map[bucketKey]*bucket{}, max: max, now: now}
}

const sweepInterval = time.Minute

// take spends one token from the caller's bucket in tier.
func (l *limiter) take(t *tierState, caller string) decision {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := bucketKey{t, caller}
	b, ok := l.buckets[k]
	if !ok {
		if len(l.buckets) >= l.max || now.Sub(l.lastSweep) >= sweepInterval {
			l.sweep(now)
		}
		b = &bucket{tokens: t.capacity, last: now}
		l.buckets[k] = b
	} else if el := now.Sub(b.last); el > 0 {
		b.tokens = math.Min(t.capacity, b.tokens+el.Seconds()*t.rate)
		b.last = now
	}
	d := decision{limit: t.limit}
	if b.tokens >= 1 {
		b.tokens--
		d.allowed = true
	} else {
		d.retryAfter = seconds((1 - b.tokens) / t.rate)
	}
	d.remaining = int(b.tokens)
	d.reset = seconds((t.capacity - b.tokens) / t.rate)
	return d
}

// sweep drops full buckets, then arbitrary ones while over the cap (a
// caller so evicted starts again with a full bucket: the cap trades a
// little leniency under a flood for bounded memory). l.mu is held.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*k.tier.rate >= k.tier.capacity {
			delete(l.buckets, k)
		}
	}
	// Evict down to 90%, not just under the cap: otherwise every new caller
	// of a flood would pay a full scan under the lock.
	for k := range l.buckets {
		if len(l.buckets) < l.max-l.max/10 {
			break
		}
		delete(l.buckets, k)
	}
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second))
}

// ceilSeconds rounds up to whole seconds, at least 1: Retry-After and
// RateLimit-Reset are integers, and "0" would invite an immediate retry
// that fails.
func ceilSeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}
