package gateway

import (
	"crypto/sha256"
	"testing"
	"time"
)

func key(s string) tokenKey { return tokenKey(sha256.Sum256([]byte(s))) }

func TestPositiveExpiry(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name                string
		ttl                 time.Duration
		exp                 time.Time
		wantExpires, wantTT time.Time
	}{
		{"ttl shorter than token", 30 * time.Second, now.Add(time.Hour), now.Add(time.Hour), now.Add(30 * time.Second)},
		{"token expires first", time.Hour, now.Add(10 * time.Second), now.Add(10 * time.Second), now.Add(10 * time.Second)},
		{"no exp from server", time.Minute, time.Time{}, now.Add(time.Minute), now.Add(time.Minute)},
		{"already expired", time.Minute, now.Add(-time.Second), now.Add(-time.Second), now.Add(-time.Second)},
	}
	for _, tt := range tests {
		expires, ttlUntil := positiveExpiry(now, tt.ttl, tt.exp)
		if !expires.Equal(tt.wantExpires) || !ttlUntil.Equal(tt.wantTT) {
			t.Errorf("%s: positiveExpiry = %v, %v; want %v, %v", tt.name, expires, ttlUntil, tt.wantExpires, tt.wantTT)
		}
	}
}

// With the revocation feed, a positive entry lives until the token's exp;
// without it, cache.ttl bounds it as before.
func TestCacheInformedByFeed(t *testing.T) {
	clk := newFakeClock()
	c := newTokenCache(10)
	id := newIdentity("alice", "spa", "read", clk.Now().Add(time.Hour))
	expires, ttlUntil := positiveExpiry(clk.Now(), time.Minute, id.Expiry)
	c.put(key("a"), id, expires, ttlUntil, clk.Now())
	clk.Advance(2 * time.Minute)
	if _, ok := c.get(key("a"), clk.Now(), true); !ok {
		t.Error("with the feed, the entry ended at cache.ttl")
	}
	if _, ok := c.get(key("a"), clk.Now(), false); ok {
		t.Error("without the feed, the entry outlived cache.ttl")
	}
	c.put(key("b"), id, expires, ttlUntil, clk.Now())
	c.put(key("c"), newIdentity("bob", "spa", "read", time.Time{}), clk.Now().Add(time.Hour), clk.Now().Add(time.Hour), clk.Now())
	if n := c.evict(func(id *Identity) bool { return id.Subject == "alice" }); n != 1 {
		t.Errorf("evict removed %d entries, want 1", n)
	}
	if _, ok := c.get(key("c"), clk.Now(), true); !ok {
		t.Error("evict removed another subject's entry")
	}
	c.clear()
	if c.len() != 0 {
		t.Error("clear left entries")
	}
}

func TestCacheTTL(t *testing.T) {
	clk := newFakeClock()
	c := newTokenCache(10)
	id := newIdentity("", "billing", "read", clk.Now().Add(20*time.Second))
	exp, ttlUntil := positiveExpiry(clk.Now(), time.Minute, id.Expiry)
	c.put(key("a"), id, exp, ttlUntil, clk.Now())
	c.put(key("neg"), nil, clk.Now().Add(5*time.Second), clk.Now().Add(5*time.Second), clk.Now())
	c.put(key("dead"), id, clk.Now(), clk.Now(), clk.Now()) // expires now: not stored

	if got, ok := c.get(key("a"), clk.Now(), false); !ok || got != id {
		t.Fatal("fresh positive entry missing")
	}
	if got, ok := c.get(key("neg"), clk.Now(), false); !ok || got != nil {
		t.Fatal("fresh negative entry missing")
	}
	if _, ok := c.get(key("dead"), clk.Now(), false); ok {
		t.Fatal("an already-expired result was cached")
	}
	clk.Advance(5 * time.Second)
	if _, ok := c.get(key("neg"), clk.Now(), false); ok {
		t.Error("negative entry outlived negative_ttl")
	}
	if _, ok := c.get(key("a"), clk.Now(), false); !ok {
		t.Error("positive entry expired early")
	}
	clk.Advance(15 * time.Second) // token exp reached, well before the 1m ttl
	if _, ok := c.get(key("a"), clk.Now(), false); ok {
		t.Error("positive entry outlived the token's exp")
	}
	if c.len() != 0 {
		t.Errorf("expired entries not removed: %d left", c.len())
	}
}

func TestCacheLRU(t *testing.T) {
	clk := newFakeClock()
	exp := clk.Now().Add(time.Hour)
	c := newTokenCache(3)
	for _, k := range []string{"a", "b", "c"} {
		c.put(key(k), newIdentity("", k, "", time.Time{}), exp, exp, clk.Now())
	}
	c.get(key("a"), clk.Now(), false) // a is now the most recent; b the least
	c.put(key("d"), newIdentity("", "d", "", time.Time{}), exp, exp, clk.Now())
	if _, ok := c.get(key("b"), clk.Now(), false); ok {
		t.Error("least recently used entry b was not evicted")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok := c.get(key(k), clk.Now(), false); !ok {
			t.Errorf("entry %s evicted", k)
		}
	}
	if c.len() != 3 {
		t.Errorf("len = %d, want 3", c.len())
	}
}

func TestCacheShardedBound(t *testing.T) {
	clk := newFakeClock()
	c := newTokenCache(2048)
	for i := range 10000 {
		c.put(key(string(rune(i))+"x"), nil, clk.Now().Add(time.Hour), clk.Now().Add(time.Hour), clk.Now())
	}
	if n := c.len(); n > 2048 {
		t.Errorf("cache holds %d entries, bound 2048", n)
	}
}
