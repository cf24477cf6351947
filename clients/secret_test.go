package clients

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/passhash/passhashtest"
)

// fakeClock is a settable time source for cache TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testHasher returns a hasher whose argon2 runs are counted and whose clock
// only moves when told.
func testHasher() (*SecretHasher, *passhashtest.CountingDerive, *fakeClock) {
	c := &passhashtest.CountingDerive{}
	h := NewSecretHasher(passhash.NewLimiter(0, c.Derive))
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	h.now = clk.now
	return h, c, clk
}

func TestGenerateClientSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := GenerateClientSecret()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(raw) != 32 {
			t.Fatalf("GenerateClientSecret = %q: want 32 bytes of unpadded base64url (%d bytes, %v)", s, len(raw), err)
		}
		if seen[s] {
			t.Fatalf("duplicate secret %q", s)
		}
		seen[s] = true
	}
}

func TestHashClientSecretFormat(t *testing.T) {
	s, _ := GenerateClientSecret()
	h, err := HashClientSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Split(h, "$")
	if len(fields) != 4 || fields[1] != "hmac-sha256" {
		t.Fatalf("HashClientSecret = %q, want $hmac-sha256$<salt>$<mac>", h)
	}
	salt, mac, err := parseKeyedSHA256(h)
	if err != nil || len(salt) != 16 || len(mac) != 32 {
		t.Fatalf("own output: salt %d bytes, mac %d bytes, err %v", len(salt), len(mac), err)
	}
	if again, _ := HashClientSecret(s); again == h {
		t.Error("two hashes of one secret are equal; salt is not random")
	}
}

func TestHashClientSecretRefusesShortSecrets(t *testing.T) {
	for _, s := range []string{"", "hunter2", strings.Repeat("x", 31)} {
		if _, err := HashClientSecret(s); err == nil {
			t.Errorf("HashClientSecret(%q) succeeded; short secrets belong on argon2", s)
		}
	}
	if _, err := HashClientSecret(strings.Repeat("x", 32)); err != nil {
		t.Errorf("32 characters refused: %v", err)
	}
	if _, err := HashChosenSecret(""); err == nil {
		t.Error("HashChosenSecret(\"\") succeeded")
	}
}

func TestCompareFormats(t *testing.T) {
	generated, _ := GenerateClientSecret()
	keyed, err := HashClientSecret(generated)
	if err != nil {
		t.Fatal(err)
	}
	const chosen = "my client's chosen secret"
	// One real default-parameter hash, the rest cheap to keep the suite fast.
	realArgon, err := HashChosenSecret(chosen)
	if err != nil {
		t.Fatal(err)
	}
	const plain = "dev-secret"

	for _, f := range []struct {
		name, hash, secret string
	}{
		{"keyed sha256", keyed, generated},
		{"argon2id", passhashtest.Cheap(t, chosen), chosen},
		{"argon2id default params", realArgon, chosen},
		{"plaintext", plain, plain},
	} {
		last := f.secret[len(f.secret)-1]
		for _, tc := range []struct {
			name   string
			secret string
			want   error
		}{
			{"right", f.secret, nil},
			{"wrong", "something else entirely", ErrSecretMismatch},
			{"near miss last byte", f.secret[:len(f.secret)-1] + string(last^1), ErrSecretMismatch},
			{"near miss first byte", string(f.secret[0]^1) + f.secret[1:], ErrSecretMismatch},
			{"prefix", f.secret[:len(f.secret)-1], ErrSecretMismatch},
			{"extension", f.secret + "x", ErrSecretMismatch},
			{"empty", "", ErrSecretMismatch},
			{"the hash itself", f.hash, ErrSecretMismatch},
		} {
			if f.name == "plaintext" && tc.name == "the hash itself" {
				continue // for plaintext the stored value is the secret
			}
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				// A fresh hasher per case, so an earlier success cannot
				// answer from the cache.
				err := NewSecretHasher(passhash.NewLimiter(0, nil)).Compare(t.Context(), []byte(f.hash), []byte(tc.secret))
				if tc.want == nil && err != nil {
					t.Fatalf("Compare = %v, want match", err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Fatalf("Compare = %v, want %v", err, tc.want)
				}
			})
		}
	}
}

func TestCompareEmptyHash(t *testing.T) {
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	for _, secret := range []string{"", "anything"} {
		if err := h.Compare(t.Context(), nil, []byte(secret)); !errors.Is(err, ErrSecretMismatch) {
			t.Errorf("Compare(empty hash, %q) = %v, want ErrSecretMismatch", secret, err)
		}
	}
}

func TestCompareMalformed(t *testing.T) {
	const salt = "MDEyMzQ1Njc4OWFiY2RlZg"                     // 16 bytes
	const mac = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 32 bytes
	cases := map[string]string{
		"only dollar":               "$",
		"unknown algorithm":         "$sha256$" + salt + "$" + mac,
		"bcrypt":                    "$2b$10$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui",
		"argon2i":                   "$argon2i$v=19$m=65536,t=1,p=2$" + salt + "$" + mac,
		"hmac prefix only":          "$hmac-sha256$",
		"hmac missing mac":          "$hmac-sha256$" + salt,
		"hmac missing salt":         "$hmac-sha256$$" + mac,
		"hmac extra field":          "$hmac-sha256$" + salt + "$" + mac + "$",
		"hmac bad base64 salt":      "$hmac-sha256$!!!!$" + mac,
		"hmac bad base64 mac":       "$hmac-sha256$" + salt + "$" + mac[:42] + "*",
		"hmac padded mac":           "$hmac-sha256$" + salt + "$" + mac + "=",
		"hmac url alphabet":         "$hmac-sha256$" + salt + "$" + mac[:41] + "_A",
		"hmac short salt":           "$hmac-sha256$c2FsdA$" + mac,
		"hmac short mac":            "$hmac-sha256$" + salt + "$" + mac[:40],
		"hmac long mac":             "$hmac-sha256$" + salt + "$" + mac + "AAAA",
		"argon2 wrong param count":  "$argon2id$v=19$m=65536,t=1$" + salt + "$" + mac,
		"argon2 absurd memory":      "$argon2id$v=19$m=4194304,t=1,p=2$" + salt + "$" + mac,
		"argon2 zero lanes":         "$argon2id$v=19$m=65536,t=1,p=0$" + salt + "$" + mac,
		"argon2 zero passes":        "$argon2id$v=19$m=65536,t=0,p=1$" + salt + "$" + mac,
		"argon2 bad base64":         "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$%%%%",
		"argon2 missing version":    "$argon2id$m=65536,t=1,p=2$" + salt + "$" + mac,
		"argon2 trailing newline":   "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + mac + "\n",
		"hmac with argon2 contents": "$hmac-sha256$v=19$m=65536,t=1,p=2$" + salt + "$" + mac,
	}
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	for name, hash := range cases {
		t.Run(name, func(t *testing.T) {
			err := h.Compare(t.Context(), []byte(hash), []byte("secret"))
			if !errors.Is(err, passhash.ErrMalformed) || errors.Is(err, ErrSecretMismatch) {
				t.Fatalf("Compare(%q) = %v, want passhash.ErrMalformed", hash, err)
			}
		})
	}
}

// Every prefix of a valid hash must fail (a prefix of a plaintext secret is
// simply a different plaintext secret, so it is left out) and none may panic.
func TestCompareTruncated(t *testing.T) {
	generated, _ := GenerateClientSecret()
	keyed, _ := HashClientSecret(generated)
	argon := passhashtest.Cheap(t, "chosen")
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	for _, f := range []struct{ hash, secret string }{{keyed, generated}, {argon, "chosen"}} {
		if err := h.Compare(t.Context(), []byte(f.hash), []byte(f.secret)); err != nil {
			t.Fatalf("untruncated %q: %v", f.hash, err)
		}
		for i := 1; i < len(f.hash); i++ {
			if err := h.Compare(t.Context(), []byte(f.hash[:i]), []byte(f.secret)); err == nil {
				t.Errorf("Compare(%q) matched", f.hash[:i])
			}
		}
	}
}

func TestArgon2CacheHitsAfterSuccess(t *testing.T) {
	h, c, _ := testHasher()
	const secret = "chosen secret"
	hash := []byte(passhashtest.Cheap(t, secret))
	ctx := t.Context()

	for i := range 5 {
		if err := h.Compare(ctx, hash, []byte(secret)); err != nil {
			t.Fatalf("compare %d: %v", i, err)
		}
	}
	if c.Count() != 1 {
		t.Errorf("argon2 ran %d times for 5 successful compares, want 1", c.Count())
	}

	// A wrong secret for a cached hash still pays argon2 and still fails.
	before := c.Count()
	if err := h.Compare(ctx, hash, []byte("chosen secreT")); !errors.Is(err, ErrSecretMismatch) {
		t.Fatalf("wrong secret after caching: %v", err)
	}
	if c.Count() != before+1 {
		t.Error("wrong secret did not run argon2")
	}

	// Another hash of the same secret (a rotated registration) is a miss.
	other, err := HashChosenSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	before = c.Count()
	if err := h.Compare(ctx, []byte(other), []byte(secret)); err != nil {
		t.Fatal(err)
	}
	if c.Count() != before+1 {
		t.Error("a different hash was answered from the cache")
	}
}

func TestArgon2CacheNeverCachesFailure(t *testing.T) {
	h, c, _ := testHasher()
	hash := []byte(passhashtest.Cheap(t, "right"))
	for range 3 {
		if err := h.Compare(t.Context(), hash, []byte("wrong")); !errors.Is(err, ErrSecretMismatch) {
			t.Fatalf("Compare(wrong) = %v", err)
		}
	}
	if c.Count() != 3 || h.cache.len() != 0 {
		t.Errorf("after 3 failures: %d argon2 runs, %d cache entries; want 3, 0", c.Count(), h.cache.len())
	}
	if err := h.Compare(t.Context(), hash, []byte("right")); err != nil {
		t.Fatal(err)
	}
	if c.Count() != 4 || h.cache.len() != 1 {
		t.Errorf("after success: %d argon2 runs, %d cache entries; want 4, 1", c.Count(), h.cache.len())
	}
}

func TestArgon2CacheExpires(t *testing.T) {
	h, c, clk := testHasher()
	hash := []byte(passhashtest.Cheap(t, "s"))
	compare := func() {
		t.Helper()
		if err := h.Compare(t.Context(), hash, []byte("s")); err != nil {
			t.Fatal(err)
		}
	}
	compare()
	clk.advance(defaultArgon2CacheTTL - time.Second)
	compare()
	if c.Count() != 1 {
		t.Fatalf("argon2 ran %d times within the TTL, want 1", c.Count())
	}
	clk.advance(time.Second)
	compare()
	if c.Count() != 2 {
		t.Fatalf("argon2 ran %d times after the TTL, want 2", c.Count())
	}
}

func TestArgon2CacheBounded(t *testing.T) {
	h, c, _ := testHasher()
	h.cache = newVerifiedCache(4, time.Hour)
	secrets := []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"}
	hashes := make([][]byte, len(secrets))
	for i, s := range secrets {
		hashes[i] = []byte(passhashtest.Cheap(t, s))
		if err := h.Compare(t.Context(), hashes[i], []byte(s)); err != nil {
			t.Fatal(err)
		}
		if n := h.cache.len(); n > 4 {
			t.Fatalf("cache holds %d entries, bound is 4", n)
		}
	}
	// The newest four are cached, the oldest was evicted.
	before := c.Count()
	for i := 6; i < 10; i++ {
		_ = h.Compare(t.Context(), hashes[i], []byte(secrets[i]))
	}
	if c.Count() != before {
		t.Errorf("recent entries missed the cache (%d argon2 runs)", c.Count()-before)
	}
	_ = h.Compare(t.Context(), hashes[0], []byte(secrets[0]))
	if c.Count() != before+1 {
		t.Error("oldest entry was not evicted")
	}
	if len(h.cache.byKey) != h.cache.order.Len() {
		t.Errorf("index (%d) and list (%d) disagree", len(h.cache.byKey), h.cache.order.Len())
	}
}

func TestVerifiedCacheDropsExpiredBeforeOldest(t *testing.T) {
	c := newVerifiedCache(3, time.Minute)
	t0 := time.Unix(0, 0)
	key := func(b byte) (k [32]byte) { k[0] = b; return k }
	c.add(key(1), t0)
	c.add(key(2), t0.Add(30*time.Second))
	c.add(key(3), t0.Add(45*time.Second))
	// At t0+70s key 1 has expired: adding key 4 must drop it and keep 2, 3.
	now := t0.Add(70 * time.Second)
	c.add(key(4), now)
	for b, want := range map[byte]bool{1: false, 2: true, 3: true, 4: true} {
		if got := c.contains(key(b), now); got != want {
			t.Errorf("contains(%d) = %v, want %v", b, got, want)
		}
	}
	if c.len() != 3 {
		t.Errorf("len = %d, want 3", c.len())
	}
}

func TestCompareHonoursContextWhileWaiting(t *testing.T) {
	// One slot, held by a check whose derivation waits for the test.
	entered, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	h := NewSecretHasher(passhash.NewLimiter(1, func(pw, salt []byte, t, m uint32, p uint8, keyLen uint32) []byte {
		if runs.Add(1) == 1 {
			close(entered)
			<-release
		}
		return argon2.IDKey(pw, salt, t, m, p, keyLen)
	}))
	held := make(chan error, 1)
	go func() { held <- h.Compare(context.Background(), []byte(passhashtest.Cheap(t, "held")), []byte("held")) }()
	<-entered
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := h.Compare(ctx, []byte(passhashtest.Cheap(t, "s")), []byte("s"))
	close(release)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrSecretMismatch) {
		t.Fatalf("Compare with cancelled context = %v, want context.Canceled", err)
	}
	if err := <-held; err != nil {
		t.Fatalf("the check holding the slot: %v", err)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("argon2 ran %d times; the cancelled check ran without a slot", n)
	}
}

func TestCompareConcurrent(t *testing.T) {
	h, c, _ := testHasher()
	hash := []byte(passhashtest.Cheap(t, "s"))
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			secret := "s"
			if i%4 == 0 {
				secret = "wrong"
			}
			err := h.Compare(context.Background(), hash, []byte(secret))
			if (secret == "s") != (err == nil) {
				t.Errorf("Compare(%q) = %v", secret, err)
			}
		})
	}
	wg.Wait()
	if c.Count() < 8 {
		t.Errorf("only %d argon2 runs; each of the 8 failures needs one", c.Count())
	}
}

func TestSecretHasherHash(t *testing.T) {
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	secret, _ := GenerateClientSecret()
	hash, err := h.Hash(t.Context(), []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(hash), keyedSHA256Prefix) {
		t.Fatalf("Hash = %q, want the keyed SHA-256 form", hash)
	}
	if err := h.Compare(t.Context(), hash, []byte(secret)); err != nil {
		t.Fatalf("Compare(Hash(s), s) = %v", err)
	}
}

func TestZeroSecretHasherErrors(t *testing.T) {
	var h SecretHasher
	if err := h.Compare(t.Context(), []byte("x"), []byte("x")); err == nil {
		t.Fatal("zero SecretHasher matched")
	}
	var nilHasher *SecretHasher
	if err := nilHasher.Compare(t.Context(), []byte("x"), []byte("x")); err == nil {
		t.Fatal("nil SecretHasher matched")
	}
}

func BenchmarkCompareKeyedSHA256(b *testing.B) {
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	secret, _ := GenerateClientSecret()
	hash, _ := HashClientSecret(secret)
	hb, sb := []byte(hash), []byte(secret)
	ctx := context.Background()
	for b.Loop() {
		if err := h.Compare(ctx, hb, sb); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareArgon2Cached(b *testing.B) {
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	const secret = "a chosen client secret"
	hash, _ := HashChosenSecret(secret)
	hb, sb := []byte(hash), []byte(secret)
	ctx := context.Background()
	if err := h.Compare(ctx, hb, sb); err != nil { // fill the cache
		b.Fatal(err)
	}
	for b.Loop() {
		if err := h.Compare(ctx, hb, sb); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompareArgon2Uncached(b *testing.B) {
	h := NewSecretHasher(passhash.NewLimiter(0, nil))
	const secret = "a chosen client secret"
	hash, _ := HashChosenSecret(secret)
	hb, sb := []byte(hash), []byte(secret)
	ctx := context.Background()
	for b.Loop() {
		// A fresh cache costs nanoseconds next to argon2.
		h.cache = newVerifiedCache(defaultArgon2CacheSize, defaultArgon2CacheTTL)
		if err := h.Compare(ctx, hb, sb); err != nil {
			b.Fatal(err)
		}
	}
}
