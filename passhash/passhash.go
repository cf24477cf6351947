// Package passhash owns argon2id for every slow secret check in Postern: the
// PHC string format (parsed strictly, parameters bounded), hashing with the
// house parameters, and the one Limiter that bounds how many derivations run
// at once in the process. User passwords (identity) and human-chosen client
// secrets (clients) both go through it, so the memory bound holds for both
// together. It knows nothing of users, clients or HTTP.
package passhash

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/crypto/argon2"
)

// Parameters of the argon2id hashes this package produces, for user passwords
// and human-chosen client secrets alike, as in the design doc's example.
// Memory rather than passes is what slows GPU/ASIC guessing; RFC 9106's second
// recommended option uses the same 64 MiB (with t=3, p=4).
const (
	argonMemoryKiB = 64 * 1024
	argonTime      = 1
	argonThreads   = 2
	argonSaltLen   = 16
	argonKeyLen    = 32
)

// Bounds on parameters we accept from a stored hash. Hashes come from config
// files and client registrations, so a hostile or careless value such as
// m=4194304 (4 GiB) must not turn every login into a memory bomb. The lower
// bounds are what RFC 9106 and the PHC format require for a valid hash.
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 10
	maxArgonThreads   = 16
	minArgonSaltLen   = 8
	maxArgonSaltLen   = 64
	minArgonKeyLen    = 16
	maxArgonKeyLen    = 64
)

// ErrMalformed is wrapped by every error about a stored hash that cannot
// be parsed or carries unacceptable parameters. It signals a configuration
// problem, not a wrong password.
var ErrMalformed = errors.New("malformed hash")

// DeriveFunc has the signature of argon2.IDKey. A Limiter holds one so that
// tests can count derivations without timing them.
type DeriveFunc func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte

// Hash is a parsed `$argon2id$v=19$m=..,t=..,p=..$salt$hash` string.
// Check a secret against it with Limiter.Match.
type Hash struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func (h Hash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.memory, h.time, h.threads,
		base64.RawStdEncoding.EncodeToString(h.salt),
		base64.RawStdEncoding.EncodeToString(h.key))
}

// matches derives the key for secret and compares it in constant time.
func (h Hash) matches(derive DeriveFunc, secret []byte) bool {
	got := derive(secret, h.salt, h.time, h.memory, h.threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// New hashes secret with a fresh salt and the house parameters.
func New(secret []byte) (Hash, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return Hash{}, fmt.Errorf("reading random salt: %w", err)
	}
	h := Hash{memory: argonMemoryKiB, time: argonTime, threads: argonThreads, salt: salt}
	h.key = argon2.IDKey(secret, salt, h.time, h.memory, h.threads, argonKeyLen)
	return h, nil
}

// strictB64 rejects padding and non-zero trailing bits, so each hash has
// exactly one accepted spelling.
var strictB64 = base64.RawStdEncoding.Strict()

// Parse reads a PHC argon2id string strictly: exactly the field
// order argon2's reference implementation emits, version 19 only, decimal
// parameters without sign or leading zeros, unpadded standard base64. Error
// messages name the offending field but never echo salt or hash bytes.
func Parse(s string) (Hash, error) {
	bad := func(format string, args ...any) (Hash, error) {
		return Hash{}, fmt.Errorf("%w: argon2id: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return bad("empty")
	}
	if strings.TrimSpace(s) != s {
		return bad("leading or trailing whitespace (a stray newline in the config file?)")
	}
	fields := strings.Split(s, "$")
	if fields[0] != "" {
		return bad("must start with '$'")
	}
	if len(fields) < 2 || fields[1] != "argon2id" {
		alg := ""
		if len(fields) >= 2 {
			alg = fields[1]
		}
		if isPlainIdentifier(alg) {
			return bad("algorithm %q is not supported, want argon2id", alg)
		}
		return bad("algorithm is not argon2id")
	}
	if len(fields) != 6 {
		return bad("want 5 '$'-separated fields ($argon2id$v=19$m=..,t=..,p=..$salt$hash), got %d", len(fields)-1)
	}
	if v, ok := strings.CutPrefix(fields[2], "v="); !ok {
		return bad("second field must be the version v=%d", argon2.Version)
	} else if v != strconv.Itoa(argon2.Version) {
		if isPlainIdentifier(v) {
			return bad("version v=%s is not supported, want v=%d", v, argon2.Version)
		}
		return bad("version is not v=%d", argon2.Version)
	}

	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return bad("want three parameters m=..,t=..,p=.. in that order, got %d", len(params))
	}
	var vals [3]uint32
	for i, name := range []string{"m", "t", "p"} {
		raw, ok := strings.CutPrefix(params[i], name+"=")
		if !ok {
			return bad("parameter %d must be %s=<n> (order is m, t, p)", i+1, name)
		}
		n, err := parsePHCDecimal(raw)
		if err != nil {
			return bad("parameter %s: %v", name, err)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case t == 0:
		return bad("t=0: need at least one pass")
	case t > maxArgonTime:
		return bad("t=%d exceeds the limit of %d passes", t, maxArgonTime)
	case p == 0:
		return bad("p=0: need at least one lane")
	case p > maxArgonThreads:
		return bad("p=%d exceeds the limit of %d lanes", p, maxArgonThreads)
	case m > maxArgonMemoryKiB:
		return bad("m=%d KiB exceeds the limit of %d KiB (1 GiB)", m, maxArgonMemoryKiB)
	case m < 8*p:
		return bad("m=%d KiB is below the minimum of 8*p = %d KiB", m, 8*p)
	}

	salt, err := strictB64.DecodeString(fields[4])
	if err != nil {
		return bad("salt is not unpadded standard base64")
	}
	if len(salt) < minArgonSaltLen || len(salt) > maxArgonSaltLen {
		return bad("salt is %d bytes, want %d to %d", len(salt), minArgonSaltLen, maxArgonSaltLen)
	}
	key, err := strictB64.DecodeString(fields[5])
	if err != nil {
		return bad("hash is not unpadded standard base64")
	}
	if len(key) < minArgonKeyLen || len(key) > maxArgonKeyLen {
		return bad("hash is %d bytes, want %d to %d", len(key), minArgonKeyLen, maxArgonKeyLen)
	}
	return Hash{memory: m, time: t, threads: uint8(p), salt: salt, key: key}, nil
}

// parsePHCDecimal accepts the PHC decimal form: digits only, no sign, no leading
// zero, fitting in 32 bits.
func parsePHCDecimal(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("empty value")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal number")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("leading zero")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return uint32(n), nil
}

// isPlainIdentifier reports whether s is short and plain enough to quote in an
// error message. Anything else might be a pasted secret and is not echoed.
func isPlainIdentifier(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// HashPassword returns an argon2id PHC string for pw with a fresh 16-byte
// salt. An empty password is refused: it is never a valid credential and
// hashing one would only hide a config mistake.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("hash password: empty password")
	}
	h, err := New([]byte(pw))
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h.String(), nil
}

// VerifyPassword reports whether pw matches the argon2id PHC string. A
// malformed or out-of-limits hash is an error (wrapping ErrMalformed),
// distinct from a mismatch. It runs outside any Limiter and does not hide
// whether a user exists: it is for tools and tests, not for serving logins.
func VerifyPassword(phc, pw string) (bool, error) {
	h, err := Parse(phc)
	if err != nil {
		return false, fmt.Errorf("verify password: %w", err)
	}
	if pw == "" {
		return false, nil
	}
	return h.matches(argon2.IDKey, []byte(pw)), nil
}

// ValidatePasswordHash checks a stored password hash at config load time so
// that a typo fails startup with a precise message rather than every login
// for that user failing silently later.
func ValidatePasswordHash(phc string) error {
	if _, err := Parse(phc); err != nil {
		return fmt.Errorf("password hash: %w", err)
	}
	return nil
}

// Prefix starts every PHC string this package reads or writes.
const Prefix = "$argon2id$"

// Dummy returns a hash with the house parameters, a random salt and a random
// key that no secret is known to produce. Checking an unknown user against it
// costs what checking a real one costs, so timing does not tell them apart.
func Dummy() Hash {
	salt := make([]byte, argonSaltLen)
	key := make([]byte, argonKeyLen)
	// crypto/rand.Read cannot fail since Go 1.24 (it crashes the program instead).
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return Hash{memory: argonMemoryKiB, time: argonTime, threads: argonThreads, salt: salt, key: key}
}

// Limiter bounds concurrent argon2 derivations. Each holds m KiB (64 MiB with
// the house parameters) while it runs, so without a bound a burst of
// wrong-password or wrong-secret requests could exhaust memory; more
// derivations than cores would not finish any sooner anyway. A process keeps
// one Limiter and hands it to every checker, so the bound is the process's,
// not each checker's. Create with NewLimiter; safe for concurrent use.
type Limiter struct {
	slots  chan struct{}
	derive DeriveFunc
	tracer trace.Tracer // nil: no spans
}

// NewLimiter allows slots derivations at once (GOMAXPROCS when slots <= 0).
// derive is argon2.IDKey when nil; tests pass a counting or blocking one.
func NewLimiter(slots int, derive DeriveFunc) *Limiter {
	if slots <= 0 {
		slots = runtime.GOMAXPROCS(0)
	}
	if derive == nil {
		derive = argon2.IDKey
	}
	return &Limiter{slots: make(chan struct{}, slots), derive: derive}
}

// WithTracing returns a limiter that shares l's slots (the bound stays the
// process's) and records each check as a span of tp. A nil tp returns l.
func (l *Limiter) WithTracing(tp trace.TracerProvider) *Limiter {
	if tp == nil {
		return l
	}
	return &Limiter{slots: l.slots, derive: l.derive, tracer: tp.Tracer("github.com/postern-auth/postern/passhash")}
}

// Match reports whether secret is the one behind h, waiting for a free slot
// first. An error means ctx ended while waiting; the check did not run.
func (l *Limiter) Match(ctx context.Context, h Hash, secret []byte) (bool, error) {
	if l.tracer != nil {
		// The span covers the wait for a slot too: under a login burst
		// that wait is where the time goes.
		var span trace.Span
		_, span = l.tracer.Start(ctx, "passhash.argon2id", trace.WithAttributes(attribute.Int("argon2.memory_kib", int(h.memory))))
		defer span.End()
	}
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-l.slots }()
	return h.matches(l.derive, secret), nil
}
