package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeAuth is a stand-in authorization server: discovery, introspection of
// a table of tokens, and a JWKS of ES256 keys it can sign with.
type fakeAuth struct {
	t   testing.TB
	srv *httptest.Server

	introspections atomic.Int64
	jwksFetches    atomic.Int64
	// release, when non-nil, blocks introspection until closed.
	release chan struct{}

	mu       sync.Mutex
	tokens   map[string]map[string]any // token → introspection response
	keys     map[string]*ecdsa.PrivateKey
	active   string // kid signing new tokens
	jwksDown bool
	// feed, when set, makes discovery offer a revocation feed whose
	// connections stream what is sent on it, until it is closed.
	feed chan string
}

func newFakeAuth(t testing.TB) *fakeAuth {
	t.Helper()
	f := &fakeAuth{t: t, tokens: map[string]map[string]any{}, keys: map[string]*ecdsa.PrivateKey{}}
	f.addKey("k1")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]string{
			"issuer":                 f.srv.URL,
			"introspection_endpoint": f.srv.URL + "/introspect",
			"jwks_uri":               f.srv.URL + "/jwks",
		}
		if f.feed != nil {
			doc["postern_revocation_feed_endpoint"] = f.srv.URL + "/feed"
		}
		json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "gw" || p != "gw-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case msg, ok := <-f.feed:
				if !ok {
					return
				}
				io.WriteString(w, msg)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST /introspect", func(w http.ResponseWriter, r *http.Request) {
		f.introspections.Add(1)
		if f.release != nil {
			<-f.release
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "gw" || p != "gw-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		resp, ok := f.tokens[r.PostFormValue("token")]
		f.mu.Unlock()
		if !ok {
			resp = map[string]any{"active": false}
		}
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		f.jwksFetches.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.jwksDown {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var set jose.JSONWebKeySet
		for kid, k := range f.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAuth) addKey(kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.keys[kid] = k
	f.active = kid
	f.mu.Unlock()
}

// setToken registers an opaque token's introspection response.
func (f *fakeAuth) setToken(token string, resp map[string]any) {
	f.mu.Lock()
	f.tokens[token] = resp
	f.mu.Unlock()
}

// ccToken registers an active client-credentials token.
func (f *fakeAuth) ccToken(token, clientID, scope string, exp time.Time) {
	f.setToken(token, map[string]any{"active": true, "client_id": clientID, "scope": scope,
		"exp": exp.Unix(), "iss": f.srv.URL, "token_type": "Bearer"})
}

// signJWT signs claims with the active key as an RFC 9068 access token.
func (f *fakeAuth) signJWT(claims map[string]any) string {
	f.mu.Lock()
	kid := f.active
	key := f.keys[kid]
	f.mu.Unlock()
	return signWith(f.t, jose.ES256, jose.JSONWebKey{Key: key, KeyID: kid}, "at+jwt", claims)
}

func signWith(t testing.TB, alg jose.SignatureAlgorithm, key any, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwtClaims is a valid client-credentials claim set at now.
func (f *fakeAuth) jwtClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": f.srv.URL, "sub": "billing", "client_id": "billing", "aud": []string{f.srv.URL},
		"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "id-1", "scope": "read write",
	}
}

// config is a gateway Config wired to this server with one route.
func (f *fakeAuth) config(upstream string) Config {
	return Config{
		Issuer:       f.srv.URL,
		ClientID:     "gw",
		ClientSecret: "gw-secret",
		Cache:        CacheConfig{TTL: time.Minute, NegativeTTL: 5 * time.Second, MaxEntries: 100},
		Routes:       []Route{{PathPrefix: "/api", Upstream: mustURL(upstream), StripPrefix: true}},
	}
}
