package gateway

import (
	"fmt"
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(100, clk.Now)
	tier := newTierState("bronze", Tier{Requests: 2, Per: time.Second, Burst: 3})

	for i := range 3 {
		d := l.take(tier, "billing")
		if !d.allowed || d.remaining != 2-i || d.limit != 3 {
			t.Fatalf("take %d = %+v", i, d)
		}
	}
	d := l.take(tier, "billing")
	if d.allowed || d.retryAfter != 500*time.Millisecond || d.remaining != 0 {
		t.Fatalf("over the limit: %+v", d)
	}
	if got := ceilSeconds(d.retryAfter); got != 1 {
		t.Errorf("Retry-After = %d, want 1", got)
	}
	if other := l.take(tier, "reports"); !other.allowed {
		t.Error("one client's bucket limited another")
	}
	clk.Advance(500 * time.Millisecond)
	if d := l.take(tier, "billing"); !d.allowed {
		t.Errorf("after refill: %+v", d)
	}
	clk.Advance(time.Hour)
	d = l.take(tier, "billing")
	if !d.allowed || d.remaining != 2 {
		t.Errorf("bucket did not cap at burst: %+v", d)
	}
	if d.reset != 500*time.Millisecond {
		t.Errorf("reset = %v, want 500ms to refill one token", d.reset)
	}
}

func TestTierDefaultBurst(t *testing.T) {
	ts := newTierState("x", Tier{Requests: 10, Per: time.Minute})
	if ts.capacity != 10 || ts.limit != 10 {
		t.Errorf("burst 0 should default to requests: %+v", ts)
	}
}

func TestLimiterEvictsIdleBuckets(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(1000, clk.Now)
	tier := newTierState("t", Tier{Requests: 10, Per: time.Second})
	for i := range 500 {
		l.take(tier, fmt.Sprint("client-", i))
	}
	clk.Advance(2 * sweepInterval) // every bucket is full again
	l.take(tier, "newcomer")
	if n := l.len(); n != 1 {
		t.Errorf("after sweep %d buckets remain, want 1", n)
	}
}

func TestLimiterHardCap(t *testing.T) {
	clk := newFakeClock()
	l := newLimiter(100, clk.Now)
	tier := newTierState("t", Tier{Requests: 1, Per: time.Hour})
	for i := range 1000 {
		l.take(tier, fmt.Sprint("flood-", i))
	}
	if n := l.len(); n > 100 {
		t.Errorf("limiter holds %d buckets, cap 100", n)
	}
	// Eviction makes room for a tenth of the cap at once, so a flood of new
	// callers does not pay a full scan each.
	l2 := newLimiter(100, clk.Now)
	for i := range 100 {
		l2.take(tier, fmt.Sprint("a-", i))
	}
	l2.take(tier, "one-more")
	if n := l2.len(); n > 91 {
		t.Errorf("after reaching the cap the limiter holds %d buckets, want room for the next tenth (≤ 91)", n)
	}
}
