package gateway

import (
	"container/list"
	"sync"
	"time"
)

// tokenKey is the SHA-256 of a token. The cache never holds raw tokens, so
// a heap dump or a debugging session does not leak live credentials.
type tokenKey [32]byte

// tokenCache is a bounded LRU of validation results. A nil *Identity is a
// negative entry ("not active"). It is split into shards by key so that
// parallel requests with different tokens do not queue on one lock.
type tokenCache struct {
	shards []cacheShard
}

type cacheShard struct {
	mu  sync.Mutex
	max int
	ll  list.List // front = most recently used
	m   map[tokenKey]*list.Element
}

type cacheEntry struct {
	key     tokenKey
	id      *Identity
	expires time.Time
	// ttlUntil is when the entry ends if the revocation feed is not
	// there to evict it (cache.ttl); expires may be later, up to the
	// token's exp, for a gateway the feed keeps informed.
	ttlUntil time.Time
}

func newTokenCache(maxEntries int) *tokenCache {
	n := 1
	if maxEntries >= 1024 {
		n = 16 // small caches stay exact LRUs; big ones trade a little exactness for less contention
	}
	c := &tokenCache{shards: make([]cacheShard, n)}
	for i := range c.shards {
		c.shards[i].max = maxEntries / n
		c.shards[i].m = map[tokenKey]*list.Element{}
	}
	return c
}

func (c *tokenCache) shard(k tokenKey) *cacheShard {
	return &c.shards[int(k[0])%len(c.shards)]
}

// get returns the entry for k if it has not expired at now; without the
// feed (informed false) an entry lives no longer than its ttlUntil.
func (c *tokenCache) get(k tokenKey, now time.Time, informed bool) (id *Identity, found bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.m[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	end := e.expires
	if !informed && e.ttlUntil.Before(end) {
		end = e.ttlUntil
	}
	if !now.Before(end) {
		s.ll.Remove(el)
		delete(s.m, k)
		return nil, false
	}
	s.ll.MoveToFront(el)
	return e.id, true
}

// put stores id (nil: negative) until expires (and ttlUntil without the
// feed), evicting the least recently used entry when full. Entries that
// would already be expired are dropped.
func (c *tokenCache) put(k tokenKey, id *Identity, expires, ttlUntil time.Time, now time.Time) {
	if !now.Before(expires) {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.max <= 0 {
		return
	}
	if el, ok := s.m[k]; ok {
		e := el.Value.(*cacheEntry)
		e.id, e.expires, e.ttlUntil = id, expires, ttlUntil
		s.ll.MoveToFront(el)
		return
	}
	for s.ll.Len() >= s.max {
		oldest := s.ll.Back()
		s.ll.Remove(oldest)
		delete(s.m, oldest.Value.(*cacheEntry).key)
	}
	s.m[k] = s.ll.PushFront(&cacheEntry{key: k, id: id, expires: expires, ttlUntil: ttlUntil})
}

// evict removes every positive entry whose identity drop matches, and
// reports how many.
func (c *tokenCache) evict(drop func(*Identity) bool) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for el := s.ll.Front(); el != nil; {
			next := el.Next()
			if e := el.Value.(*cacheEntry); e.id != nil && drop(e.id) {
				s.ll.Remove(el)
				delete(s.m, e.key)
				n++
			}
			el = next
		}
		s.mu.Unlock()
	}
	return n
}

// clear empties the cache (the feed said to start over).
func (c *tokenCache) clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		s.ll.Init()
		s.m = map[tokenKey]*list.Element{}
		s.mu.Unlock()
	}
}

// len counts entries, expired ones included (tests, metrics).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.ll.Len()
		s.mu.Unlock()
	}
	return n
}

// positiveExpiry is when a positive result stops being reused: without the
// feed min(ttl, exp - now) (ttlUntil); with it, the token's exp (expires;
// the ttl when the token has none). A token past its exp is not cached.
func positiveExpiry(now time.Time, ttl time.Duration, exp time.Time) (expires, ttlUntil time.Time) {
	ttlUntil = now.Add(ttl)
	if !exp.IsZero() && exp.Before(ttlUntil) {
		ttlUntil = exp
	}
	if exp.IsZero() {
		return ttlUntil, ttlUntil
	}
	return exp, ttlUntil
}
