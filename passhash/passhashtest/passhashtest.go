// Package passhashtest holds what tests of argon2 checkers share: hashes
// cheap enough for table tests and a derivation function that counts.
package passhashtest

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// Cheap builds a valid argon2id PHC string with minimal cost parameters, so
// table tests exercise parsing and comparison without paying 64 MiB per case.
func Cheap(t testing.TB, secret string) string {
	t.Helper()
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(secret), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// CountingDerive wraps argon2.IDKey, counting calls and recording the
// parameters of the last one. Pass its Derive to passhash.NewLimiter.
type CountingDerive struct {
	mu    sync.Mutex
	calls int
	last  [4]uint32 // t, m, p, keyLen
}

func (c *CountingDerive) Derive(pw, salt []byte, t, m uint32, p uint8, keyLen uint32) []byte {
	c.mu.Lock()
	c.calls++
	c.last = [4]uint32{t, m, uint32(p), keyLen}
	c.mu.Unlock()
	return argon2.IDKey(pw, salt, t, m, p, keyLen)
}

// Count is the number of derivations so far.
func (c *CountingDerive) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// Last returns the (t, m, p, keyLen) of the latest derivation.
func (c *CountingDerive) Last() [4]uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
