package clients

import (
	"bytes"
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/passhash"
)

// Client secrets come in two kinds. Generated secrets carry 256 bits of
// entropy, so brute force is hopeless whatever the hash; a slow hash would buy
// nothing but latency on every token request and a CPU/memory DoS lever. They
// get a salted HMAC-SHA256. Secrets a human chose may be guessable and get
// argon2id like passwords, with successful checks cached so a busy client
// does not pay 64 MiB and tens of milliseconds per token request.

const (
	clientSecretBytes = 32

	// minFastHashSecretLen keeps human-chosen secrets off the fast hash: a
	// generated secret is 43 characters, 32 hex characters is 128 bits.
	minFastHashSecretLen = 32

	keyedSHA256Prefix = "$hmac-sha256$"
	keyedSaltLen      = 16
	maxKeyedSaltLen   = 64

	defaultArgon2CacheSize = 1024
	defaultArgon2CacheTTL  = 10 * time.Minute
)

// strictB64 rejects padding and non-zero trailing bits, so each hash has
// exactly one accepted spelling.
var strictB64 = base64.RawStdEncoding.Strict()

// ErrSecretMismatch is returned (possibly wrapped) when a client secret does
// not match its stored hash. Any other error from SecretHasher.Compare means
// the stored hash itself is unusable.
var ErrSecretMismatch = errors.New("clients: client secret does not match")

// GenerateClientSecret returns 256 random bits, base64url without padding, fit
// to be stored with HashClientSecret.
func GenerateClientSecret() (secret string, err error) {
	b := make([]byte, clientSecretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashClientSecret hashes a generated (high-entropy) secret as
// `$hmac-sha256$<salt>$<mac>`: HMAC-SHA256 keyed with a random 16-byte salt,
// both in unpadded standard base64. The salt keeps equal secrets from having
// equal hashes. Secrets shorter than 32 characters are refused because they
// are likely human-chosen; use HashChosenSecret for those.
func HashClientSecret(secret string) (string, error) {
	if len(secret) < minFastHashSecretLen {
		return "", fmt.Errorf("hash client secret: %d characters is too short for the fast hash, "+
			"which is only safe for generated secrets; use HashChosenSecret", len(secret))
	}
	salt := make([]byte, keyedSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash client secret: reading random salt: %w", err)
	}
	return keyedSHA256Prefix + strictB64.EncodeToString(salt) + "$" +
		strictB64.EncodeToString(keyedSHA256(salt, []byte(secret))), nil
}

// HashChosenSecret hashes a human-chosen client secret with argon2id, using
// the same parameters as HashPassword.
func HashChosenSecret(secret string) (string, error) {
	if secret == "" {
		return "", errors.New("hash chosen client secret: empty secret")
	}
	h, err := passhash.New([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("hash chosen client secret: %w", err)
	}
	return h.String(), nil
}

func keyedSHA256(salt, secret []byte) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write(secret)
	return m.Sum(nil)
}

// parseKeyedSHA256 parses `$hmac-sha256$<salt>$<mac>`.
func parseKeyedSHA256(s string) (salt, mac []byte, err error) {
	bad := func(msg string) ([]byte, []byte, error) {
		return nil, nil, fmt.Errorf("%w: hmac-sha256: %s", passhash.ErrMalformed, msg)
	}
	fields := strings.Split(s, "$")
	if len(fields) != 4 || fields[0] != "" || fields[1] != "hmac-sha256" {
		return bad("want $hmac-sha256$<salt>$<mac>")
	}
	if salt, err = strictB64.DecodeString(fields[2]); err != nil {
		return bad("salt is not unpadded standard base64")
	}
	if len(salt) < keyedSaltLen || len(salt) > maxKeyedSaltLen {
		return bad(fmt.Sprintf("salt is %d bytes, want %d to %d", len(salt), keyedSaltLen, maxKeyedSaltLen))
	}
	if mac, err = strictB64.DecodeString(fields[3]); err != nil {
		return bad("mac is not unpadded standard base64")
	}
	if len(mac) != sha256.Size {
		return bad(fmt.Sprintf("mac is %d bytes, want %d", len(mac), sha256.Size))
	}
	return salt, mac, nil
}

// SecretHasher is the fosite.Hasher for client secrets. Compare accepts three
// stored forms, told apart by prefix:
//
//   - `$hmac-sha256$...` from HashClientSecret: one HMAC, about a microsecond.
//   - `$argon2id$...` from HashChosenSecret: argon2id; a successful check is
//     cached (bounded, with a TTL) so repeat requests skip argon2.
//   - no `$` prefix: a plaintext development secret from config, held as-is
//     in memory and compared in constant time. The caller should warn.
//
// Anything else beginning with `$` is an error wrapping passhash.ErrMalformed.
// Hash produces the HMAC-SHA256 form. Create with NewSecretHasher; safe for
// concurrent use.
//
// The cache never holds a secret. Its keys are HMAC-SHA256 under a random
// per-process key of (stored hash, presented secret), so entries are
// meaningless to another process. Someone able to read this process's memory
// could use key and entries to test guesses at HMAC speed rather than argon2
// speed, but such an attacker can also read secrets off incoming requests.
type SecretHasher struct {
	cacheKey []byte
	cache    *verifiedCache
	limiter  *passhash.Limiter // the process's one bound on argon2 checks
	now      func() time.Time  // time.Now; tests move the clock
}

var _ fosite.Hasher = (*SecretHasher)(nil)

// NewSecretHasher returns a hasher with its own cache key and an empty cache
// of up to 1024 verified argon2id secrets, each remembered for 10 minutes.
// Its argon2 checks count against limiter, shared with the password checks.
func NewSecretHasher(limiter *passhash.Limiter) *SecretHasher {
	key := make([]byte, sha256.Size)
	// crypto/rand.Read cannot fail since Go 1.24 (it crashes the program instead).
	_, _ = rand.Read(key)
	return &SecretHasher{
		cacheKey: key,
		cache:    newVerifiedCache(defaultArgon2CacheSize, defaultArgon2CacheTTL),
		limiter:  limiter,
		now:      time.Now,
	}
}

var errUninitialisedHasher = errors.New("clients: SecretHasher not created with NewSecretHasher")

// Compare returns nil when data is the secret behind hash, an error wrapping
// ErrSecretMismatch when it is not, and any other error when hash is unusable
// or ctx ended while waiting for an argon2 slot. An empty hash or an empty
// secret never matches.
func (h *SecretHasher) Compare(ctx context.Context, hash, data []byte) error {
	if h == nil || h.cache == nil || h.limiter == nil {
		return errUninitialisedHasher
	}
	switch {
	case len(hash) == 0:
		return ErrSecretMismatch
	case hash[0] != '$':
		return comparePlain(hash, data)
	case bytes.HasPrefix(hash, []byte(keyedSHA256Prefix)):
		return compareKeyedSHA256(hash, data)
	case bytes.HasPrefix(hash, []byte(passhash.Prefix)):
		return h.compareArgon2id(ctx, hash, data)
	default:
		return fmt.Errorf("compare client secret: %w: unknown algorithm", passhash.ErrMalformed)
	}
}

// comparePlain compares digests rather than the values themselves so that
// the time taken does not depend on the configured secret's length.
func comparePlain(want, got []byte) error {
	if len(got) == 0 {
		return ErrSecretMismatch
	}
	w, g := sha256.Sum256(want), sha256.Sum256(got)
	if subtle.ConstantTimeCompare(w[:], g[:]) != 1 {
		return ErrSecretMismatch
	}
	return nil
}

func compareKeyedSHA256(hash, data []byte) error {
	salt, mac, err := parseKeyedSHA256(string(hash))
	if err != nil {
		return fmt.Errorf("compare client secret: %w", err)
	}
	if len(data) == 0 || !hmac.Equal(keyedSHA256(salt, data), mac) {
		return ErrSecretMismatch
	}
	return nil
}

func (h *SecretHasher) compareArgon2id(ctx context.Context, hash, data []byte) error {
	stored, err := passhash.Parse(string(hash))
	if err != nil {
		return fmt.Errorf("compare client secret: %w", err)
	}
	if len(data) == 0 {
		return ErrSecretMismatch
	}
	key := h.cacheKeyFor(hash, data)
	if h.cache.contains(key, h.now()) {
		return nil
	}
	ok, err := h.limiter.Match(ctx, stored, data)
	if err != nil {
		return fmt.Errorf("compare client secret: waiting for an argon2 slot: %w", err)
	}
	if !ok {
		// Failures are not cached: a cached "no" would let a wrong guess
		// be retried cheaply, and it would never be worth anything.
		return ErrSecretMismatch
	}
	h.cache.add(key, h.now())
	return nil
}

// cacheKeyFor binds the entry to both the stored hash and the presented
// secret, so rotating a client's secret (a new hash) invalidates it. The
// length prefix keeps (hash, secret) pairs from colliding by shifting bytes.
func (h *SecretHasher) cacheKeyFor(hash, data []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, h.cacheKey)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(hash)))
	m.Write(n[:])
	m.Write(hash)
	m.Write(data)
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// Hash returns the HMAC-SHA256 form of data; see HashClientSecret.
func (h *SecretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	s, err := HashClientSecret(string(data))
	if err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// verifiedCache remembers (hash, secret) pairs that passed an argon2id check.
// It holds at most max entries, each for ttl after it was added. As the TTL
// is fixed, insertion order is expiry order: the list's back is both the
// oldest entry and the first to expire, which makes eviction O(1).
type verifiedCache struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	byKey map[[sha256.Size]byte]*list.Element
	order *list.List // of *verifiedEntry, newest at the front
}

type verifiedEntry struct {
	key     [sha256.Size]byte
	expires time.Time
}

func newVerifiedCache(maxEntries int, ttl time.Duration) *verifiedCache {
	return &verifiedCache{
		max:   max(1, maxEntries),
		ttl:   ttl,
		byKey: make(map[[sha256.Size]byte]*list.Element),
		order: list.New(),
	}
}

func (c *verifiedCache) contains(key [sha256.Size]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return false
	}
	if !now.Before(el.Value.(*verifiedEntry).expires) {
		c.remove(el)
		return false
	}
	return true
}

func (c *verifiedCache) add(key [sha256.Size]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		el.Value.(*verifiedEntry).expires = now.Add(c.ttl)
		c.order.MoveToFront(el)
		return
	}
	// Drop expired entries, then the oldest if still full.
	for back := c.order.Back(); back != nil; back = c.order.Back() {
		if c.order.Len() < c.max && now.Before(back.Value.(*verifiedEntry).expires) {
			break
		}
		c.remove(back)
	}
	c.byKey[key] = c.order.PushFront(&verifiedEntry{key: key, expires: now.Add(c.ttl)})
}

func (c *verifiedCache) remove(el *list.Element) {
	delete(c.byKey, el.Value.(*verifiedEntry).key)
	c.order.Remove(el)
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
