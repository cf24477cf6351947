package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoed is what the test backend saw.
type echoed struct {
	Path    string
	RawPath string
	Query   string
	Host    string
	Headers http.Header
}

type echoBackend struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newEchoBackend(t *testing.T) *echoBackend {
	b := &echoBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("RateLimit-Remaining", "999") // must not reach the client
		json.NewEncoder(w).Encode(echoed{Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Host: r.Host, Headers: r.Header})
	}))
	t.Cleanup(b.srv.Close)
	return b
}

type harness struct {
	f       *fakeAuth
	backend *echoBackend
	gw      *Gateway
	srv     *httptest.Server
}

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{f: newFakeAuth(t), backend: newEchoBackend(t)}
	cfg := h.f.config(h.backend.srv.URL)
	cfg.Routes = []Route{
		{PathPrefix: "/search/v1", Upstream: mustURL(h.backend.srv.URL), StripPrefix: true, Scopes: []string{"read"}},
		{PathPrefix: "/billing", Upstream: mustURL(h.backend.srv.URL + "/internal"), Scopes: []string{"read", "write"}},
		{PathPrefix: "/status", Upstream: mustURL(h.backend.srv.URL), Public: true},
	}
	if mod != nil {
		mod(&cfg)
	}
	h.gw = newTestGateway(t, cfg)
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (h *harness) get(t *testing.T, path, token string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return h.do(t, req)
}

func decodeEcho(t *testing.T, body []byte) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("backend answer is not JSON: %q", body)
	}
	return e
}

func TestProxyIdentityHeaders(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ClaimHeaders = map[string]string{"email": "X-Authenticated-Email"} })
	h.f.ccToken("cc", "billing", "read write", time.Now().Add(time.Hour))
	h.f.setToken("user", map[string]any{"active": true, "client_id": "spa", "sub": "alice", "scope": "read", "email": "alice@example.com"})

	resp, body := h.get(t, "/search/v1/query?q=tax", "cc", map[string]string{
		"X-Authenticated-Userid":    "mallory",
		"X_Authenticated_Userid":    "mallory",
		"x-authenticated-scope":     "admin",
		"X-Authenticated-Email":     "forged@example.com",
		"Forwarded":                 "proto=https;host=evil.example",
		"X-Forwarded-Host":          "evil.example",
		"X-Forwarded-Prefix":        "/evil",
		"Connection":                "X-Authenticated-Client-Id",
		"X-Authenticated-Client-Id": "mallory",
		"X-Authenticated-Tier":      "platinum",
		"X_Authenticated_Tier":      "platinum",
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	e := decodeEcho(t, body)
	if e.Path != "/query" || e.Query != "q=tax" {
		t.Errorf("backend path = %q?%q, want /query?q=tax", e.Path, e.Query)
	}
	want := map[string]string{
		"X-Authenticated-Client-Id": "billing",
		"X-Authenticated-Scope":     "read write",
		"Forwarded":                 "proto=http;host=127.0.0.1;port=" + port(h.srv.URL) + ";prefix=/search/v1",
	}
	for k, v := range want {
		if got := e.Headers.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	for _, k := range []string{"X-Authenticated-Userid", "X_authenticated_userid", "X-Authenticated-Tier", "X_authenticated_tier", "X-Authenticated-Email", "Authorization", "X-Forwarded-Host", "X-Forwarded-Prefix", "X-Forwarded-For"} {
		if v, ok := e.Headers[k]; ok {
			t.Errorf("backend received %s: %q", k, v)
		}
	}
	if got := resp.Header.Get("RateLimit-Remaining"); got != "999" {
		t.Errorf("backend headers on a route without tier: RateLimit-Remaining = %q", got)
	}

	_, body = h.get(t, "/search/v1/", "user", nil)
	e = decodeEcho(t, body)
	if e.Headers.Get("X-Authenticated-Userid") != "alice" || e.Headers.Get("X-Authenticated-Client-Id") != "spa" ||
		e.Headers.Get("X-Authenticated-Email") != "alice@example.com" {
		t.Errorf("user token headers = %v", e.Headers)
	}
}

func TestProxyPaths(t *testing.T) {
	h := newHarness(t, nil)
	h.f.ccToken("cc", "billing", "read write", time.Now().Add(time.Hour))
	tests := []struct{ path, wantPath, wantRaw string }{
		{"/billing/invoices/7", "/internal/billing/invoices/7", ""},
		{"/search/v1", "/", ""},
		{"/search/v1/a%2Fb", "/a/b", "/a%2Fb"},
		{"/search/v1/caf%C3%A9", "/café", ""},
	}
	for _, tt := range tests {
		resp, body := h.get(t, tt.path, "cc", nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", tt.path, resp.StatusCode)
			continue
		}
		e := decodeEcho(t, body)
		if e.Path != tt.wantPath || e.RawPath != tt.wantRaw {
			t.Errorf("%s: backend got %q (raw %q), want %q (raw %q)", tt.path, e.Path, e.RawPath, tt.wantPath, tt.wantRaw)
		}
		if fw := e.Headers.Get("Forwarded"); strings.HasPrefix(tt.path, "/billing") && strings.Contains(fw, "prefix=") {
			t.Errorf("%s: prefix= without strip_prefix: %s", tt.path, fw)
		}
	}
}

func TestProxyRejections(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PublicURL = mustURL("https://api.example.com") })
	h.f.ccToken("read-only", "billing", "read", time.Now().Add(time.Hour))
	const realm = `Bearer realm="api.example.com"`
	tests := []struct {
		name      string
		path      string
		auth      string
		status    int
		challenge string
	}{
		{"no token", "/search/v1/x", "", 401, realm},
		{"basic credentials are not a bearer token", "/search/v1/x", "Basic YTpi", 401, realm},
		{"token in the query string is ignored", "/search/v1/x?access_token=read-only", "", 401, realm},
		{"garbage token", "/search/v1/x", "Bearer garbage", 401, realm + `, error="invalid_token"`},
		{"malformed header", "/search/v1/x", "Bearer a b", 400, realm + `, error="invalid_request"`},
		{"missing scope", "/billing/x", "Bearer read-only", 403, realm + `, error="insufficient_scope", scope="read write"`},
		{"no route", "/nowhere", "Bearer read-only", 404, ""},
		{"dot segments", "/status/../search/v1/x", "", 400, ""},
		{"encoded dot segments", "/status/%2e%2e/search/v1/x", "", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.srv.URL+tt.path, nil)
			req.URL.Opaque = tt.path // keep dot segments as sent
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, body := h.do(t, req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q\n                      want %q", got, tt.challenge)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
	if n := h.backend.hits.Load(); n != 0 {
		t.Errorf("%d rejected requests reached the backend", n)
	}
	resp, _ := h.get(t, "/healthz", "", nil)
	if resp.StatusCode != 200 || h.backend.hits.Load() != 0 {
		t.Errorf("/healthz: status %d, backend hits %d", resp.StatusCode, h.backend.hits.Load())
	}
}

// TestProxyPathSpellings: with /api public and /api/admin needing a
// scope, no spelling of a path may reach /api/admin's resources through
// the public route. Path parameters (";", raw or %3B) are refused outright,
// since Tomcat, Jetty and Spring drop them; an encoded slash is refused
// where it would split the route prefix differently for the gateway and
// the backend; encoded dot segments decode to dot segments and are
// refused. Every refusal is the gateway's own 400, never proxied.
func TestProxyPathSpellings(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		backend := c.Routes[0].Upstream // the echo backend
		c.Routes = []Route{
			{PathPrefix: "/api", Upstream: backend, Public: true},
			{PathPrefix: "/api/admin", Upstream: backend, Scopes: []string{"write"}},
		}
	})
	tests := []struct {
		path              string
		status            int
		wantPath, wantRaw string // what the backend decoded and (if not the default escaping) received, for 200
	}{
		// The reported bypass and its variants.
		{"/api/admin;x/users", 400, "", ""},
		{"/api/admin;/users", 400, "", ""},
		{"/api/admin%3Bx/users", 400, "", ""},
		{"/api/admin%3bx/users", 400, "", ""},
		{"/api/admin%3B/users", 400, "", ""},
		{"/api;x/admin/users", 400, "", ""},
		{"/api%3Bx/admin/users", 400, "", ""},
		{"/api/admin/users;jsessionid=1", 400, "", ""},
		{"/api/users;x", 400, "", ""},
		{"/api/admin/..;/users", 400, "", ""},
		{"/api/%2e%2e;/admin/users", 400, "", ""},
		// Encoded slashes inside the route prefix.
		{"/api%2Fadmin/users", 400, "", ""},
		{"/api%2fadmin/users", 400, "", ""},
		{"/api/admin%2Fusers", 400, "", ""},
		{"/api%2Fusers", 400, "", ""},
		// Encoded dot segments and backslashes.
		{"/api/x/%2E%2E/admin/users", 400, "", ""},
		{"/api/x/%2e%2e/admin/users", 400, "", ""},
		{"/api/x/.%2E/admin/users", 400, "", ""},
		{"/api/%2E/admin/users", 400, "", ""},
		{"/api/x%2F..%2Fadmin/users", 400, "", ""},
		{"/api/x%5C..%5Cadmin/users", 400, "", ""},
		// Accepted: nothing the backend could read differently.
		{"/api/users", 200, "/api/users", ""},
		{"/api/users/a%2Fb", 200, "/api/users/a/b", "/api/users/a%2Fb"}, // encoded slash after the prefix passes unchanged
		{"/api/file%2Ejson", 200, "/api/file.json", "/api/file%2Ejson"}, // %2E is '.', any backend decodes it alike
		{"/api/admin%253Bx", 200, "/api/admin%3Bx", ""},                 // double-encoded: a literal "%3B" after one decoding
		{"/api/admin/users", 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			hits := h.backend.hits.Load()
			req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/", nil)
			req.URL.Opaque = tt.path // sent exactly as written
			resp, body := h.do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				if h.backend.hits.Load() != hits {
					t.Errorf("refused request reached the backend")
				}
				if tt.status == 400 && !strings.Contains(string(body), `"invalid_request"`) {
					t.Errorf("body = %s, want invalid_request", body)
				}
				return
			}
			if e := decodeEcho(t, body); e.Path != tt.wantPath || e.RawPath != tt.wantRaw {
				t.Errorf("backend got %q (raw %q), want %q (raw %q)", e.Path, e.RawPath, tt.wantPath, tt.wantRaw)
			}
		})
	}
}

// TestProxyEncodedSlashPublicChild: with /api needing a token and
// /api/public public, "/api%2Fpublic/secret" matches the public route on
// the decoded path, while a backend that keeps %2F as data routes on a
// first segment "api%2Fpublic" the gateway never checked. It is refused,
// not proxied; an encoded slash after the prefix still passes.
func TestProxyEncodedSlashPublicChild(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		backend := c.Routes[0].Upstream
		c.Routes = []Route{
			{PathPrefix: "/api", Upstream: backend, Scopes: []string{"read"}},
			{PathPrefix: "/api/public", Upstream: backend, Public: true},
		}
	})
	for _, p := range []string{"/api%2Fpublic/secret", "/api%2fpublic", "/api/public%2Fsecret"} {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/", nil)
		req.URL.Opaque = p
		if resp, body := h.do(t, req); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", p, resp.StatusCode, body)
		}
	}
	if n := h.backend.hits.Load(); n != 0 {
		t.Errorf("%d refused requests reached the backend", n)
	}
	if resp, _ := h.get(t, "/api/public/a%2Fb", "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("encoded slash after the public prefix: status %d, want 200", resp.StatusCode)
	}
}

func TestProxyPublicRoute(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.get(t, "/status/ping", "", map[string]string{"X-Authenticated-Userid": "mallory", "Authorization": "Bearer whatever"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("public route: status %d", resp.StatusCode)
	}
	e := decodeEcho(t, body)
	if e.Path != "/status/ping" || e.Headers.Get("X-Authenticated-Userid") != "" || e.Headers.Get("Authorization") != "" {
		t.Errorf("public route: backend saw %+v", e)
	}
	if n := h.f.introspections.Load(); n != 0 {
		t.Errorf("public route caused %d introspections", n)
	}
}

func TestProxyForwardAuthorizationAndBasic(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Routes[0].ForwardAuthorization = true
		c.Routes[1].BasicAuth = &BasicAuth{Username: "gw", Password: "p@ss"}
	})
	h.f.ccToken("cc", "billing", "read write", time.Now().Add(time.Hour))
	_, body := h.get(t, "/search/v1/x", "cc", nil)
	if got := decodeEcho(t, body).Headers.Get("Authorization"); got != "Bearer cc" {
		t.Errorf("forward_authorization: backend Authorization = %q", got)
	}
	_, body = h.get(t, "/billing/x", "cc", nil)
	req := &http.Request{Header: http.Header{"Authorization": decodeEcho(t, body).Headers["Authorization"]}}
	if u, p, ok := req.BasicAuth(); !ok || u != "gw" || p != "p@ss" {
		t.Errorf("upstream basic auth: %q %q %v", u, p, ok)
	}
}

func TestProxyRateLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Tiers = map[string]Tier{"bronze": {Requests: 2, Per: time.Hour}, "gold": {Requests: 100, Per: time.Hour}}
		c.ClientTiers = map[string]string{"vip": "gold"}
		c.Routes[0].Tier = "bronze"
		c.Routes[2].Tier = "bronze"
	})
	h.f.ccToken("cc", "billing", "read", time.Now().Add(time.Hour))
	h.f.ccToken("vip", "vip", "read", time.Now().Add(time.Hour))
	for i := range 2 {
		resp, _ := h.get(t, "/search/v1/x", "cc", nil)
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "2" || resp.Header.Get("RateLimit-Remaining") != []string{"1", "0"}[i] {
			t.Fatalf("request %d: status %d, RateLimit-* %q %q", i, resp.StatusCode, resp.Header.Get("RateLimit-Limit"), resp.Header.Get("RateLimit-Remaining"))
		}
		if v := resp.Header.Values("RateLimit-Remaining"); len(v) != 1 {
			t.Errorf("backend's RateLimit-Remaining leaked through: %q", v)
		}
	}
	hits := h.backend.hits.Load()
	resp, body := h.get(t, "/search/v1/x", "cc", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || resp.Header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("over the limit: status %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if h.backend.hits.Load() != hits {
		t.Error("a rate-limited request reached the backend")
	}
	for range 3 {
		if resp, _ := h.get(t, "/search/v1/x", "vip", nil); resp.StatusCode != 200 || resp.Header.Get("RateLimit-Limit") != "100" {
			t.Errorf("client with its own tier: status %d, limit %q", resp.StatusCode, resp.Header.Get("RateLimit-Limit"))
		}
	}
	// Public routes limit by client address.
	for i := range 3 {
		resp, _ := h.get(t, "/status", "", nil)
		if want := []int{200, 200, 429}[i]; resp.StatusCode != want {
			t.Errorf("public request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
}

func TestProxyAuthServerDown(t *testing.T) {
	h := newHarness(t, nil)
	h.f.ccToken("cached", "billing", "read", time.Now().Add(time.Hour))
	if resp, _ := h.get(t, "/search/v1/x", "cached", nil); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h.f.srv.Close()
	if resp, _ := h.get(t, "/search/v1/x", "cached", nil); resp.StatusCode != 200 {
		t.Errorf("cached token, server down: status %d", resp.StatusCode)
	}
	hits := h.backend.hits.Load()
	resp, body := h.get(t, "/search/v1/x", "uncached", nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("uncached token, server down: status %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if h.backend.hits.Load() != hits {
		t.Error("request reached the backend without a checked token (fail open)")
	}
}

func TestProxyUpstreamErrors(t *testing.T) {
	// A port that refuses connections: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	h := newHarness(t, func(c *Config) {
		c.Routes = append(c.Routes,
			Route{PathPrefix: "/dead", Upstream: mustURL(dead), Public: true},
			Route{PathPrefix: "/slow", Upstream: mustURL(slow.URL), Public: true, Timeout: 50 * time.Millisecond})
	})
	resp, body := h.get(t, "/dead", "", nil)
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(string(body), "127.0.0.1") {
		t.Errorf("upstream down: status %d, body %s", resp.StatusCode, body)
	}
	resp, body = h.get(t, "/slow", "", nil)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("upstream timeout: status %d, body %s", resp.StatusCode, body)
	}
}

// TestProxyStreaming: a chunk the backend flushes reaches the client
// while the backend is still writing.
func TestProxyStreaming(t *testing.T) {
	next := make(chan struct{})
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "data: two\n\n")
	}))
	defer stream.Close()
	h := newHarness(t, func(c *Config) {
		c.Routes = append(c.Routes, Route{PathPrefix: "/events", Upstream: mustURL(stream.URL), Public: true})
	})
	resp, err := h.srv.Client().Get(h.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event = %q, %v", line, err)
	}
	close(next) // only now may the backend finish
	rest, _ := io.ReadAll(r)
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest = %q", rest)
	}
}

// TestProxyUpgrade: a protocol upgrade (as WebSocket uses) passes through
// and the connection then carries bytes both ways.
func TestProxyUpgrade(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" || r.Header.Get("X-Authenticated-Client-Id") != "billing" {
			http.Error(w, "want an authenticated upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	}))
	defer up.Close()
	h := newHarness(t, func(c *Config) {
		c.Routes = append(c.Routes, Route{PathPrefix: "/ws", Upstream: mustURL(up.URL)})
	})
	h.f.ccToken("cc", "billing", "read", time.Now().Add(time.Hour))

	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cc\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: status %d: %s", resp.StatusCode, body)
	}
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Errorf("after upgrade: %q, %v", line, err)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, nil)
	h.f.ccToken("cc", "billing", "read", time.Now().Add(time.Hour))
	h.get(t, "/search/v1/x", "cc", nil)
	h.get(t, "/search/v1/x", "cc", nil)
	rec := httptest.NewRecorder()
	h.gw.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		`postern_gateway_requests_total{client_id="billing",code="200",route="/search/v1"} 2`,
		`postern_gateway_token_cache_total{result="hit"} 1`,
		`postern_gateway_token_cache_total{result="miss"} 1`,
		`postern_gateway_introspection_duration_seconds_count{outcome="active"} 1`,
		`postern_gateway_upstream_duration_seconds_count{route="/search/v1"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func port(u string) string {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
	return p
}

// A gateway of public routes alone needs no authorization server: it starts
// without an issuer, warms up without one, and serves.
func TestPublicOnlyGateway(t *testing.T) {
	b := newEchoBackend(t)
	gw, err := New(Config{Routes: []Route{{PathPrefix: "/status", Upstream: mustURL(b.srv.URL), Public: true}}})
	if err != nil {
		t.Fatalf("New without issuer for public routes: %v", err)
	}
	defer gw.Close()
	if err := gw.Warm(context.Background()); err != nil {
		t.Errorf("Warm: %v", err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/status/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || b.hits.Load() != 1 {
		t.Errorf("public-only gateway: status %d, backend hits %d", resp.StatusCode, b.hits.Load())
	}
	// A route that checks tokens still needs the issuer.
	if _, err := New(Config{ClientID: "gw", ClientSecret: "s", Routes: []Route{{PathPrefix: "/api", Upstream: mustURL(b.srv.URL)}}}); err == nil || !strings.Contains(err.Error(), "issuer: is required") {
		t.Errorf("protected route without issuer: %v", err)
	}
}

// A client that gives up while its token is being checked is not an outage
// of the authorization server: no warning, no 503.
func TestClientGoneDuringValidation(t *testing.T) {
	var authURL string
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			json.NewEncoder(w).Encode(map[string]string{"issuer": authURL, "introspection_endpoint": authURL + "/introspect", "jwks_uri": authURL + "/jwks"})
			return
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		// Hang: the gateway's check outlives its client on purpose.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer auth.Close()
	defer close(release) // runs first: lets the hanging handler end
	authURL = auth.URL
	b := newEchoBackend(t)
	var logs strings.Builder
	var mu sync.Mutex
	gw, err := New(Config{Issuer: authURL, ClientID: "gw", ClientSecret: "s",
		Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) }), nil)),
		Routes: []Route{{PathPrefix: "/api", Upstream: mustURL(b.srv.URL)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/api/x", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer some-opaque-token")
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { gw.ServeHTTP(rec, req); close(done) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the introspection never started")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not give up when its client left")
	}
	mu.Lock()
	defer mu.Unlock()
	if rec.Code == http.StatusServiceUnavailable || strings.Contains(logs.String(), "cannot validate token") {
		t.Errorf("a departed client was reported as an outage: status %d, log %q", rec.Code, logs.String())
	}
	if b.hits.Load() != 0 {
		t.Error("the request reached the backend")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestQueryToken: the backend never sees a token. A token in both the
// Authorization header and the query is two methods (RFC 6750 §2), refused
// with 400 invalid_request; an access_token query parameter is never
// passed on, on public routes either.
func TestQueryToken(t *testing.T) {
	h := newHarness(t, nil)
	h.f.ccToken("cc", "billing", "read write", time.Now().Add(time.Hour))
	const realm = `Bearer realm="postern"`
	tests := []struct {
		name      string
		path      string
		token     string
		status    int
		challenge string
		query     string // what the backend receives, when proxied
	}{
		{name: "header and query", path: "/search/v1/x?access_token=cc", token: "cc", status: 400, challenge: realm + `, error="invalid_request"`},
		{name: "header and another query token", path: "/search/v1/x?q=1&access_token=other", token: "cc", status: 400, challenge: realm + `, error="invalid_request"`},
		{name: "header and an encoded name", path: "/search/v1/x?access%5Ftoken=cc", token: "cc", status: 400, challenge: realm + `, error="invalid_request"`},
		{name: "query alone is no token", path: "/search/v1/x?access_token=cc", status: 401, challenge: realm},
		{name: "header alone", path: "/search/v1/x?q=tax", token: "cc", status: 200, query: "q=tax"},
		{name: "public route strips it", path: "/status?q=tax&access_token=cc&r=1", status: 200, query: "q=tax&r=1"},
		{name: "public route, only the token", path: "/status?access_token=cc", status: 200, query: ""},
		{name: "public route, header and query", path: "/status?access_token=cc", token: "cc", status: 200, query: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits := h.backend.hits.Load()
			resp, body := h.get(t, tt.path, tt.token, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			if tt.status != 200 {
				if h.backend.hits.Load() != hits {
					t.Error("the refused request reached the backend")
				}
				return
			}
			if e := decodeEcho(t, body); e.Query != tt.query {
				t.Errorf("backend query = %q, want %q", e.Query, tt.query)
			}
		})
	}
}

// With public_url, the backend is told the operator's URL on every route,
// its path joined with what strip_prefix removed, whatever the request's
// Host and forwarding headers say.
func TestProxyForwardedFromPublicURL(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PublicURL = mustURL("https://api.example.com:8443/edge") })
	h.f.ccToken("rw", "billing", "read write", time.Now().Add(time.Hour))
	spoof := map[string]string{"X-Forwarded-Host": "evil.example", "Forwarded": "host=evil.example;proto=http"}
	for path, want := range map[string]string{
		"/search/v1/x": "proto=https;host=api.example.com;port=8443;prefix=/edge/search/v1",
		"/billing/x":   "proto=https;host=api.example.com;port=8443;prefix=/edge",
		"/status":      "proto=https;host=api.example.com;port=8443;prefix=/edge",
	} {
		resp, body := h.get(t, path, "rw", spoof)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		if got := decodeEcho(t, body).Headers.Values("Forwarded"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: backend got Forwarded %q, want %q", path, got, want)
		}
	}
}
