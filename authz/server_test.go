package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/bolt"
	"github.com/postern-auth/postern/storage/storetrace"
)

type fixture struct {
	srv    *Server
	store  storage.Store
	secret string // billing's client secret
}

// newStoreAndKeys opens a real bbolt store (fsync on) in a temp dir, with
// the test system secret and a signing key.
func newStoreAndKeys(tb testing.TB) (*bolt.Store, keys.Secret, *keys.Manager) {
	tb.Helper()
	st, err := bolt.Open(filepath.Join(tb.TempDir(), "postern.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	sec, err := keys.NewSecret([]byte("authz-test-secret-0123456789abcdef-xyz"))
	if err != nil {
		tb.Fatal(err)
	}
	km, err := keys.Open(context.Background(), st, sec, keys.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return st, sec, km
}

// newFixture builds a server on a real bbolt store (fsync on) in a temp dir.
func newFixture(tb testing.TB, format string) *fixture {
	return newFixtureTraced(tb, format, nil)
}

// newFixtureTraced is newFixture with tracing as serve sets it up: the
// store wrapped, the server given the provider (nil: off).
func newFixtureTraced(tb testing.TB, format string, tp trace.TracerProvider) *fixture {
	tb.Helper()
	bst, sec, km := newStoreAndKeys(tb)
	var st storage.Store = bst
	if tp != nil {
		st = storetrace.Wrap(bst, tp)
	}
	secret, err := clients.GenerateClientSecret()
	if err != nil {
		tb.Fatal(err)
	}
	hash, err := clients.HashClientSecret(secret)
	if err != nil {
		tb.Fatal(err)
	}
	// As serve runs by default: refresh retry window on.
	lt := clients.Lifetimes{AccessToken: time.Hour, ImplicitAccessToken: 30 * time.Minute, RefreshToken: 24 * time.Hour, AuthorizationCode: 10 * time.Minute, RefreshRetryWindow: 30 * time.Second}
	srv, err := New(Config{
		Issuer:            "https://auth.example.com",
		AccessTokenFormat: format,
		Lifetimes:         lt,
		Clients: []*clients.Client{{
			ID: "billing", SecretHash: []byte(hash), GrantTypes: []string{"client_credentials"},
			Scopes: []string{"read", "write"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt,
		}, {
			ID: "mobile", SecretHash: []byte(hash), GrantTypes: []string{"password", "refresh_token"}, Trusted: true,
			Scopes: []string{"read", "account"}, TokenEndpointAuthMethod: clients.AuthSecretBasic, Lifetimes: lt,
		}, {
			ID: "firstparty", GrantTypes: []string{"authorization_code"}, Trusted: true, RedirectURIs: []string{"https://app.example.com/cb"},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthNone, Lifetimes: lt,
		}},
		Users: identity.NewDirectory([]identity.User{
			{Username: "alice", Password: "alice-password"},
			{Username: "bob", Password: "bob-password"},
		}, identity.NewThrottle(identity.ThrottleOptions{}), passhash.NewLimiter(0, nil)),
		SecretHasher: clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
		HMACSecret:   sec.Derive("test hmac", 32),
		RetryKey:     sec.Derive("test refresh retry", 32),
		CookieKey:    sec.Derive("test cookies", 64),
		Tracer:       tp,
	}, st, km)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{srv: srv, store: st, secret: secret}
}

func (f *fixture) post(tb testing.TB, path string, form url.Values) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("billing", f.secret)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

func (f *fixture) token(tb testing.TB) string {
	tb.Helper()
	rec := f.post(tb, pathToken, url.Values{"grant_type": {"client_credentials"}})
	if rec.Code != http.StatusOK {
		tb.Fatalf("token: %d %s", rec.Code, rec.Body)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		tb.Fatal(err)
	}
	return body.AccessToken
}

// TestStoredTokenHoldsNoCredential checks that the store keys tokens by
// signature and that no credential from the request reaches the record.
func TestStoredTokenHoldsNoCredential(t *testing.T) {
	f := newFixture(t, FormatOpaque)
	tok := f.token(t)
	toks, err := f.store.ClientTokens(context.Background(), "billing")
	if err != nil || len(toks) != 1 {
		t.Fatalf("ClientTokens = %v, %v", toks, err)
	}
	rec := toks[0]
	if !strings.HasPrefix(tok, prefixAccess) {
		t.Errorf("access token %q lacks the %s prefix", tok, prefixAccess)
	}
	if strings.Contains(tok, rec.Signature) == false || tok == rec.Signature {
		t.Errorf("record key %q is not the token's signature part", rec.Signature)
	}
	raw := string(rec.Data) + rec.Signature
	for _, secret := range []string{tok, f.secret, strings.SplitN(strings.TrimPrefix(tok, prefixAccess), ".", 2)[0]} {
		if strings.Contains(raw, secret) {
			t.Errorf("stored record contains a credential: %q", secret)
		}
	}
}

func TestJWTAccessTokenIntrospects(t *testing.T) {
	f := newFixture(t, FormatJWT)
	tok := f.token(t)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("not a JWT: %q", tok)
	}
	rec := f.post(t, pathIntrospect, url.Values{"token": {tok}})
	var info map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &info)
	if info["active"] != true || info["client_id"] != "billing" {
		t.Fatalf("introspection = %s", rec.Body)
	}
	// A tampered payload under the original signature finds the stored
	// record (it is keyed by the signature), so only the JWS check can
	// refuse it.
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(payload), `"scope":"read write"`, `"scope":"admin"`, 1)
	if forged == string(payload) {
		t.Fatalf("payload %s has no scope to tamper with", payload)
	}
	bad := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	rec = f.post(t, pathIntrospect, url.Values{"token": {bad}})
	if !strings.Contains(rec.Body.String(), `"active":false`) {
		t.Fatalf("tampered JWT introspection = %s", rec.Body)
	}
}

// BenchmarkIntrospectOpaque measures introspection in process: client
// authentication (keyed SHA-256), store read, session decode, JSON out.
func BenchmarkIntrospectOpaque(b *testing.B) {
	f := newFixture(b, FormatOpaque)
	tok := f.token(b)
	body := url.Values{"token": {tok}}.Encode()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, pathIntrospect, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("billing", f.secret)
		rec := httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":true`) {
			b.Fatalf("introspect: %d %s", rec.Code, rec.Body)
		}
	}
}
