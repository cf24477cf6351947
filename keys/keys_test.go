package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern-auth/postern/storage"
)

var _ Store = storage.Store(nil)

// memStore is the test double for the key part of storage.Store. It copies
// records in and out so tests notice code that mutates what it was given.
type memStore struct {
	mu      sync.Mutex
	keys    []storage.Key
	updates int
	failGet error
}

func (s *memStore) Keys(context.Context) ([]storage.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failGet != nil {
		return nil, s.failGet
	}
	return cloneKeys(s.keys), nil
}

func (s *memStore) UpdateKeys(_ context.Context, fn func([]storage.Key) ([]storage.Key, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := fn(cloneKeys(s.keys))
	if err != nil {
		return err
	}
	s.keys = cloneKeys(next)
	s.updates++
	return nil
}

func (s *memStore) snapshot() []storage.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneKeys(s.keys)
}

func cloneKeys(in []storage.Key) []storage.Key {
	if in == nil {
		return nil
	}
	out := make([]storage.Key, len(in))
	for i, k := range in {
		k.Public = bytes.Clone(k.Public)
		k.Private = bytes.Clone(k.Private)
		out[i] = k
	}
	return out
}

// clock is an injectable Now that tests move forward.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock() *clock {
	c := &clock{}
	c.set(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	return c
}
func (c *clock) now() time.Time          { return *c.t.Load() }
func (c *clock) set(t time.Time)         { c.t.Store(&t) }
func (c *clock) advance(d time.Duration) { c.set(c.now().Add(d)) }

var allowedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// verify checks token against a JWKS document the way a relying party
// would: parse, find the kid, verify.
func verify(t *testing.T, jwksJSON []byte, token string) (payload []byte, hdr jose.Header) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksJSON, &set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	jws, err := jose.ParseSignedCompact(token, allowedAlgs)
	if err != nil {
		t.Fatalf("parse JWS: %v", err)
	}
	hdr = jws.Signatures[0].Protected
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %q", len(keys), hdr.KeyID)
	}
	payload, err = jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify with JWKS key %s: %v", hdr.KeyID, err)
	}
	return payload, hdr
}

func mustOpen(t testing.TB, store Store, secret string, opts Options) *Manager {
	t.Helper()
	m, err := Open(context.Background(), store, mustSecret(t, secret), opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func kids(set jose.JSONWebKeySet) []string {
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestOpenGeneratesOneKeyAndReusesIt(t *testing.T) {
	for _, alg := range []string{"", ES256, RS256} {
		t.Run("alg="+alg, func(t *testing.T) {
			store := &memStore{}
			m1 := mustOpen(t, store, testSecret, Options{Algorithm: alg})

			recs := store.snapshot()
			if len(recs) != 1 {
				t.Fatalf("store holds %d keys, want 1", len(recs))
			}
			rec := recs[0]
			wantAlg := cmpOr(alg, ES256)
			if !rec.Active || rec.Algorithm != wantAlg || rec.ID != m1.Active().ID || rec.CreatedAt.IsZero() || !rec.RetireAt.IsZero() {
				t.Errorf("record = %+v", Info{rec.ID, rec.Algorithm, rec.CreatedAt, rec.RetireAt, rec.Active})
			}
			if a := m1.Active(); a.Algorithm != wantAlg || a.Key == nil {
				t.Errorf("Active() = %+v", a)
			}

			var pub map[string]any
			if err := json.Unmarshal(rec.Public, &pub); err != nil {
				t.Fatal(err)
			}
			if pub["kid"] != rec.ID || pub["alg"] != wantAlg || pub["use"] != "sig" {
				t.Errorf("public JWK = %v", pub)
			}
			if _, ok := pub["d"]; ok {
				t.Error("public JWK holds a private parameter")
			}

			m2 := mustOpen(t, store, testSecret, Options{Algorithm: alg})
			if m2.Active().ID != m1.Active().ID {
				t.Errorf("second Open uses %s, first %s", m2.Active().ID, m1.Active().ID)
			}
			if n := len(store.snapshot()); n != 1 || store.updates != 1 {
				t.Errorf("after second Open: %d keys, %d updates; want 1, 1", n, store.updates)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestOpenConcurrentCreatesOneKey(t *testing.T) {
	store := &memStore{}
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := Open(context.Background(), store, mustSecret(t, testSecret), Options{})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = m.Active().ID
		})
	}
	wg.Wait()
	if recs := store.snapshot(); len(recs) != 1 {
		t.Fatalf("store holds %d keys, want 1", len(recs))
	}
	for i, id := range ids {
		if id != ids[0] {
			t.Errorf("manager %d uses %s, manager 0 uses %s", i, id, ids[0])
		}
	}
}

// The kid must be recomputable from the published JWK alone (RFC 7638).
func TestKeyIDIsThumbprint(t *testing.T) {
	m := mustOpen(t, &memStore{}, testSecret, Options{})
	jwk, ok := m.PublicKey(m.Active().ID)
	if !ok {
		t.Fatal("active key not published")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(tp); got != m.Active().ID {
		t.Errorf("kid %s, thumbprint %s", m.Active().ID, got)
	}
	if strings.ContainsAny(m.Active().ID, "+/=") {
		t.Errorf("kid %q is not URL-safe", m.Active().ID)
	}
}

func TestPrivateKeyEncryptedAtRest(t *testing.T) {
	for _, alg := range []string{ES256, RS256} {
		t.Run(alg, func(t *testing.T) {
			store := &memStore{}
			m := mustOpen(t, store, testSecret, Options{Algorithm: alg})
			stored := store.snapshot()[0].Private

			privJSON, err := m.Active().JWK().MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			var priv map[string]any
			if err := json.Unmarshal(privJSON, &priv); err != nil {
				t.Fatal(err)
			}
			params := []string{"d"}
			if alg == RS256 {
				params = append(params, "p", "q", "dp", "dq", "qi")
			}
			for _, p := range params {
				v, _ := priv[p].(string)
				if v == "" {
					t.Fatalf("private JWK has no %q", p)
				}
				if bytes.Contains(stored, []byte(v)) {
					t.Errorf("stored private key contains the %q parameter in the clear", p)
				}
			}
			var raw []byte
			switch k := m.Active().Key.(type) {
			case *ecdsa.PrivateKey:
				raw, err = k.Bytes()
				if err != nil {
					t.Fatal(err)
				}
			case *rsa.PrivateKey:
				raw = k.D.Bytes()
			}
			if bytes.Contains(stored, raw) {
				t.Error("stored private key contains the raw private scalar")
			}
			if bytes.Contains(stored, []byte(`"kty"`)) {
				t.Error("stored private key looks like plaintext JSON")
			}
		})
	}
}

func TestOpenWrongSecret(t *testing.T) {
	store := &memStore{}
	mustOpen(t, store, testSecret, Options{})

	_, err := Open(context.Background(), store, mustSecret(t, testSecret+"-other"), Options{})
	if !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("err = %v, want ErrWrongSecret", err)
	}
	if !strings.Contains(err.Error(), "load signing keys") || !strings.Contains(err.Error(), "system secret differs") {
		t.Errorf("err = %q lacks context", err)
	}
}

func TestOpenErrors(t *testing.T) {
	good := &memStore{}
	mustOpen(t, good, testSecret, Options{})
	twoActive := &memStore{keys: append(good.snapshot(), good.snapshot()...)}
	twoActive.keys[1].ID = "other"

	tamperedPub := &memStore{keys: good.snapshot()}
	tamperedPub.keys[0].Public = []byte(`{"kty":"oct","k":"AAAA"}`)

	// The active record's private key sealed under another record's kid.
	moved := &memStore{keys: good.snapshot()}
	moved.keys[0].ID = "not-the-thumbprint"

	tests := []struct {
		name    string
		store   Store
		secret  Secret
		opts    Options
		wantErr string
		is      error
	}{
		{name: "unsupported algorithm", store: &memStore{}, secret: mustSecret(t, testSecret), opts: Options{Algorithm: "HS256"}, wantErr: "unsupported signing algorithm"},
		{name: "zero secret", store: &memStore{}, opts: Options{}, wantErr: "no system secret"},
		{name: "store read fails", store: &memStore{failGet: errors.New("disk on fire")}, secret: mustSecret(t, testSecret), wantErr: "disk on fire"},
		{name: "two active keys", store: twoActive, secret: mustSecret(t, testSecret), wantErr: "2 active signing keys"},
		{name: "bad public JWK", store: tamperedPub, secret: mustSecret(t, testSecret), wantErr: "public key"},
		{name: "private key under wrong kid", store: moved, secret: mustSecret(t, testSecret), is: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(context.Background(), tt.store, tt.secret, tt.opts)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
		})
	}
}

func TestSignVerifiesWithJWKS(t *testing.T) {
	for _, alg := range []string{ES256, RS256} {
		t.Run(alg, func(t *testing.T) {
			m := mustOpen(t, &memStore{}, testSecret, Options{Algorithm: alg})
			payload := []byte(`{"sub":"alice","aud":"api"}`)

			tok, err := m.Sign(payload, map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("not a compact JWS: %q", tok)
			}
			got, hdr := verify(t, m.JWKSJSON(), tok)
			if !bytes.Equal(got, payload) {
				t.Errorf("payload = %s", got)
			}
			if hdr.KeyID != m.Active().ID || hdr.Algorithm != alg || hdr.ExtraHeaders[jose.HeaderType] != "at+jwt" {
				t.Errorf("header = kid %q alg %q extra %v", hdr.KeyID, hdr.Algorithm, hdr.ExtraHeaders)
			}

			// Without extra headers there is no typ.
			tok, err = m.Sign(payload, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, hdr = verify(t, m.JWKSJSON(), tok); hdr.ExtraHeaders[jose.HeaderType] != nil || hdr.KeyID == "" {
				t.Errorf("header = %+v", hdr)
			}
		})
	}
}

func TestSignExtraHeaders(t *testing.T) {
	m := mustOpen(t, &memStore{}, testSecret, Options{})
	for _, h := range []jose.HeaderKey{"alg", "kid", "jwk", "crit", "b64"} {
		if _, err := m.Sign([]byte("{}"), map[jose.HeaderKey]any{h: "x"}); err == nil {
			t.Errorf("Sign accepted reserved header %q", h)
		}
	}
	if _, err := m.Sign([]byte("{}"), map[jose.HeaderKey]any{"x": make(chan int)}); err == nil {
		t.Error("Sign accepted an unencodable header")
	}

	// The caller may reuse and change its map; earlier signers must not see it.
	hdrs := map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}
	if _, err := m.Sign([]byte("{}"), hdrs); err != nil {
		t.Fatal(err)
	}
	hdrs[jose.HeaderType] = "JWT"
	tok, err := m.Sign([]byte("{}"), map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"})
	if err != nil {
		t.Fatal(err)
	}
	if _, hdr := verify(t, m.JWKSJSON(), tok); hdr.ExtraHeaders[jose.HeaderType] != "at+jwt" {
		t.Errorf("typ = %v, cached signer was mutated through the caller's map", hdr.ExtraHeaders[jose.HeaderType])
	}

	// Many distinct header sets stay correct and do not grow the cache forever.
	for i := range 3 * maxCachedSigners {
		tok, err := m.Sign([]byte("{}"), map[jose.HeaderKey]any{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if _, hdr := verify(t, m.JWKSJSON(), tok); hdr.ExtraHeaders["n"] != float64(i) {
			t.Fatalf("n = %v, want %d", hdr.ExtraHeaders["n"], i)
		}
	}
	if n := m.state.Load().active.nSigners.Load(); n > maxCachedSigners {
		t.Errorf("signer cache holds %d entries, cap is %d", n, maxCachedSigners)
	}
}

func TestJWKSPublicOnly(t *testing.T) {
	for _, alg := range []string{ES256, RS256} {
		m := mustOpen(t, &memStore{}, testSecret, Options{Algorithm: alg})
		var doc struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal(m.JWKSJSON(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Keys) != 1 {
			t.Fatalf("%s: %d keys", alg, len(doc.Keys))
		}
		for _, p := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := doc.Keys[0][p]; ok {
				t.Errorf("%s: JWKS publishes private parameter %q", alg, p)
			}
		}
		for _, k := range m.JWKS().Keys {
			if !k.IsPublic() {
				t.Errorf("%s: JWKS() holds a private key", alg)
			}
		}
		// Returned values are copies: scribbling on them changes nothing.
		b := m.JWKSJSON()
		b[0] = 'X'
		set := m.JWKS()
		set.Keys[0].KeyID = "changed"
		if m.JWKSJSON()[0] != '{' || m.JWKS().Keys[0].KeyID != m.Active().ID {
			t.Error("JWKS results alias the manager's state")
		}
	}
}

func TestPublicKey(t *testing.T) {
	m := mustOpen(t, &memStore{}, testSecret, Options{})
	k, ok := m.PublicKey(m.Active().ID)
	if !ok || !k.IsPublic() || k.KeyID != m.Active().ID {
		t.Errorf("PublicKey(active) = %+v, %v", k, ok)
	}
	if _, ok := m.PublicKey("unknown"); ok {
		t.Error("PublicKey(unknown) found a key")
	}
}

func TestReloadKeepsKeysOnError(t *testing.T) {
	store := &memStore{}
	m := mustOpen(t, store, testSecret, Options{})
	id := m.Active().ID
	store.mu.Lock()
	store.failGet = errors.New("store closed")
	store.mu.Unlock()
	if err := m.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "store closed") {
		t.Fatalf("Reload err = %v", err)
	}
	if m.Active().ID != id {
		t.Error("failed Reload changed the active key")
	}
	if _, err := m.Sign([]byte("{}"), nil); err != nil {
		t.Errorf("Sign after failed Reload: %v", err)
	}
}

// Signing, publishing and reloading race in a live server: run with -race.
func TestConcurrentSignAndRotate(t *testing.T) {
	store := &memStore{}
	m := mustOpen(t, store, testSecret, Options{})
	ctx := context.Background()
	hdrs := map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens []string
		stop   atomic.Bool
	)
	for range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load() || i < 20; i++ {
				tok, err := m.Sign(fmt.Appendf(nil, `{"i":%d}`, i), hdrs)
				if err != nil {
					t.Error(err)
					return
				}
				_ = m.JWKSJSON()
				_, _ = m.PublicKey(m.Active().ID)
				mu.Lock()
				tokens = append(tokens, tok)
				mu.Unlock()
			}
		})
	}
	for range 3 {
		if _, err := Rotate(ctx, store, mustSecret(t, testSecret), Options{}); err != nil {
			t.Fatal(err)
		}
		if err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()

	jwks := m.JWKSJSON()
	seen := map[string]bool{}
	for _, tok := range tokens {
		_, hdr := verify(t, jwks, tok)
		seen[hdr.KeyID] = true
	}
	if len(seen) < 2 {
		t.Logf("tokens were signed by %d key(s); rotation raced ahead of the signers", len(seen))
	}
}

func BenchmarkSignES256(b *testing.B) {
	m := mustOpen(b, &memStore{}, testSecret, Options{Algorithm: ES256})
	benchSign(b, m)
}

func BenchmarkSignRS256(b *testing.B) {
	m := mustOpen(b, &memStore{}, testSecret, Options{Algorithm: RS256})
	benchSign(b, m)
}

func benchSign(b *testing.B, m *Manager) {
	payload := []byte(`{"iss":"https://postern.example","sub":"alice","aud":"api","exp":1893456000,"iat":1893452400,"jti":"0123456789abcdef","scope":"openid profile","client_id":"web"}`)
	hdrs := map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Sign(payload, hdrs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkJWKSJSON(b *testing.B) {
	store := &memStore{}
	m := mustOpen(b, store, testSecret, Options{})
	if _, err := Rotate(context.Background(), store, mustSecret(b, testSecret), Options{}); err != nil {
		b.Fatal(err)
	}
	if err := m.Reload(context.Background()); err != nil {
		b.Fatal(err)
	}
	if n := len(m.JWKS().Keys); n != 2 {
		b.Fatalf("%d keys", n)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.JWKSJSON()
	}
}
