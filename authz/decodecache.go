package authz

import (
	"bytes"
	"net/url"
	"sync"
)

// decodeCache remembers decoded stored requests by token, so a token that is
// introspected again and again (every request through a gateway whose cache
// expired) is not JSON-decoded each time; profiles put that decode at a fifth
// of introspection's CPU. The store is still read on every lookup and a hit
// requires the stored bytes to be identical, so revocation, rotation and a
// store shared by several replicas behave exactly as without the cache.
type decodeCache struct {
	mu  sync.Mutex
	m   map[string]*decodedRequest
	max int
}

type decodedRequest struct {
	data []byte
	sr   storedRequest
	sess Session
}

func newDecodeCache(max int) *decodeCache {
	return &decodeCache{m: make(map[string]*decodedRequest, max), max: max}
}

func (c *decodeCache) get(key string, data []byte) (*decodedRequest, bool) {
	c.mu.Lock()
	d, ok := c.m[key]
	c.mu.Unlock()
	if !ok || !bytes.Equal(d.data, data) {
		return nil, false
	}
	return d, true
}

func (c *decodeCache) put(key string, d *decodedRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Random eviction (map order) is enough: hot tokens come back.
		n := c.max / 8
		for k := range c.m {
			delete(c.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	c.m[key] = d
}

// copySession gives each request its own maps: fosite and the handlers may
// modify a request's session and form.
func (d *decodedRequest) copySession(dst *Session) {
	*dst = *d.sess.Clone().(*Session)
}

func cloneForm(f url.Values) url.Values {
	if f == nil {
		return nil
	}
	out := make(url.Values, len(f))
	for k, v := range f {
		out[k] = append([]string(nil), v...)
	}
	return out
}
