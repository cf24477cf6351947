package gateway

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestForwardedHeader(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	type req struct {
		remote  string
		host    string
		tls     bool
		headers map[string]string
	}
	tests := []struct {
		name        string
		publicURL   string
		trusted     []netip.Prefix
		header      string // Config.ForwardedHeader; "" is x-forwarded
		req         req
		routePrefix string
		want        string
	}{
		{name: "direct, non-default port",
			req: req{remote: "192.0.2.1:5000", host: "127.0.0.1:8080"}, routePrefix: "/search/v1",
			want: "proto=http;host=127.0.0.1;port=8080;prefix=/search/v1"},
		{name: "direct, default http port",
			req:  req{remote: "192.0.2.1:5000", host: "api.example.com"},
			want: "proto=http;host=api.example.com"},
		{name: "direct, explicit :80 is default",
			req:  req{remote: "192.0.2.1:5000", host: "api.example.com:80"},
			want: "proto=http;host=api.example.com"},
		{name: "direct TLS, :443 is default",
			req: req{remote: "192.0.2.1:5000", host: "api.example.com:443", tls: true}, routePrefix: "/v1",
			want: "proto=https;host=api.example.com;prefix=/v1"},
		{name: "direct TLS, :80 is not default for https",
			req:  req{remote: "192.0.2.1:5000", host: "api.example.com:80", tls: true},
			want: "proto=https;host=api.example.com;port=80"},
		{name: "public_url wins over the request",
			publicURL: "https://api.example.com",
			req:       req{remote: "192.0.2.1:5000", host: "127.0.0.1:8080"}, routePrefix: "/search/v1",
			want: "proto=https;host=api.example.com;prefix=/search/v1"},
		{name: "public_url with a non-default port",
			publicURL: "https://API.example.com:8443",
			req:       req{remote: "192.0.2.1:5000", host: "127.0.0.1:8080"}, routePrefix: "/search/v1",
			want: "proto=https;host=api.example.com;port=8443;prefix=/search/v1"},
		{name: "public_url with a path prefix",
			publicURL: "https://api.example.com/gw/",
			req:       req{remote: "10.1.1.1:5000", host: "x", headers: map[string]string{"X-Forwarded-Host": "evil.example"}}, trusted: trusted,
			routePrefix: "/search/v1",
			want:        "proto=https;host=api.example.com;prefix=/gw/search/v1"},
		{name: "untrusted peer's forwarding headers are ignored",
			req: req{remote: "192.0.2.1:5000", host: "127.0.0.1:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "Forwarded": "proto=https;host=evil.example",
			}}, trusted: trusted,
			want: "proto=http;host=127.0.0.1;port=8080"},
		{name: "trusted proxy X-Forwarded-*",
			req: req{remote: "10.0.0.5:5000", host: "gw.internal:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com",
			}}, trusted: trusted, routePrefix: "/search/v1",
			want: "proto=https;host=api.example.com;prefix=/search/v1"},
		{name: "trusted proxy X-Forwarded-Host with port",
			req: req{remote: "10.0.0.5:5000", host: "gw.internal:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com:8443",
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com;port=8443"},
		{name: "trusted proxy X-Forwarded-Port default is dropped",
			req: req{remote: "10.0.0.5:5000", host: "gw.internal:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Port": "443",
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com"},
		{name: "trusted proxy: rightmost X-Forwarded values win",
			req: req{remote: "10.0.0.5:5000", host: "gw.internal:8080", headers: map[string]string{
				"X-Forwarded-Proto": "http, https", "X-Forwarded-Host": "evil.example, api.example.com",
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com"},
		{name: "trusted proxy prefix is kept before the route prefix",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com", "X-Forwarded-Prefix": "/api/",
			}}, trusted: trusted, routePrefix: "/search/v1",
			want: "proto=https;host=api.example.com;prefix=/api/search/v1"},
		{name: "trusted proxy garbage is ignored",
			req: req{remote: "10.0.0.5:5000", host: "gw:8080", headers: map[string]string{
				"X-Forwarded-Proto": "gopher", "X-Forwarded-Host": `api.example.com"; x=`, "X-Forwarded-Prefix": "/a/../b",
			}}, trusted: trusted,
			want: "proto=http;host=gw;port=8080"},
		{name: "forwarded mode: trusted proxy Forwarded",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=192.0.2.60;proto=https;host="api.example.com:8443"`,
			}}, trusted: trusted, header: ForwardedHeaderRFC7239,
			want: "proto=https;host=api.example.com;port=8443"},
		{name: "forwarded mode: trusted proxy prefix",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=192.0.2.60;proto=https;host=api.example.com;prefix=/api`,
			}}, trusted: trusted, header: ForwardedHeaderRFC7239, routePrefix: "/v1",
			want: "proto=https;host=api.example.com;prefix=/api/v1"},
		{name: "forwarded mode: Forwarded chain, client-forged leftmost element is skipped",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=1.2.3.4;proto=http;host=evil.example, for=192.0.2.60;proto=https;host=api.example.com`,
			}}, trusted: trusted, header: ForwardedHeaderRFC7239,
			want: "proto=https;host=api.example.com"},
		{name: "forwarded mode: Forwarded chain through two trusted proxies",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=192.0.2.60;proto=https;host=api.example.com, for=10.0.0.9;proto=http;host=lb.internal`,
			}}, trusted: trusted, header: ForwardedHeaderRFC7239,
			want: "proto=https;host=api.example.com"},

		// Both families present: only the configured one counts. The
		// other is what the client sent, passed through by the proxy.
		{name: "x-forwarded mode, trusted peer, both families: client's Forwarded is ignored",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com",
				"Forwarded": `for=6.6.6.6;proto=http;host=evil.example;port=81;prefix=/evil`,
			}}, trusted: trusted, routePrefix: "/v1",
			want: "proto=https;host=api.example.com;prefix=/v1"},
		{name: "explicit x-forwarded mode, trusted peer, both families",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com",
				"Forwarded": `proto=http;host=evil.example`,
			}}, trusted: trusted, header: ForwardedHeaderX,
			want: "proto=https;host=api.example.com"},
		{name: "x-forwarded mode, trusted peer, only a client Forwarded: the request itself",
			req: req{remote: "10.0.0.5:5000", host: "gw:8080", headers: map[string]string{
				"Forwarded": `proto=https;host=evil.example;prefix=/evil`,
			}}, trusted: trusted, routePrefix: "/v1",
			want: "proto=http;host=gw;port=8080;prefix=/v1"},
		{name: "x-forwarded mode, untrusted peer, both families",
			req: req{remote: "192.0.2.1:5000", host: "gw:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
				"Forwarded": `proto=https;host=evil.example`,
			}}, trusted: trusted,
			want: "proto=http;host=gw;port=8080"},
		{name: "forwarded mode, trusted peer, both families: client's X-Forwarded-* is ignored",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded":         `for=192.0.2.60;proto=https;host=api.example.com`,
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "81", "X-Forwarded-Prefix": "/evil",
			}}, trusted: trusted, header: ForwardedHeaderRFC7239, routePrefix: "/v1",
			want: "proto=https;host=api.example.com;prefix=/v1"},
		{name: "forwarded mode, trusted peer, only client X-Forwarded-*: the request itself",
			req: req{remote: "10.0.0.5:5000", host: "gw:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "/evil",
			}}, trusted: trusted, header: ForwardedHeaderRFC7239,
			want: "proto=http;host=gw;port=8080"},
		{name: "forwarded mode, untrusted peer, both families",
			req: req{remote: "192.0.2.1:5000", host: "gw:8080", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
				"Forwarded": `proto=https;host=evil.example`,
			}}, trusted: trusted, header: ForwardedHeaderRFC7239,
			want: "proto=http;host=gw;port=8080"},
		{name: "public_url wins in forwarded mode too",
			publicURL: "https://api.example.com",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `proto=http;host=evil.example`,
			}}, trusted: trusted, header: ForwardedHeaderRFC7239,
			want: "proto=https;host=api.example.com"},
		{name: "trusted IPv6 peer",
			req: req{remote: "[2001:db8::5]:5000", host: "gw", headers: map[string]string{
				"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com",
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com"},
		{name: "IPv6 host is quoted",
			req:  req{remote: "[::1]:5000", host: "[::1]:8080"},
			want: `proto=http;host="[::1]";port=8080`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pub *url.URL
			if tt.publicURL != "" {
				pub = mustURL(tt.publicURL)
			}
			p := mustPolicy(t, pub, tt.trusted, tt.header)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr, r.Host = tt.req.remote, tt.req.host
			if tt.req.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tt.req.headers {
				r.Header.Set(k, v)
			}
			v, err := p.view(r)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := v.header(tt.routePrefix); got != tt.want || err != nil {
				t.Errorf("Forwarded = %q, %v\n           want %q", got, err, tt.want)
			}
		})
	}
}

func mustPolicy(t *testing.T, publicURL *url.URL, trusted []netip.Prefix, header string) *forwardedPolicy {
	t.Helper()
	p, err := newForwardedPolicy(publicURL, trusted, header)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRealm(t *testing.T) {
	if got := mustPolicy(t, nil, nil, "").realm(); got != "postern" {
		t.Errorf("realm without public_url = %q", got)
	}
	if got := mustPolicy(t, mustURL("https://api.example.com"), nil, "").realm(); got != "api.example.com" {
		t.Errorf("realm = %q", got)
	}
	if got := mustPolicy(t, mustURL("https://api.example.com:8443"), nil, "").realm(); got != "api.example.com:8443" {
		t.Errorf("realm = %q", got)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	const (
		xf  = ForwardedHeaderX
		rfc = ForwardedHeaderRFC7239
	)
	tests := []struct {
		header string // "" is x-forwarded
		remote string
		hdr    map[string]string
		want   string
	}{
		{"", "192.0.2.1:1", map[string]string{"X-Forwarded-For": "1.1.1.1"}, "192.0.2.1"},
		{"", "10.0.0.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6, 192.0.2.7, 10.0.0.2"}, "192.0.2.7"},
		{"", "10.0.0.1:1", nil, "10.0.0.1"},
		{"", "[::ffff:192.0.2.9]:1", nil, "192.0.2.9"},
		{rfc, "10.0.0.1:1", map[string]string{"Forwarded": "for=6.6.6.6, for=192.0.2.8"}, "192.0.2.8"},
		{rfc, "10.0.0.1:1", map[string]string{"Forwarded": "for=6.6.6.6, for=192.0.2.8, for=10.0.0.3"}, "192.0.2.8"},
		{rfc, "10.0.0.1:1", nil, "10.0.0.1"},

		// Both families from a trusted peer: only the configured one.
		{"", "10.0.0.1:1", map[string]string{"X-Forwarded-For": "192.0.2.7", "Forwarded": "for=6.6.6.6"}, "192.0.2.7"},
		{xf, "10.0.0.1:1", map[string]string{"X-Forwarded-For": "192.0.2.7", "Forwarded": "for=6.6.6.6"}, "192.0.2.7"},
		{rfc, "10.0.0.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=192.0.2.8"}, "192.0.2.8"},
		// Only the other family: the client's, so the peer is the client.
		{"", "10.0.0.1:1", map[string]string{"Forwarded": "for=6.6.6.6"}, "10.0.0.1"},
		{rfc, "10.0.0.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6"}, "10.0.0.1"},
		// Untrusted peer: neither family.
		{"", "192.0.2.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.7"}, "192.0.2.1"},
		{rfc, "192.0.2.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.7"}, "192.0.2.1"},
		// The server's rule (netedge): every hop trusted is the leftmost;
		// an unnamed hop stops the walk at the last address reached.
		{"", "10.0.0.1:1", map[string]string{"X-Forwarded-For": "10.0.0.7, 10.0.0.2"}, "10.0.0.7"},
		{rfc, "10.0.0.1:1", map[string]string{"Forwarded": "for=10.0.0.7, for=10.0.0.2"}, "10.0.0.7"},
		{"", "10.0.0.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6, unknown, 10.0.0.2"}, "10.0.0.2"},
		{rfc, "10.0.0.1:1", map[string]string{"Forwarded": `for=6.6.6.6, for=_hidden, for="10.0.0.2"`}, "10.0.0.2"},
		{rfc, "10.0.0.1:1", map[string]string{"Forwarded": `for=192.0.2.8;host="x, for=10.0.0.3"`}, "192.0.2.8"},
	}
	for _, tt := range tests {
		p := mustPolicy(t, nil, trusted, tt.header)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		for k, v := range tt.hdr {
			r.Header.Set(k, v)
		}
		if got := p.clientIP(r); got != tt.want {
			t.Errorf("clientIP(%q mode, %s, %v) = %s, want %s", tt.header, tt.remote, tt.hdr, got, tt.want)
		}
	}
}

// TestForwardedHeaderRateLimit: behind a trusted proxy in x-forwarded
// mode, a client cannot escape its public-route bucket by sending a fresh
// Forwarded for= each time; in forwarded mode, the same with
// X-Forwarded-For.
func TestForwardedHeaderRateLimit(t *testing.T) {
	for _, tt := range []struct {
		header, forged, forgedFmt, real, realValue string
	}{
		{ForwardedHeaderX, "Forwarded", "for=198.51.100.%d", "X-Forwarded-For", "192.0.2.7"},
		{ForwardedHeaderRFC7239, "X-Forwarded-For", "198.51.100.%d", "Forwarded", "for=192.0.2.7"},
	} {
		t.Run(tt.header, func(t *testing.T) {
			h := newHarness(t, func(c *Config) {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
				c.ForwardedHeader = tt.header
				c.Tiers = map[string]Tier{"bronze": {Requests: 2, Per: time.Hour}}
				c.Routes[2].Tier = "bronze"
			})
			for i := range 3 {
				resp, _ := h.get(t, "/status", "", map[string]string{tt.real: tt.realValue, tt.forged: fmt.Sprintf(tt.forgedFmt, i)})
				if want := []int{200, 200, 429}[i]; resp.StatusCode != want {
					t.Errorf("request %d with a forged %s: status %d, want %d", i, tt.forged, resp.StatusCode, want)
				}
			}
			// Another client behind the same proxy has its own bucket.
			other := "192.0.2.8"
			if tt.real == "Forwarded" {
				other = "for=" + other
			}
			if resp, _ := h.get(t, "/status", "", map[string]string{tt.real: other}); resp.StatusCode != 200 {
				t.Errorf("another client behind the proxy: status %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestForwardedHeaderPreflightLimit: the CORS preflight limiter keys by the
// same address: a forged header of the other family buys no new bucket.
func TestForwardedHeaderPreflightLimit(t *testing.T) {
	clock := newFakeClock()
	h := newCORSHarness(t, func(c *Config) {
		c.Now = clock.Now
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	})
	preflight := func(hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodOptions, h.srv.URL+"/search/v1/x", nil)
		req.Header.Set("Origin", appOrigin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, _ := h.do(t, req)
		return resp.StatusCode
	}
	for i := range preflightLimit.Burst {
		if st := preflight(map[string]string{"X-Forwarded-For": "192.0.2.7", "Forwarded": fmt.Sprintf("for=198.51.100.%d", i%250)}); st != http.StatusNoContent {
			t.Fatalf("preflight %d: status %d", i, st)
		}
	}
	if st := preflight(map[string]string{"X-Forwarded-For": "192.0.2.7", "Forwarded": "for=203.0.113.1"}); st != http.StatusTooManyRequests {
		t.Errorf("over the limit with a fresh forged Forwarded: status %d, want 429", st)
	}
	if st := preflight(map[string]string{"X-Forwarded-For": "192.0.2.8"}); st != http.StatusNoContent {
		t.Errorf("another client behind the proxy: status %d, want 204", st)
	}
}

func TestForwardedHeaderConfig(t *testing.T) {
	f := newFakeAuth(t)
	for _, v := range []string{"", ForwardedHeaderX, ForwardedHeaderRFC7239} {
		cfg := f.config("http://127.0.0.1:1")
		cfg.ForwardedHeader = v
		g, err := New(cfg)
		if err != nil {
			t.Errorf("ForwardedHeader %q: %v", v, err)
			continue
		}
		g.Close()
	}
	for _, v := range []string{"X-Forwarded", "both", "x-forwarded-for"} {
		cfg := f.config("http://127.0.0.1:1")
		cfg.ForwardedHeader = v
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "forwarded_header") {
			t.Errorf("ForwardedHeader %q: err = %v, want a forwarded_header error", v, err)
		}
	}
}

// TestForwardedHostInjection: without public_url the client's Host is
// copied into Forwarded. A Host whose port (or host) is not one could add
// parameters or whole elements the backend believes; the gateway refuses
// it with 400 before proxying, on public and protected routes alike.
func TestForwardedHostInjection(t *testing.T) {
	h := newHarness(t, nil)
	h.f.ccToken("cc", "billing", "read write", time.Now().Add(time.Hour))
	serve := func(path, host, token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Host = host
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.gw.ServeHTTP(w, r)
		return w
	}
	for _, host := range []string{
		"api.example:8080;by=6.6.6.6",
		"api.example:8080,for=6.6.6.6",
		"api.example:8080;proto=https",
		"api.example:8080;host=evil.example",
		"api.example;host=evil.example",
		`api.example:8080";by="6.6.6.6`,
		"api.example:http",
		"::1",
	} {
		for _, route := range []struct{ path, token string }{{"/status", ""}, {"/search/v1/x", "cc"}} {
			hits := h.backend.hits.Load()
			w := serve(route.path, host, route.token)
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"invalid_request"`) {
				t.Errorf("Host %q on %s: status %d %s, want 400 invalid_request", host, route.path, w.Code, w.Body)
			}
			if h.backend.hits.Load() != hits {
				t.Errorf("Host %q on %s reached the backend", host, route.path)
			}
		}
	}
	for host, want := range map[string]string{
		"api.example:8080": "proto=http;host=api.example;port=8080;prefix=/search/v1",
		"API.example:80":   "proto=http;host=api.example;prefix=/search/v1",
		"[::1]:8080":       `proto=http;host="[::1]";port=8080;prefix=/search/v1`,
	} {
		w := serve("/search/v1/x", host, "cc")
		if w.Code != http.StatusOK {
			t.Fatalf("Host %q: status %d %s", host, w.Code, w.Body)
		}
		got := decodeEcho(t, w.Body.Bytes()).Headers.Values("Forwarded")
		if len(got) != 1 || got[0] != want {
			t.Errorf("Host %q: upstream Forwarded = %q, want %q", host, got, want)
		}
	}
}
