// Package keys owns the server's signing keys and the system secret they are
// protected with. It generates, seals, rotates and publishes keys and signs
// JWS payloads; it knows nothing of HTTP or fosite.
//
// Keys live in a Store (storage/bolt in production). The private half is
// sealed with a key derived from the system Secret before it reaches the
// store, so a copy of the database alone does not yield signing keys.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern-auth/postern/storage"
)

// Store is the part of the storage backend this package needs.
// storage.Store satisfies it.
type Store interface {
	Keys(ctx context.Context) ([]storage.Key, error)
	// UpdateKeys must run fn atomically with the read it is given, so that
	// two processes cannot both create or rotate keys.
	UpdateKeys(ctx context.Context, fn func([]storage.Key) ([]storage.Key, error)) error
}

// Supported signing algorithms.
const (
	ES256 = "ES256" // ECDSA P-256 / SHA-256: small keys and signatures, fast to generate.
	RS256 = "RS256" // RSA 2048 / SHA-256: for relying parties that only speak RSA.
)

// rsaBits is the RSA modulus size for RS256 keys. 2048 bits is the common
// interoperable size and is rated by NIST through 2030; 3072 would triple
// signing time on the token hot path and slow every rotation, for clients
// that should prefer ES256 anyway.
const rsaBits = 2048

// DefaultOverlap is how long a rotated-out key stays published by default.
// It must exceed the lifetime of any token signed with the key (access and
// ID tokens) plus the time relying parties cache the JWKS.
const DefaultOverlap = 24 * time.Hour

// Options configure key generation and rotation.
type Options struct {
	// Algorithm for newly generated keys: ES256 (the default) or RS256.
	// Existing keys keep theirs; a change takes effect at the next rotation.
	Algorithm string
	// Overlap is how long a rotated-out key stays in the JWKS so tokens it
	// signed keep verifying. Zero means DefaultOverlap; a negative value
	// drops the old key at once (for a compromised key).
	Overlap time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) normalize() (Options, error) {
	switch o.Algorithm {
	case "":
		o.Algorithm = ES256
	case ES256, RS256:
	default:
		return o, fmt.Errorf("unsupported signing algorithm %q (want %s or %s)", o.Algorithm, ES256, RS256)
	}
	switch {
	case o.Overlap == 0:
		o.Overlap = DefaultOverlap
	case o.Overlap < 0:
		o.Overlap = 0
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// SigningKey is the active private key. Key is an *ecdsa.PrivateKey or an
// *rsa.PrivateKey, which both go-jose and fosite accept directly.
type SigningKey struct {
	ID        string
	Algorithm string
	Key       crypto.Signer
}

// JWK returns the private key as a JWK carrying kid, alg and use, for
// libraries that take a jose.JSONWebKey and set the kid header from it.
func (k SigningKey) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Key, KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"}
}

// Manager holds the loaded key set and signs with the active key. All its
// methods are safe for concurrent use.
type Manager struct {
	store  Store
	sealer *sealer
	opts   Options

	state    atomic.Pointer[state]
	reloadMu sync.Mutex // orders Reloads so an older read never replaces a newer one
}

// state is one immutable snapshot of the key set. Readers load it with a
// single atomic read; Reload and retirement build a new one.
type state struct {
	records []storage.Key // as read from the store, private halves still sealed
	active  *activeKey

	jwks      jose.JSONWebKeySet
	jwksJSON  []byte
	published map[string]jose.JSONWebKey
	// staleAt is when the next published key passes its RetireAt and the
	// JWKS must be rebuilt; zero if no key is pending retirement.
	staleAt time.Time
}

// activeKey is the decrypted active key and its signers. It is shared by
// successive snapshots while the active key stays the same, so the signer
// cache survives Reloads.
type activeKey struct {
	key    SigningKey
	signer jose.Signer // no extra headers

	// signers caches one jose.Signer per distinct extra-header set
	// (keyed by its JSON). Callers pass a fixed few, e.g. typ "at+jwt",
	// so hits are the norm; the cap bounds memory if a caller varies them.
	signers  sync.Map // string -> jose.Signer
	nSigners atomic.Int32
}

const maxCachedSigners = 32

// Open loads the key set from store, creating a first key if none is
// active, and decrypts the active private key. A wrong secret fails here with
// an error wrapping ErrWrongSecret, so a misconfigured server never starts.
func Open(ctx context.Context, store Store, secret Secret, opts Options) (*Manager, error) {
	opts, err := opts.normalize()
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	sl, err := newSealer(secret)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	m := &Manager{store: store, sealer: sl, opts: opts}

	records, err := store.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if !hasActive(records) {
		if err := m.createFirst(ctx); err != nil {
			return nil, fmt.Errorf("load signing keys: %w", err)
		}
	}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// createFirst stores a first active key unless another process got there
// first. The key is generated before the transaction so a slow RSA
// generation does not hold the store's write lock.
func (m *Manager) createFirst(ctx context.Context) error {
	rec, err := newKeyRecord(m.sealer, m.opts.Algorithm, m.opts.Now())
	if err != nil {
		return err
	}
	err = m.store.UpdateKeys(ctx, func(old []storage.Key) ([]storage.Key, error) {
		if hasActive(old) {
			return old, nil
		}
		return append(slices.Clone(old), rec), nil
	})
	if err != nil {
		return fmt.Errorf("store first signing key: %w", err)
	}
	return nil
}

// Reload re-reads the key set and swaps it in atomically; on error the
// current key set stays in use. It serves stores shared by several processes
// (a rotation done by one replica reaches the others); the embedded bbolt
// store is held by one process, so there `postern keys rotate` runs while
// the server is stopped and Open picks the new key up.
func (m *Manager) Reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()

	records, err := m.store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	var prev *activeKey
	if cur := m.state.Load(); cur != nil {
		prev = cur.active
	}
	st, err := buildState(records, m.sealer, prev, m.opts.Now())
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	m.state.Store(st)
	return nil
}

// buildState validates records and derives the published key set as of
// now. prev, if it is the same key as the stored active one, is reused
// rather than decrypted again.
func buildState(records []storage.Key, sl *sealer, prev *activeKey, now time.Time) (*state, error) {
	// SAML service-provider keys share the store but are never published
	// or used to sign tokens (see SAMLKeyPair).
	records = slices.DeleteFunc(slices.Clone(records), func(k storage.Key) bool { return k.Algorithm == SAMLSP })
	var activeRec *storage.Key
	var activeIDs []string
	for i := range records {
		if records[i].Active {
			activeRec = &records[i]
			activeIDs = append(activeIDs, records[i].ID)
		}
	}
	switch len(activeIDs) {
	case 0:
		return nil, errors.New("store holds no active signing key")
	case 1:
	default:
		return nil, fmt.Errorf("store holds %d active signing keys (%s); run a key rotation to repair", len(activeIDs), strings.Join(activeIDs, ", "))
	}

	active := prev
	if active == nil || active.key.ID != activeRec.ID {
		var err error
		if active, err = decryptActive(*activeRec, sl); err != nil {
			return nil, err
		}
	}

	st := &state{
		records:   records,
		active:    active,
		published: make(map[string]jose.JSONWebKey, len(records)),
	}
	// Active key first, then newest first: a deterministic JWKS document.
	order := slices.Clone(records)
	slices.SortFunc(order, compareKeys)
	for _, r := range order {
		if !r.Active && !r.RetireAt.After(now) {
			continue
		}
		jwk, err := parsePublic(r)
		if err != nil {
			return nil, err
		}
		st.jwks.Keys = append(st.jwks.Keys, jwk)
		st.published[r.ID] = jwk
		if !r.Active && (st.staleAt.IsZero() || r.RetireAt.Before(st.staleAt)) {
			st.staleAt = r.RetireAt
		}
	}
	b, err := json.Marshal(st.jwks)
	if err != nil {
		return nil, fmt.Errorf("encode JWKS: %w", err)
	}
	st.jwksJSON = b
	return st, nil
}

func decryptActive(rec storage.Key, sl *sealer) (*activeKey, error) {
	pt, err := sl.open(rec.ID, rec.Private)
	if err != nil {
		return nil, err
	}
	defer clear(pt) // best effort: the parsed key still lives on the heap
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(pt); err != nil {
		return nil, fmt.Errorf("decode private key %s: %w", rec.ID, err)
	}
	signer, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return nil, fmt.Errorf("decode private key %s: not a private signing key (%T)", rec.ID, jwk.Key)
	}
	if err := checkAlgorithm(rec.Algorithm, signer.Public()); err != nil {
		return nil, fmt.Errorf("private key %s: %w", rec.ID, err)
	}
	// The kid is the thumbprint of the public key, so this proves the
	// decrypted private key is the one the record publishes.
	if kid, err := thumbprint(signer.Public()); err != nil || kid != rec.ID {
		return nil, fmt.Errorf("private key %s does not match its key ID", rec.ID)
	}
	ak := &activeKey{key: SigningKey{ID: rec.ID, Algorithm: rec.Algorithm, Key: signer}}
	ak.signer, err = ak.newSigner(nil)
	if err != nil {
		return nil, err
	}
	return ak, nil
}

func parsePublic(r storage.Key) (jose.JSONWebKey, error) {
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(r.Public); err != nil {
		return jwk, fmt.Errorf("decode public key %s: %w", r.ID, err)
	}
	if !jwk.IsPublic() {
		// Never publish private material, whatever the store holds.
		return jwk, fmt.Errorf("public key record %s holds a private key", r.ID)
	}
	if jwk.KeyID != r.ID || jwk.Algorithm != r.Algorithm {
		return jwk, fmt.Errorf("public key %s: JWK says kid %q alg %q, record says alg %q", r.ID, jwk.KeyID, jwk.Algorithm, r.Algorithm)
	}
	return jwk, nil
}

// compareKeys orders keys active first, then most recently created, then
// most recently retired (the later of two keys created in the same instant
// was active longer), then by ID so the order never depends on the store.
func compareKeys(a, b storage.Key) int {
	if a.Active != b.Active {
		if a.Active {
			return -1
		}
		return 1
	}
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	if c := b.RetireAt.Compare(a.RetireAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

func hasActive(records []storage.Key) bool {
	return slices.ContainsFunc(records, func(k storage.Key) bool { return k.Active && k.Algorithm != SAMLSP })
}

// current returns the snapshot, first retiring any published key whose
// RetireAt has passed. That keeps the JWKS honest on a server that is
// never Reloaded, at the cost of one clock read per call.
func (m *Manager) current() *state {
	for {
		st := m.state.Load()
		if st.staleAt.IsZero() {
			return st
		}
		now := m.opts.Now()
		if now.Before(st.staleAt) {
			return st
		}
		next, err := buildState(st.records, m.sealer, st.active, now)
		if err != nil {
			// Unreachable: the same records built st. Keep serving it.
			return st
		}
		if m.state.CompareAndSwap(st, next) {
			return next
		}
	}
}

// Active returns the key new tokens are signed with.
func (m *Manager) Active() SigningKey {
	return m.state.Load().active.key
}

// headers Sign refuses: go-jose sets alg and kid from the key, and the
// others would change how the JWS is processed or which key verifies it.
var reservedHeaders = map[jose.HeaderKey]bool{
	"alg": true, "kid": true, "jwk": true, "jku": true,
	"x5c": true, "x5u": true, "crit": true, "b64": true,
}

// Sign returns a compact JWS of payload signed with the active key. The
// protected header carries alg, kid and extraHeaders (for example
// jose.HeaderType: "at+jwt" for RFC 9068 access tokens).
func (m *Manager) Sign(payload []byte, extraHeaders map[jose.HeaderKey]any) (string, error) {
	ak := m.state.Load().active
	signer := ak.signer
	if len(extraHeaders) > 0 {
		var err error
		if signer, err = ak.signerFor(extraHeaders); err != nil {
			return "", fmt.Errorf("sign: %w", err)
		}
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", ak.key.ID, err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("sign with key %s: %w", ak.key.ID, err)
	}
	return out, nil
}

func (ak *activeKey) signerFor(headers map[jose.HeaderKey]any) (jose.Signer, error) {
	for k := range headers {
		if reservedHeaders[k] {
			return nil, fmt.Errorf("header %q is set by the key manager", k)
		}
	}
	// encoding/json sorts map keys, so equal header sets share an entry.
	b, err := json.Marshal(headers)
	if err != nil {
		return nil, fmt.Errorf("encode extra headers: %w", err)
	}
	cacheKey := string(b)
	if s, ok := ak.signers.Load(cacheKey); ok {
		return s.(jose.Signer), nil
	}
	s, err := ak.newSigner(headers)
	if err != nil {
		return nil, err
	}
	if ak.nSigners.Load() < maxCachedSigners {
		if _, loaded := ak.signers.LoadOrStore(cacheKey, s); !loaded {
			ak.nSigners.Add(1)
		}
	}
	return s, nil
}

func (ak *activeKey) newSigner(headers map[jose.HeaderKey]any) (jose.Signer, error) {
	opts := &jose.SignerOptions{}
	for k, v := range headers { // copied: the caller may reuse its map
		opts.WithHeader(k, v)
	}
	// Signing with the JWK (rather than the bare key) makes go-jose emit
	// the kid header.
	s, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(ak.key.Algorithm),
		Key:       ak.key.JWK(),
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("signer for key %s: %w", ak.key.ID, err)
	}
	return s, nil
}

// JWKS returns the published public keys: the active key, then rotated-out
// keys whose RetireAt is still ahead.
func (m *Manager) JWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: slices.Clone(m.current().jwks.Keys)}
}

// JWKSJSON returns JWKS() encoded as JSON, as served at the jwks_uri. It is
// encoded once per key-set change; each call returns a fresh copy.
func (m *Manager) JWKSJSON() []byte {
	return slices.Clone(m.current().jwksJSON)
}

// PublicKey returns the published public key with the given kid, for
// verifying tokens this server issued.
func (m *Manager) PublicKey(kid string) (jose.JSONWebKey, bool) {
	k, ok := m.current().published[kid]
	return k, ok
}

// newKeyRecord generates a key pair and returns it as a store record: the
// public JWK in the clear, the private JWK sealed to the key's ID.
func newKeyRecord(sl *sealer, alg string, now time.Time) (storage.Key, error) {
	priv, err := generate(alg)
	if err != nil {
		return storage.Key{}, err
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return storage.Key{}, err
	}
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		return storage.Key{}, fmt.Errorf("encode public key: %w", err)
	}
	privJSON, err := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		return storage.Key{}, fmt.Errorf("encode private key: %w", err)
	}
	sealed, err := sl.seal(kid, privJSON)
	clear(privJSON)
	if err != nil {
		return storage.Key{}, err
	}
	return storage.Key{
		ID:        kid,
		Algorithm: alg,
		CreatedAt: now.UTC().Round(0),
		Active:    true,
		Public:    pub,
		Private:   sealed,
	}, nil
}

func generate(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", alg, err)
		}
		return k, nil
	case RS256:
		k, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return nil, fmt.Errorf("generate %s key: %w", alg, err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", alg)
}

// checkAlgorithm guards against a record whose alg does not fit its key,
// which go-jose would otherwise only report at the first Sign.
func checkAlgorithm(alg string, pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg == ES256 && k.Curve == elliptic.P256() {
			return nil
		}
	case *rsa.PublicKey:
		if alg == RS256 && k.N.BitLen() >= 2048 {
			return nil
		}
	}
	return fmt.Errorf("algorithm %q does not fit a %T key", alg, pub)
}

// thumbprint is the key ID: the RFC 7638 SHA-256 JWK thumbprint, base64url.
// It is stable, URL-safe, derived from the key alone (no registry needed to
// avoid collisions), and lets anyone holding the JWK recompute it.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
