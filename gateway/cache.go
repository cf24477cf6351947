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

// get returns the entry for k if it has not expired at now.
func (c *tokenCache) get(k tokenKey, now time.Time) (id *Identity, found bool) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.m[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		s.ll.Remove(el)
		delete(s.m, k)
		return nil, false
	}
	s.ll.MoveToFront(el)
	return e.id, true
}

// put stores id (nil: negative) until expires, evicting the least recently
// used entry when full. Entries that would already be expired are dropped.
func (c *tokenCache) put(k tokenKey, id *Identity, expires time.Time, now time.Time) {
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
		e.id, e.expires = id, expires
		s.ll.MoveToFront(el)
		return
	}
	for s.ll.Len() >= s.max {
		oldest := s.ll.Back()
		s.ll.Remove(oldest)
		delete(s.m, oldest.Value.(*cacheEntry).key)
	}
	s.m[k] = s.ll.PushFront(&cacheEntry{key: k, id: id, expires: expires})
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

// positiveExpiry is when a positive result stops being reused:
// min(ttl, exp - now). A token past its exp is not cached at all.
func positiveExpiry(now time.Time, ttl time.Duration, exp time.Time) time.Time {
	until := now.Add(ttl)
	if !exp.IsZero() && exp.Before(until) {
		return exp
	}
	return until
}
