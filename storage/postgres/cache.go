package postgres

import (
	"container/list"
	"sync"

	"github.com/postern-auth/postern/storage"
)

// tokenCache holds access tokens this replica read, so that introspecting
// one does not cost a round trip to the database each time. Only access
// tokens are cached: they change only by revocation (which every replica
// hears of, see listen.go) or by expiry (which the cache checks itself). A
// one-time token's state flips when another replica redeems it, and that
// must be seen at once, so those are always read from the database.
//
// The cache is trusted only while the notification connection is up and
// caught up with the revocations table; untrusted, it neither answers nor
// fills. gen counts evictions, so that a read that raced a revocation does
// not put back what the revocation removed.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	lru     *list.List // of *storage.Token, most recent first
	bySig   map[string]*list.Element
	trusted bool
	gen     uint64
	// seq is the last revocation event applied; meaningful while trusted.
	seq uint64
	// wake is closed and replaced on every revocation this replica hears
	// of, for storage.RevocationNotifier.
	wake chan struct{}
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, lru: list.New(), bySig: map[string]*list.Element{}, wake: make(chan struct{})}
}

// get returns a cached token unexpired at now (Unix nanoseconds).
func (c *tokenCache) get(sig string, now int64) (storage.Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.trusted {
		return storage.Token{}, false
	}
	e, ok := c.bySig[sig]
	if !ok {
		return storage.Token{}, false
	}
	t := e.Value.(*storage.Token)
	if nanos(t.ExpiresAt) < now {
		c.remove(e)
		return storage.Token{}, false
	}
	c.lru.MoveToFront(e)
	out := *t
	// Callers own what they get, as with a database read.
	out.Data = append([]byte(nil), t.Data...)
	return out, true
}

// generation is read before a database read whose result may be put.
func (c *tokenCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches t unless something was evicted since gen was read, or the
// cache is not trusted.
func (c *tokenCache) put(t storage.Token, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.trusted || c.gen != gen {
		return
	}
	if e, ok := c.bySig[t.Signature]; ok {
		c.remove(e)
	}
	t.Data = append([]byte(nil), t.Data...)
	c.bySig[t.Signature] = c.lru.PushFront(&t)
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *tokenCache) remove(e *list.Element) {
	delete(c.bySig, e.Value.(*storage.Token).Signature)
	c.lru.Remove(e)
}

// evictSig drops one token (deleted or redeemed on this replica, or deleted
// on another, as its notification says).
func (c *tokenCache) evictSig(sig string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.bySig[sig]; ok {
		c.remove(e)
	}
}

// apply drops what a revocation event covers. It does not move the
// position: only catchUp, reading events in order, does. Revocations are rare and the
// cache bounded, so a scan beats keeping three more indexes.
func (c *tokenCache) apply(r storage.Revocation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for e := c.lru.Front(); e != nil; {
		next := e.Next()
		t := e.Value.(*storage.Token)
		var hit bool
		switch r.Kind {
		case storage.RevokedGrant:
			hit = t.RequestID == r.ID
		case storage.RevokedSubject:
			hit = t.Subject == r.ID
		case storage.RevokedClient:
			hit = t.ClientID == r.ID
		default:
			hit = true // an event this version does not know: be safe
		}
		if hit {
			c.remove(e)
		}
		e = next
	}
}

// distrust stops the cache answering: the notification connection is
// down, so revocations may be missed. Its entries stay, to be checked
// against the events it missed once it reconnects (see catchUp).
func (c *tokenCache) distrust() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.trusted = false
}

// drop empties the cache: events it missed were swept.
func (c *tokenCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.lru.Init()
	clear(c.bySig)
}

// position is the last event applied, and whether the cache is trusted.
func (c *tokenCache) position() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq, c.trusted
}

// trustFrom marks the cache caught up to seq.
func (c *tokenCache) trustFrom(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq = max(c.seq, seq)
	c.trusted = true
}

// signal wakes those waiting for a revocation.
func (c *tokenCache) signal() {
	c.mu.Lock()
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
}

func (c *tokenCache) waiter() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wake
}

// signatures lists the tokens the cache holds.
func (c *tokenCache) signatures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	sigs := make([]string, 0, len(c.bySig))
	for sig := range c.bySig {
		sigs = append(sigs, sig)
	}
	return sigs
}

func (c *tokenCache) empty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len() == 0
}
