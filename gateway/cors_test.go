package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example"
)

// newCORSHarness: /search/v1 (read) and /billing (read write) with CORS
// for appOrigin, /open (public, CORS "*"), /cookies (CORS with
// credentials), /rude (CORS; a backend that sends its own CORS headers),
// /dead (CORS; nothing listens), /plain (no CORS; the rude backend).
func newCORSHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	rude := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Expose-Headers", "X-Secret")
		h.Add("Vary", "Accept-Encoding, Origin")
		h.Add("Vary", "origin")
		h.Set("X-Backend", "rude")
	}))
	t.Cleanup(rude.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	cors := &CORS{AllowedOrigins: []string{"http://localhost:3000", appOrigin}, AllowedHeaders: []string{"Content-Type", "authorization"},
		ExposedHeaders: []string{"X-Request-Id"}, MaxAge: 10 * time.Minute}
	return newHarness(t, func(c *Config) {
		c.Tiers = map[string]Tier{"one": {Requests: 1, Per: time.Hour}}
		c.Routes[0].CORS = cors
		c.Routes[1].CORS = cors
		c.Routes = append(c.Routes,
			Route{PathPrefix: "/open", Upstream: mustURL(h0(c)), Public: true, CORS: &CORS{AllowedOrigins: []string{"*"}}},
			Route{PathPrefix: "/cookies", Upstream: mustURL(h0(c)), CORS: &CORS{AllowedOrigins: []string{appOrigin}, AllowCredentials: true}},
			Route{PathPrefix: "/rude", Upstream: mustURL(rude.URL), Public: true, CORS: cors},
			Route{PathPrefix: "/plain", Upstream: mustURL(rude.URL), Public: true},
			Route{PathPrefix: "/dead", Upstream: mustURL(dead), Public: true, CORS: cors},
			Route{PathPrefix: "/limited", Upstream: mustURL(h0(c)), Public: true, Tier: "one", CORS: cors},
		)
		if mod != nil {
			mod(c)
		}
	})
}

// h0 is the echo backend's address, from the first route newHarness set.
func h0(c *Config) string { return c.Routes[2].Upstream.String() }

// corsHeaders is every Access-Control-* header of a response.
func corsHeaders(h http.Header) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = strings.Join(v, " | ")
		}
	}
	return out
}

func TestCORSPreflight(t *testing.T) {
	h := newCORSHarness(t, nil)
	allowed := map[string]string{
		"Access-Control-Allow-Origin":  appOrigin,
		"Access-Control-Allow-Methods": "GET",
		"Access-Control-Allow-Headers": "Authorization, Content-Type",
		"Access-Control-Max-Age":       "600",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range allowed {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		name   string
		path   string
		hdr    map[string]string
		status int
		cors   map[string]string // exactly the Access-Control-* headers expected
	}{
		{"allowed origin", "/search/v1/items", map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "GET",
			"Access-Control-Request-Headers": "authorization,content-type"}, 204, allowed},
		{"second allowed origin", "/billing", map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"},
			204, with("Access-Control-Allow-Origin", "http://localhost:3000")},
		{"method reflected", "/search/v1/items/7", map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "DELETE"},
			204, with("Access-Control-Allow-Methods", "DELETE")},
		{"wildcard route", "/open", map[string]string{"Origin": evilOrigin, "Access-Control-Request-Method": "PUT"}, 204,
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "PUT", "Access-Control-Allow-Headers": "Authorization"}},
		{"credentials", "/cookies", map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "POST"}, 204,
			map[string]string{"Access-Control-Allow-Origin": appOrigin, "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "Authorization"}},
		{"disallowed origin", "/search/v1/items", map[string]string{"Origin": evilOrigin, "Access-Control-Request-Method": "GET"}, 403, nil},
		{"origin differs in scheme", "/search/v1/items", map[string]string{"Origin": "http://app.example.com", "Access-Control-Request-Method": "GET"}, 403, nil},
		{"origin differs in port", "/search/v1/items", map[string]string{"Origin": appOrigin + ":8443", "Access-Control-Request-Method": "GET"}, 403, nil},
		{"null origin", "/search/v1/items", map[string]string{"Origin": "null", "Access-Control-Request-Method": "GET"}, 403, nil},
		{"non-standard method", "/search/v1/items", map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "PROPFIND"}, 403, nil},
		{"lower-case patch is not PATCH", "/search/v1/items", map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "patch"}, 403, nil},
		// Not preflights: ordinary requests, the token is checked.
		{"OPTIONS without Access-Control-Request-Method", "/search/v1/items", map[string]string{"Origin": appOrigin}, 401,
			map[string]string{"Access-Control-Allow-Origin": appOrigin,
				"Access-Control-Expose-Headers": "WWW-Authenticate, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id"}},
		{"OPTIONS without Origin", "/search/v1/items", map[string]string{"Access-Control-Request-Method": "GET"}, 401, nil},
		{"route without cors", "/plain", map[string]string{"Origin": appOrigin, "Access-Control-Request-Method": "GET"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "X-Secret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, h.srv.URL+tt.path, nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, body := h.do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			got := corsHeaders(resp.Header)
			if len(got) != len(tt.cors) {
				t.Errorf("CORS headers = %v\n          want %v", got, tt.cors)
			}
			for k, v := range tt.cors {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if tt.status == 204 {
				if len(body) != 0 {
					t.Errorf("preflight body %q", body)
				}
				if v := resp.Header.Get("Vary"); v != "Origin, Access-Control-Request-Method" {
					t.Errorf("preflight Vary = %q", v)
				}
			}
		})
	}
	// Only the "route without cors" OPTIONS reached a backend (the rude
	// one); no preflight was proxied or needed a token checked.
	if n := h.backend.hits.Load(); n != 0 {
		t.Errorf("%d preflights reached the backend", n)
	}
	if n := h.f.introspections.Load(); n != 0 {
		t.Errorf("%d introspections for requests without a token", n)
	}
}

func TestCORSActualRequests(t *testing.T) {
	h := newCORSHarness(t, nil)
	h.f.ccToken("read", "spa", "read", time.Now().Add(time.Hour))
	h.f.ccToken("other", "spa", "other", time.Now().Add(time.Hour))
	expose := "WWW-Authenticate, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, X-Request-Id"
	ours := map[string]string{"Access-Control-Allow-Origin": appOrigin, "Access-Control-Expose-Headers": expose}
	tests := []struct {
		name     string
		path     string
		token    string
		origin   string
		status   int
		cors     map[string]string
		backend  bool   // the request reached a backend
		vary     string // the whole Vary, joined
		wwwAuthn bool
	}{
		{"success", "/search/v1/x", "read", appOrigin, 200, ours, true, "Origin", false},
		{"no token", "/search/v1/x", "", appOrigin, 401, ours, false, "Origin", true},
		{"invalid token", "/search/v1/x", "garbage", appOrigin, 401, ours, false, "Origin", true},
		{"insufficient scope", "/billing/x", "read", appOrigin, 403, ours, false, "Origin", true},
		{"upstream down", "/dead", "", appOrigin, 502, ours, false, "Origin", false},
		// CORS is not authorization: a disallowed origin is served, the
		// browser just cannot read the answer.
		{"disallowed origin", "/search/v1/x", "read", evilOrigin, 200, nil, true, "Origin", false},
		{"disallowed origin, no token", "/search/v1/x", "", evilOrigin, 401, nil, false, "Origin", true},
		{"no Origin", "/search/v1/x", "read", "", 200, nil, true, "Origin", false},
		{"wildcard", "/open", "", evilOrigin, 200, map[string]string{"Access-Control-Allow-Origin": "*",
			"Access-Control-Expose-Headers": "WWW-Authenticate, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"}, true, "Origin", false},
		{"credentials", "/cookies", "", appOrigin, 401, map[string]string{"Access-Control-Allow-Origin": appOrigin,
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers":    "WWW-Authenticate, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"}, false, "Origin", true},
		{"backend CORS headers replaced", "/rude", "", appOrigin, 200, ours, true, "Origin | Accept-Encoding", false},
		{"backend CORS headers removed for a disallowed origin", "/rude", "", evilOrigin, 200, nil, true, "Origin | Accept-Encoding", false},
		{"route without cors keeps the backend's", "/plain", "", appOrigin, 200, map[string]string{"Access-Control-Allow-Origin": "*",
			"Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "X-Secret"}, true, "Accept-Encoding, Origin | origin", false},
		{"route without cors, gateway refusal", "/status/../x", "", appOrigin, 400, nil, false, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits := h.backend.hits.Load()
			req, _ := http.NewRequest(http.MethodGet, h.srv.URL+tt.path, nil)
			req.URL.Opaque = tt.path
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, body := h.do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			got := corsHeaders(resp.Header)
			if len(got) != len(tt.cors) {
				t.Errorf("CORS headers = %v\n          want %v", got, tt.cors)
			}
			for k, v := range tt.cors {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if v := strings.Join(resp.Header.Values("Vary"), " | "); v != tt.vary {
				t.Errorf("Vary = %q, want %q", v, tt.vary)
			}
			if (resp.Header.Get("WWW-Authenticate") != "") != tt.wwwAuthn {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			reached := h.backend.hits.Load() != hits || resp.Header.Get("X-Backend") != ""
			if reached != tt.backend {
				t.Errorf("reached a backend: %v, want %v", reached, tt.backend)
			}
			if tt.backend && strings.HasPrefix(tt.path, "/search") {
				if o := decodeEcho(t, body).Headers.Get("Origin"); o != tt.origin {
					t.Errorf("backend saw Origin %q, want %q", o, tt.origin)
				}
			}
		})
	}
}

// TestCORSRateLimited: the route's tier still applies to actual requests,
// and its 429 is readable by the page.
func TestCORSRateLimited(t *testing.T) {
	h := newCORSHarness(t, nil)
	hdr := map[string]string{"Origin": appOrigin}
	if resp, _ := h.get(t, "/limited", "", hdr); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	resp, _ := h.get(t, "/limited", "", hdr)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("429: status %d, CORS %v", resp.StatusCode, corsHeaders(resp.Header))
	}
	// Preflights do not spend the route's tier.
	req, _ := http.NewRequest(http.MethodOptions, h.srv.URL+"/limited", nil)
	req.Header.Set("Origin", appOrigin)
	req.Header.Set("Access-Control-Request-Method", "GET")
	if resp, _ := h.do(t, req); resp.StatusCode != http.StatusNoContent {
		t.Errorf("preflight on an exhausted tier: %d", resp.StatusCode)
	}
}

// TestCORSPreflightLimit: preflights are bounded per client address.
func TestCORSPreflightLimit(t *testing.T) {
	clock := newFakeClock()
	h := newCORSHarness(t, func(c *Config) { c.Now = clock.Now })
	preflight := func() *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, h.srv.URL+"/search/v1/x", nil)
		req.Header.Set("Origin", evilOrigin) // refused origins count too
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, _ := h.do(t, req)
		return resp
	}
	for i := range preflightLimit.Burst {
		if resp := preflight(); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("preflight %d: status %d", i, resp.StatusCode)
		}
	}
	resp := preflight()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" || len(corsHeaders(resp.Header)) != 0 {
		t.Errorf("over the limit: status %d, Retry-After %q, CORS %v", resp.StatusCode, resp.Header.Get("Retry-After"), corsHeaders(resp.Header))
	}
	clock.Advance(time.Second)
	if resp := preflight(); resp.StatusCode != http.StatusForbidden {
		t.Errorf("after refill: status %d", resp.StatusCode)
	}
	if n := h.backend.hits.Load(); n != 0 {
		t.Errorf("%d preflights reached the backend", n)
	}
}

func TestCheckOrigin(t *testing.T) {
	tests := []struct{ origin, err string }{
		{"https://app.example.com", ""},
		{"http://localhost:3000", ""},
		{"http://127.0.0.1:8080", ""},
		{"https://[2001:db8::1]", ""},
		{"https://xn--bcher-kva.example", ""},
		{"https://my_host.internal:8443", ""},
		{"", "origin is empty"},
		{"*", `"*" must be the only origin`},
		{"null", `the "null" origin`},
		{"https://*.example.com", "wildcards are not supported"},
		{"app.example.com", "is not an origin"},
		{"//app.example.com", "the scheme must be http or https"},
		{"ftp://app.example.com", "the scheme must be http or https"},
		{"https://app.example.com/", `an origin has no path, query or fragment; did you mean "https://app.example.com"?`},
		{"https://app.example.com/spa", `did you mean "https://app.example.com"?`},
		{"https://app.example.com?x", "an origin has no path, query or fragment"},
		{"https://app.example.com#x", "an origin has no path, query or fragment"},
		{"https://u:p@app.example.com", "an origin has no user info"},
		{"https://App.Example.com", `browsers send this origin as "https://app.example.com"`},
		{"HTTPS://app.example.com", `browsers send this origin as "https://app.example.com"`},
		{"https://app.example.com:443", `browsers send this origin as "https://app.example.com"`},
		{"http://app.example.com:80", `browsers send this origin as "http://app.example.com"`},
		{"https://app.example.com:0443", `browsers send this origin as "https://app.example.com"`},
		{"https://[2001:DB8:0::1]", `browsers send this origin as "https://[2001:db8::1]"`},
		{"https://app.example.com:", "the port is empty"},
		{"https://app.example.com:70000", "invalid port"},
		{"https://bücher.example", "not a valid host name"},
		{"https://-bad.example", "not a valid host name"},
		{"https://127.1", "not a valid host name"},
		{"https://app..example.com", "not a valid host name"},
	}
	for _, tt := range tests {
		err := CheckOrigin(tt.origin)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.origin, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want %q", tt.origin, err, tt.err)
		}
	}
}

// TestCORSConfigCheck: New refuses a hand-built CORS the loader would.
func TestCORSConfigCheck(t *testing.T) {
	f := newFakeAuth(t)
	tests := []struct {
		name string
		cors CORS
		want string
	}{
		{"no origins", CORS{}, "config: routes[0].cors.allowed_origins: at least one origin is required"},
		{"bad origin", CORS{AllowedOrigins: []string{appOrigin, "https://app.example.com/"}}, "config: routes[0].cors.allowed_origins[1]: "},
		{"twice", CORS{AllowedOrigins: []string{appOrigin, appOrigin}}, `allowed_origins[1]: "https://app.example.com" is already listed as allowed_origins[0]`},
		{"wildcard and credentials", CORS{AllowedOrigins: []string{"*"}, AllowCredentials: true}, `routes[0].cors.allow_credentials: cannot be true with the origin "*"`},
		{"wildcard among others", CORS{AllowedOrigins: []string{appOrigin, "*"}}, `allowed_origins[1]: "*" allows every origin`},
		{"header", CORS{AllowedOrigins: []string{appOrigin}, AllowedHeaders: []string{"X Y"}}, `allowed_headers[0]: header name "X Y"`},
		{"exposed wildcard", CORS{AllowedOrigins: []string{appOrigin}, ExposedHeaders: []string{"*"}}, "exposed_headers[0]: wildcards are not supported"},
		{"max_age negative", CORS{AllowedOrigins: []string{appOrigin}, MaxAge: -time.Second}, "max_age: must be at least 0s, got -1s"},
		{"max_age too long", CORS{AllowedOrigins: []string{appOrigin}, MaxAge: 25 * time.Hour}, "max_age: must be at most 24h0m0s"},
		{"max_age fraction", CORS{AllowedOrigins: []string{appOrigin}, MaxAge: 1500 * time.Millisecond}, "max_age: is sent in whole seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config("http://127.0.0.1:1")
			cors := tt.cors
			cfg.Routes[0].CORS = &cors
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestStripBackendCORS(t *testing.T) {
	h := http.Header{
		"Access-Control-Allow-Origin":  {"*"},
		"Access-Control-Max-Age":       {"86400"},
		"access-control-allow-methods": {"DELETE"},
		"Vary":                         {"Origin", "Accept-Encoding,origin , Accept-Language"},
		"X-Other":                      {"kept"},
	}
	stripBackendCORS(h)
	if len(h) != 2 || h.Get("X-Other") != "kept" || strings.Join(h["Vary"], "|") != "Accept-Encoding, Accept-Language" {
		t.Errorf("after strip: %v", h)
	}
	h = http.Header{"Vary": {"Origin"}}
	stripBackendCORS(h)
	if _, ok := h["Vary"]; ok {
		t.Errorf("empty Vary kept: %v", h)
	}
}
