package gateway

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// newTestGateway builds a Gateway against f with an injected clock.
func newTestGateway(t *testing.T, cfg Config) *Gateway {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func TestIntrospectionIdentity(t *testing.T) {
	f := newFakeAuth(t)
	cfg := f.config("http://127.0.0.1:1")
	cfg.ClaimHeaders = map[string]string{"email": "X-Authenticated-Email"}
	g := newTestGateway(t, cfg)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)

	f.ccToken("cc", "billing", "read write", exp)
	f.setToken("user", map[string]any{"active": true, "client_id": "spa", "sub": "alice", "scope": "read",
		"email": "alice@example.com", "exp": exp.Unix(), "iss": f.srv.URL, "token_type": "Bearer"})
	f.setToken("refresh", map[string]any{"active": true, "client_id": "spa", "sub": "alice", "token_type": "refresh_token"})
	f.setToken("foreign", map[string]any{"active": true, "client_id": "x", "iss": "https://other.example"})
	f.setToken("no-client", map[string]any{"active": true, "sub": "alice"})
	f.setToken("crlf", map[string]any{"active": true, "client_id": "x", "sub": "alice\r\nX-Admin: 1"})

	id, err := g.validator.check(ctx, "cc")
	if err != nil || id.Subject != "" || id.ClientID != "billing" || id.Scope != "read write" || id.Expiry.Unix() != exp.Unix() {
		t.Errorf("cc: %+v, %v", id, err)
	}
	id, err = g.validator.check(ctx, "user")
	if err != nil || id.Subject != "alice" || id.ClientID != "spa" || id.Claims["email"] != "alice@example.com" {
		t.Errorf("user: %+v, %v", id, err)
	}
	for _, tok := range []string{"refresh", "foreign", "no-client", "crlf", "unknown"} {
		if _, err := g.validator.check(ctx, tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err = %v, want ErrInvalidToken", tok, err)
		}
	}
}

func TestIntrospectionCache(t *testing.T) {
	f := newFakeAuth(t)
	clk := newFakeClock()
	cfg := f.config("http://127.0.0.1:1")
	cfg.Now = clk.Now
	cfg.Cache = CacheConfig{TTL: 30 * time.Second, NegativeTTL: 5 * time.Second, MaxEntries: 10}
	g := newTestGateway(t, cfg)
	ctx := context.Background()
	f.ccToken("short", "billing", "read", clk.Now().Add(10*time.Second))
	f.ccToken("long", "billing", "read", clk.Now().Add(time.Hour))

	calls := func() int64 { return f.introspections.Load() }
	mustCheck := func(tok string, wantErr error) {
		t.Helper()
		if _, err := g.validator.check(ctx, tok); !errors.Is(err, wantErr) {
			t.Fatalf("check(%s) = %v, want %v", tok, err, wantErr)
		}
	}
	mustCheck("long", nil)
	mustCheck("long", nil)
	mustCheck("short", nil)
	if calls() != 2 {
		t.Fatalf("introspections = %d, want 2 (one per token)", calls())
	}
	mustCheck("bogus", ErrInvalidToken)
	mustCheck("bogus", ErrInvalidToken)
	if calls() != 3 {
		t.Fatalf("negative result not cached: %d introspections", calls())
	}

	clk.Advance(6 * time.Second) // past negative_ttl
	mustCheck("bogus", ErrInvalidToken)
	if calls() != 4 {
		t.Fatalf("negative entry outlived negative_ttl: %d introspections", calls())
	}
	clk.Advance(5 * time.Second) // past short's exp, within ttl
	f.setToken("short", map[string]any{"active": false})
	mustCheck("short", ErrInvalidToken)
	mustCheck("long", nil)
	if calls() != 5 {
		t.Fatalf("introspections = %d, want 5: short re-checked at its exp, long still cached", calls())
	}
	// Revocation shows once the ttl has passed.
	f.setToken("long", map[string]any{"active": false})
	mustCheck("long", nil)
	clk.Advance(30 * time.Second)
	mustCheck("long", ErrInvalidToken)
}

func TestIntrospectionNoCache(t *testing.T) {
	f := newFakeAuth(t)
	cfg := f.config("http://127.0.0.1:1")
	cfg.Cache = CacheConfig{}
	g := newTestGateway(t, cfg)
	f.ccToken("tok", "billing", "read", time.Now().Add(time.Hour))
	for range 3 {
		if _, err := g.validator.check(context.Background(), "tok"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.introspections.Load(); n != 3 {
		t.Errorf("with ttl 0: %d introspections for 3 requests, want 3", n)
	}
	f.setToken("tok", map[string]any{"active": false})
	if _, err := g.validator.check(context.Background(), "tok"); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("revoked token with ttl 0: %v", err)
	}
}

// TestSingleflight: N concurrent requests for one uncached token make one
// introspection call. The server holds its answer until every request has
// missed the cache, so all of them are in flight at once.
func TestSingleflight(t *testing.T) {
	const n = 50
	f := newFakeAuth(t)
	f.release = make(chan struct{})
	g := newTestGateway(t, f.config("http://127.0.0.1:1"))
	if err := g.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.ccToken("tok", "billing", "read", time.Now().Add(time.Hour))
	var missed sync.WaitGroup
	missed.Add(n)
	g.validator.testHookMiss = missed.Done

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := g.validator.check(context.Background(), "tok")
			if err == nil && id.ClientID != "billing" {
				err = errors.New("wrong identity")
			}
			errs <- err
		}()
	}
	missed.Wait()
	close(f.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.introspections.Load(); got != 1 {
		t.Errorf("%d concurrent misses made %d introspection calls, want 1", n, got)
	}
}

func TestServerDown(t *testing.T) {
	f := newFakeAuth(t)
	g := newTestGateway(t, f.config("http://127.0.0.1:1"))
	f.ccToken("cached", "billing", "read", time.Now().Add(time.Hour))
	if _, err := g.validator.check(context.Background(), "cached"); err != nil {
		t.Fatal(err)
	}
	f.srv.Close()
	if _, err := g.validator.check(context.Background(), "cached"); err != nil {
		t.Errorf("cached token with the server down: %v", err)
	}
	_, err := g.validator.check(context.Background(), "uncached")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("uncached token with the server down: %v, want ErrUnavailable", err)
	}
}

// A 401 at introspection is the gateway's configuration at fault: neither
// the token (ErrInvalidToken) nor an outage (ErrUnavailable).
func TestWrongGatewayCredentials(t *testing.T) {
	f := newFakeAuth(t)
	cfg := f.config("http://127.0.0.1:1")
	if err := newTestGateway(t, cfg).CheckCredentials(context.Background()); err != nil {
		t.Errorf("CheckCredentials with the right secret: %v", err)
	}
	cfg.ClientSecret = "wrong"
	g := newTestGateway(t, cfg)
	f.ccToken("tok", "billing", "read", time.Now().Add(time.Hour))
	_, err := g.validator.check(context.Background(), "tok")
	if !errors.Is(err, ErrCredentials) || errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrUnavailable) {
		t.Errorf("introspection refused (401): %v, want ErrCredentials only", err)
	}
	if err := g.CheckCredentials(context.Background()); !errors.Is(err, ErrCredentials) {
		t.Errorf("CheckCredentials with a wrong secret: %v, want ErrCredentials", err)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	f := newFakeAuth(t)
	cfg := f.config("http://127.0.0.1:1")
	cfg.Issuer = f.srv.URL + "/"
	g := newTestGateway(t, cfg)
	if err := g.Warm(context.Background()); err != nil {
		t.Errorf("trailing slash on issuer: %v", err)
	}
	cfg.Issuer = f.srv.URL + "/tenant"
	g = newTestGateway(t, cfg)
	if err := g.Warm(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("issuer mismatch: %v, want ErrUnavailable", err)
	}
}
