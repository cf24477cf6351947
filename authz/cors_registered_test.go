package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// scanStore counts AllClients scans, and can fail or hold them.
type scanStore struct {
	storage.Store
	mu    sync.Mutex
	scans int
	err   error
	hold  chan struct{} // when set, a scan signals entered and waits for it to close
	enter chan struct{}
}

func (s *scanStore) AllClients(ctx context.Context) ([]storage.Client, error) {
	s.mu.Lock()
	s.scans++
	err, hold, enter := s.err, s.hold, s.enter
	s.mu.Unlock()
	if hold != nil {
		enter <- struct{}{}
		<-hold
	}
	if err != nil {
		return nil, err
	}
	return s.Store.AllClients(ctx)
}

func (s *scanStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scans
}

type corsRegFixture struct {
	srv          *Server
	store        *scanStore
	clock        *testClock
	initialToken string
	logs         *bytes.Buffer
}

// newCORSRegFixture is a server with RFC 7591 registration on, a clock the
// test moves, and its log in a buffer.
func newCORSRegFixture(t *testing.T) *corsRegFixture {
	t.Helper()
	st, sec, km := newStoreAndKeys(t)
	token, err := clients.GenerateClientSecret()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := clients.HashClientSecret(token)
	if err != nil {
		t.Fatal(err)
	}
	f := &corsRegFixture{store: &scanStore{Store: st}, clock: &testClock{t: time.Now()}, initialToken: token, logs: &bytes.Buffer{}}
	lt := clients.Lifetimes{AccessToken: time.Hour, RefreshToken: 24 * time.Hour, AuthorizationCode: 10 * time.Minute}
	f.srv, err = New(Config{
		Issuer:    "https://auth.example.com",
		Lifetimes: lt,
		Clients: []*clients.Client{{
			ID: "configured-spa", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://configured.example.com/cb"},
			Scopes: []string{"read"}, TokenEndpointAuthMethod: clients.AuthNone, Lifetimes: lt,
		}},
		Users:                 identity.NewDirectory(nil, identity.NewThrottle(identity.ThrottleOptions{}), passhash.NewLimiter(0, nil)),
		SecretHasher:          clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
		HMACSecret:            sec.Derive("test hmac", 32),
		CookieKey:             sec.Derive("test cookies", 64),
		RegistrationTokenHash: []byte(hash),
		Now:                   f.clock.now,
		Logger:                slog.New(slog.NewTextHandler(f.logs, nil)),
	}, f.store, km)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

type registered struct {
	ID        string `json:"client_id"`
	URI       string `json:"registration_client_uri"`
	RegAccess string `json:"registration_access_token"`
}

// register registers a client through RFC 7591, as a pipeline would.
func (f *corsRegFixture) register(t *testing.T, authMethod string, redirectURIs ...string) registered {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"client_name": "app", "redirect_uris": redirectURIs, "token_endpoint_auth_method": authMethod,
		"grant_types": []string{"authorization_code"}, "response_types": []string{"code"},
	})
	req := httptest.NewRequest(http.MethodPost, pathRegister, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.initialToken)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	var out registered
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// storeClient registers a public client straight in the store, as another
// replica would: this server hears nothing of it.
func (f *corsRegFixture) storeClient(t *testing.T, id string, redirectURIs ...string) {
	t.Helper()
	data, err := clients.EncodeRegistration(clients.Registration{Name: id, AuthMethod: clients.AuthNone, GrantTypes: []string{"authorization_code"}, RedirectURIs: redirectURIs})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Store.CreateClient(t.Context(), storage.Client{ID: id, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// corsEndpoints are the endpoints a SPA fetches, each with the actual
// request it makes (what it answers does not matter here, only whether the
// page may read it).
var corsEndpoints = []struct {
	path, method string
	form         url.Values
}{
	{pathToken, http.MethodPost, url.Values{"grant_type": {"authorization_code"}, "client_id": {"x"}, "code": {"c"}, "code_verifier": {strings.Repeat("v", 43)}}},
	{pathRevoke, http.MethodPost, url.Values{"client_id": {"x"}, "token": {"t"}}},
	{pathUserinfo, http.MethodGet, nil},
	{"/.well-known/openid-configuration", http.MethodGet, nil},
	{"/.well-known/oauth-authorization-server", http.MethodGet, nil},
	{pathJWKS, http.MethodGet, nil},
}

func (f *corsRegFixture) preflight(path, origin string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodOptions, path, nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	return rec
}

// checkOrigin checks every SPA endpoint's preflight and actual answer to
// origin: allowed, or a 403 preflight and no Access-Control-Allow-Origin.
func (f *corsRegFixture) checkOrigin(t *testing.T, origin string, allowed bool) {
	t.Helper()
	for _, e := range corsEndpoints {
		rec := f.preflight(e.path, origin)
		acao := rec.Header().Get("Access-Control-Allow-Origin")
		if allowed && (rec.Code != http.StatusNoContent || acao != origin) {
			t.Errorf("preflight %s from %s: %d, Access-Control-Allow-Origin %q; want 204 allowing it", e.path, origin, rec.Code, acao)
		}
		if !allowed && (rec.Code != http.StatusForbidden || acao != "") {
			t.Errorf("preflight %s from %s: %d, Access-Control-Allow-Origin %q; want 403 without", e.path, origin, rec.Code, acao)
		}

		var req *http.Request
		if e.form != nil {
			req = httptest.NewRequest(e.method, e.path, strings.NewReader(e.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest(e.method, e.path, nil)
		}
		req.Header.Set("Origin", origin)
		rec = httptest.NewRecorder()
		f.srv.ServeHTTP(rec, req)
		acao = rec.Header().Get("Access-Control-Allow-Origin")
		if rec.Code >= 500 || (allowed && acao != origin) || (!allowed && acao != "") {
			t.Errorf("%s %s from %s: %d, Access-Control-Allow-Origin %q; allowed %v", e.method, e.path, origin, rec.Code, acao, allowed)
		}
	}
}

// TestCORSForRegisteredBrowserApps: a SPA registered at runtime gets CORS
// for the origins of its http(s) redirect URIs, at once on the replica that
// registered it and after a reload on the others; a confidential client,
// a custom scheme and a stranger do not; a deleted SPA loses it.
func TestCORSForRegisteredBrowserApps(t *testing.T) {
	f := newCORSRegFixture(t)
	f.checkOrigin(t, "https://spa.example.com", false) // loads the set before the registration
	spa := f.register(t, clients.AuthNone, "https://SPA.example.com/cb", "com.example.spa:/cb")
	f.register(t, clients.AuthSecretBasic, "https://web.example.com/cb")

	// Registered through this server: no wait for the reload age.
	for _, tc := range []struct {
		name, origin string
		allowed      bool
	}{
		{"registered public client", "https://spa.example.com", true},
		{"its origin in another case", "https://Spa.Example.COM", true},
		{"configured public client", "https://configured.example.com", true},
		{"registered confidential client", "https://web.example.com", false},
		{"custom scheme", "com.example.spa://", false},
		{"custom scheme, bare", "com.example.spa:", false},
		{"another port", "https://spa.example.com:8443", false},
		{"plain http", "http://spa.example.com", false},
		{"stranger", "https://evil.example", false},
		{"opaque origin", "null", false},
	} {
		t.Run(tc.name, func(t *testing.T) { f.checkOrigin(t, tc.origin, tc.allowed) })
	}

	// Deleted through RFC 7592 here: gone at once.
	req := httptest.NewRequest(http.MethodDelete, spa.URI, nil)
	req.Header.Set("Authorization", "Bearer "+spa.RegAccess)
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("delete %s: %d %s", spa.ID, rec.Code, rec.Body)
	}
	f.checkOrigin(t, "https://spa.example.com", false)
	f.checkOrigin(t, "https://configured.example.com", true)
}

// TestCORSRegisteredOnAnotherReplica: a SPA another replica registers (it
// is only in the store) is allowed once the set is originsMissAge old, and
// a flood of strangers' origins costs one scan per originsMissAge; one it
// deletes loses CORS within originsHitAge.
func TestCORSRegisteredOnAnotherReplica(t *testing.T) {
	f := newCORSRegFixture(t)
	f.checkOrigin(t, "https://evil.example", false) // the first lookup loads
	f.storeClient(t, "elsewhere", "https://elsewhere.example.com/cb")

	before := f.store.count()
	for range 50 {
		if rec := f.preflight(pathToken, "https://evil.example"); rec.Code != http.StatusForbidden {
			t.Fatalf("stranger's preflight: %d", rec.Code)
		}
	}
	if n := f.store.count() - before; n != 0 {
		t.Errorf("50 strangers' preflights within %v of a reload scanned the clients %d times, want 0", originsMissAge, n)
	}
	f.clock.advance(originsMissAge)
	for range 50 {
		f.preflight(pathToken, "https://evil.example")
	}
	if n := f.store.count() - before; n != 1 {
		t.Errorf("50 strangers' preflights after %v scanned the clients %d times, want 1", originsMissAge, n)
	}
	f.checkOrigin(t, "https://elsewhere.example.com", true)

	if _, err := f.store.Store.DeleteClient(t.Context(), "elsewhere"); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(originsHitAge)
	f.checkOrigin(t, "https://elsewhere.example.com", false)
}

// TestCORSRegisteredStoreDown: a failed reload keeps the old set (a store
// outage allows no new origin and keeps the known ones), logs once per
// outage, and the next reload after the store is back takes the new ones.
func TestCORSRegisteredStoreDown(t *testing.T) {
	f := newCORSRegFixture(t)
	f.register(t, clients.AuthNone, "https://known.example.com/cb")
	f.checkOrigin(t, "https://known.example.com", true)

	f.store.mu.Lock()
	f.store.err = errStoreDown
	f.store.mu.Unlock()
	f.storeClient(t, "during", "https://during.example.com/cb")
	for range 3 {
		f.clock.advance(originsMissAge)
		f.checkOrigin(t, "https://during.example.com", false)
		f.checkOrigin(t, "https://known.example.com", true)
	}
	if n := strings.Count(f.logs.String(), "CORS origins of registered clients not reloaded"); n != 1 {
		t.Errorf("reload failures logged %d times, want once:\n%s", n, f.logs)
	}

	f.store.mu.Lock()
	f.store.err = nil
	f.store.mu.Unlock()
	f.clock.advance(originsMissAge)
	f.checkOrigin(t, "https://during.example.com", true)
	if !strings.Contains(f.logs.String(), "reloaded again") {
		t.Errorf("recovery not logged:\n%s", f.logs)
	}
}

// TestCORSRegisteredReloadDoesNotQueue: while one reload waits on the
// store, other lookups answer from the old set instead of waiting.
func TestCORSRegisteredReloadDoesNotQueue(t *testing.T) {
	f := newCORSRegFixture(t)
	f.register(t, clients.AuthNone, "https://known.example.com/cb")
	f.checkOrigin(t, "https://known.example.com", true)

	hold, enter := make(chan struct{}), make(chan struct{})
	f.store.mu.Lock()
	f.store.hold, f.store.enter = hold, enter
	f.store.mu.Unlock()
	f.clock.advance(originsMissAge)
	done := make(chan int, 1)
	go func() { done <- f.preflight(pathToken, "https://evil.example").Code }()
	<-enter // that preflight's reload is in the store now

	// A stranger would reload too, and a known origin is stale as well.
	// Queued, either would wait for close(hold) below: the bound only
	// turns that deadlock into a failure instead of the test's timeout.
	answer := func(origin string) int {
		t.Helper()
		got := make(chan int, 1)
		go func() { got <- f.preflight(pathToken, origin).Code }()
		select {
		case code := <-got:
			return code
		case <-time.After(10 * time.Second):
			close(hold)
			t.Fatalf("preflight from %s waited for the running reload", origin)
			return 0
		}
	}
	if code := answer("https://evil.example"); code != http.StatusForbidden {
		t.Errorf("stranger during a reload: %d, want 403", code)
	}
	f.clock.advance(originsHitAge)
	if code := answer("https://known.example.com"); code != http.StatusNoContent {
		t.Errorf("known origin during a reload: %d, want 204", code)
	}
	close(hold)
	if code := <-done; code != http.StatusForbidden {
		t.Errorf("stranger whose preflight reloaded: %d, want 403", code)
	}
}

// TestRegisteredOriginsOnlyPublicWebClients: what a stored registration
// gives, client by client.
func TestRegisteredOriginsOnlyPublicWebClients(t *testing.T) {
	o := newRegisteredOrigins(nil, map[string]*clients.Client{"taken": {ID: "taken"}}, slog.New(slog.DiscardHandler), time.Now)
	rec := func(id, method string, uris ...string) storage.Client {
		data, err := clients.EncodeRegistration(clients.Registration{Name: id, AuthMethod: method, RedirectURIs: uris})
		if err != nil {
			t.Fatal(err)
		}
		return storage.Client{ID: id, Data: data}
	}
	for _, tc := range []struct {
		name string
		rec  storage.Client
		want []string
	}{
		{"SPA", rec("spa", clients.AuthNone, "http://127.0.0.1:3000/callback", "HTTPS://SPA.example.com/cb?x=1"), []string{"http://127.0.0.1:3000", "https://spa.example.com"}},
		{"web app with a secret", rec("web", clients.AuthSecretBasic, "https://web.example.com/cb"), nil},
		{"native app", rec("native", clients.AuthNone, "com.example.app:/cb"), nil},
		{"hidden by a configured client", rec("taken", clients.AuthNone, "https://taken.example.com/cb"), nil},
		{"undecodable", storage.Client{ID: "bad", Data: []byte("{")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := o.originsOf(t.Context(), []storage.Client{tc.rec})
			if len(got) != len(tc.want) {
				t.Errorf("origins %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("origins %v lack %s", got, w)
				}
			}
		})
	}
}
