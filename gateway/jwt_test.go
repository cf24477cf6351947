package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestJWTValidation(t *testing.T) {
	f := newFakeAuth(t)
	clk := newFakeClock()
	cfg := f.config("http://127.0.0.1:1")
	cfg.Now = clk.Now
	cfg.Cache.TTL = 0 // every row is verified, never served from the cache
	cfg.ClaimHeaders = map[string]string{"email": "X-Authenticated-Email"}
	g := newTestGateway(t, cfg)
	now := clk.Now()

	with := func(mod func(map[string]any)) string {
		c := f.jwtClaims(now)
		mod(c)
		return f.signJWT(c)
	}
	good := with(func(map[string]any) {})
	f.mu.Lock()
	k1 := f.keys["k1"]
	f.mu.Unlock()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"good", good, nil},
		{"expired", with(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), ErrInvalidToken},
		{"expired within skew", with(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() }), nil},
		{"nbf in the future", with(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }), ErrInvalidToken},
		{"nbf within skew", with(func(c map[string]any) { c["nbf"] = now.Add(30 * time.Second).Unix() }), nil},
		{"iat in the future", with(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() }), ErrInvalidToken},
		{"no exp", with(func(c map[string]any) { delete(c, "exp") }), ErrInvalidToken},
		{"wrong iss", with(func(c map[string]any) { c["iss"] = "https://evil.example" }), ErrInvalidToken},
		{"no iss", with(func(c map[string]any) { delete(c, "iss") }), ErrInvalidToken},
		{"no client_id", with(func(c map[string]any) { delete(c, "client_id") }), ErrInvalidToken},
		{"tampered payload", tamper(t, good), ErrInvalidToken},
		{"signed by an unknown key with a known kid", signWith(t, jose.ES256, jose.JSONWebKey{Key: otherEC, KeyID: "k1"}, "at+jwt", f.jwtClaims(now)), ErrInvalidToken},
		{"alg none", unsigned(t, "k1", f.jwtClaims(now)), ErrInvalidToken},
		{"HS256 with the public key as secret", signWith(t, jose.HS256, jose.JSONWebKey{Key: publicKeyBytes(t, &k1.PublicKey), KeyID: "k1"}, "at+jwt", f.jwtClaims(now)), ErrInvalidToken},
		{"RS256 by a key not in the JWKS", signWith(t, jose.RS256, jose.JSONWebKey{Key: rsaKey, KeyID: "rsa1"}, "at+jwt", f.jwtClaims(now)), ErrInvalidToken},
		{"no kid", signWith(t, jose.ES256, k1, "at+jwt", f.jwtClaims(now)), ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := g.validator.check(context.Background(), tt.token)
			if !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if n := f.introspections.Load(); n != 0 {
		t.Errorf("JWT access tokens caused %d introspections", n)
	}

	id, err := g.validator.check(context.Background(), good)
	if err != nil || id.Subject != "" || id.ClientID != "billing" || id.Scope != "read write" {
		t.Errorf("client-credentials JWT: %+v, %v", id, err)
	}
	user := with(func(c map[string]any) { c["sub"] = "alice"; c["client_id"] = "spa"; c["email"] = "alice@example.com" })
	id, err = g.validator.check(context.Background(), user)
	if err != nil || id.Subject != "alice" || id.ClientID != "spa" || id.Claims["email"] != "alice@example.com" {
		t.Errorf("user JWT: %+v, %v", id, err)
	}
}

// TestJWTOtherTypeGoesToIntrospection: a JWS that is not typ at+jwt (an
// ID token, say) is not verified locally; the server decides.
func TestJWTOtherTypeGoesToIntrospection(t *testing.T) {
	f := newFakeAuth(t)
	g := newTestGateway(t, f.config("http://127.0.0.1:1"))
	f.mu.Lock()
	k1 := f.keys["k1"]
	f.mu.Unlock()
	idToken := signWith(t, jose.ES256, jose.JSONWebKey{Key: k1, KeyID: "k1"}, "JWT", f.jwtClaims(time.Now()))
	if _, err := g.validator.check(context.Background(), idToken); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("ID token: %v", err)
	}
	if f.introspections.Load() != 1 {
		t.Errorf("ID token was not sent to introspection")
	}
}

func TestJWTAudience(t *testing.T) {
	f := newFakeAuth(t)
	cfg := f.config("http://127.0.0.1:1")
	cfg.Audience = "https://api.example.com"
	g := newTestGateway(t, cfg)
	c := f.jwtClaims(time.Now())
	if _, err := g.validator.check(context.Background(), f.signJWT(c)); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token for another audience: %v", err)
	}
	c["aud"] = []string{"https://api.example.com", "other"}
	if _, err := g.validator.check(context.Background(), f.signJWT(c)); err != nil {
		t.Errorf("token for our audience: %v", err)
	}
}

// TestJWKSRotation: a token signed by a new key makes the gateway fetch
// the JWKS again, at most once per min_refetch_interval.
func TestJWKSRotation(t *testing.T) {
	f := newFakeAuth(t)
	clk := newFakeClock()
	cfg := f.config("http://127.0.0.1:1")
	cfg.Now = clk.Now
	cfg.JWKS = JWKSConfig{MaxAge: time.Hour, MinRefetchInterval: 10 * time.Second}
	g := newTestGateway(t, cfg)
	check := func(tok string) error {
		_, err := g.validator.check(context.Background(), tok)
		return err
	}
	old := f.signJWT(f.jwtClaims(clk.Now()))
	if err := check(old); err != nil {
		t.Fatal(err)
	}
	if n := f.jwksFetches.Load(); n != 1 {
		t.Fatalf("jwks fetches = %d, want 1", n)
	}

	// Made-up kids cause at most one fetch per interval.
	clk.Advance(10 * time.Second)
	f.mu.Lock()
	k1 := f.keys["k1"]
	f.mu.Unlock()
	for i := range 5 {
		c := f.jwtClaims(clk.Now())
		c["jti"] = string(rune('a' + i))
		bogus := signWith(t, jose.ES256, jose.JSONWebKey{Key: k1, KeyID: "made-up"}, "at+jwt", c)
		if err := check(bogus); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := f.jwksFetches.Load(); n != 2 {
		t.Fatalf("jwks fetches after 5 unknown kids = %d, want 2", n)
	}

	f.addKey("k2")
	fresh := f.signJWT(f.jwtClaims(clk.Now()))
	if err := check(fresh); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("new kid within the refetch interval: %v, want ErrInvalidToken", err)
	}
	clk.Advance(10 * time.Second)
	if err := check(fresh); err != nil {
		t.Fatalf("new kid after the refetch interval: %v", err)
	}
	if err := check(old); err != nil {
		t.Fatalf("old key still published: %v", err)
	}
	if n := f.jwksFetches.Load(); n != 3 {
		t.Errorf("jwks fetches = %d, want 3", n)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	f := newFakeAuth(t)
	clk := newFakeClock()
	cfg := f.config("http://127.0.0.1:1")
	cfg.Now = clk.Now
	cfg.Cache.TTL = 0
	cfg.JWKS = JWKSConfig{MaxAge: time.Minute, MinRefetchInterval: -1}
	g := newTestGateway(t, cfg)
	tok := f.signJWT(f.jwtClaims(clk.Now()))
	f.mu.Lock()
	f.jwksDown = true
	f.mu.Unlock()
	if _, err := g.validator.check(context.Background(), tok); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("JWKS never fetched: %v, want ErrUnavailable", err)
	}
	f.mu.Lock()
	f.jwksDown = false
	f.mu.Unlock()
	if _, err := g.validator.check(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	// A stale key set is still used while the server cannot be reached.
	f.mu.Lock()
	f.jwksDown = true
	f.mu.Unlock()
	clk.Advance(2 * time.Minute)
	if _, err := g.validator.check(context.Background(), tok); err != nil {
		t.Errorf("stale JWKS with the server down: %v", err)
	}
}

func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), `"read write"`, `"admin root"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func unsigned(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "at+jwt", "kid": kid})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func publicKeyBytes(t *testing.T, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	b, err := jose.JSONWebKey{Key: pub}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
