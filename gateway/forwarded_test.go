package gateway

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
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
		{name: "trusted proxy Forwarded",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=192.0.2.60;proto=https;host="api.example.com:8443"`,
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com;port=8443"},
		{name: "Forwarded wins over X-Forwarded-*",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=192.0.2.60;proto=https;host=api.example.com`, "X-Forwarded-Host": "other.example",
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com"},
		{name: "Forwarded chain: client-forged leftmost element is skipped",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=1.2.3.4;proto=http;host=evil.example, for=192.0.2.60;proto=https;host=api.example.com`,
			}}, trusted: trusted,
			want: "proto=https;host=api.example.com"},
		{name: "Forwarded chain through two trusted proxies",
			req: req{remote: "10.0.0.5:5000", host: "gw", headers: map[string]string{
				"Forwarded": `for=192.0.2.60;proto=https;host=api.example.com, for=10.0.0.9;proto=http;host=lb.internal`,
			}}, trusted: trusted,
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
			p := newForwardedPolicy(pub, tt.trusted)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr, r.Host = tt.req.remote, tt.req.host
			if tt.req.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for k, v := range tt.req.headers {
				r.Header.Set(k, v)
			}
			if got := p.view(r).header(tt.routePrefix); got != tt.want {
				t.Errorf("Forwarded = %q\n           want %q", got, tt.want)
			}
		})
	}
}

func TestRealm(t *testing.T) {
	if got := newForwardedPolicy(nil, nil).realm(); got != "postern" {
		t.Errorf("realm without public_url = %q", got)
	}
	if got := newForwardedPolicy(mustURL("https://api.example.com"), nil).realm(); got != "api.example.com" {
		t.Errorf("realm = %q", got)
	}
	if got := newForwardedPolicy(mustURL("https://api.example.com:8443"), nil).realm(); got != "api.example.com:8443" {
		t.Errorf("realm = %q", got)
	}
}

func TestParseForwarded(t *testing.T) {
	els := parseForwarded([]string{`for="[2001:db8:cafe::17]:4711";proto=HTTPS;Host="a;b,c"`, `for=192.0.2.43, for=198.51.100.17;by=203.0.113.60`})
	if len(els) != 3 {
		t.Fatalf("got %d elements: %v", len(els), els)
	}
	if els[0]["for"] != "[2001:db8:cafe::17]:4711" || els[0]["proto"] != "HTTPS" || els[0]["host"] != "a;b,c" {
		t.Errorf("element 0 = %v", els[0])
	}
	if els[1]["for"] != "192.0.2.43" || els[2]["by"] != "203.0.113.60" {
		t.Errorf("elements = %v", els)
	}
}

func TestClientIP(t *testing.T) {
	p := newForwardedPolicy(nil, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	tests := []struct {
		remote string
		hdr    map[string]string
		want   string
	}{
		{"192.0.2.1:1", map[string]string{"X-Forwarded-For": "1.1.1.1"}, "192.0.2.1"},
		{"10.0.0.1:1", map[string]string{"X-Forwarded-For": "6.6.6.6, 192.0.2.7, 10.0.0.2"}, "192.0.2.7"},
		{"10.0.0.1:1", map[string]string{"Forwarded": "for=6.6.6.6, for=192.0.2.8"}, "192.0.2.8"},
		{"10.0.0.1:1", nil, "10.0.0.1"},
		{"[::ffff:192.0.2.9]:1", nil, "192.0.2.9"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		for k, v := range tt.hdr {
			r.Header.Set(k, v)
		}
		if got := p.clientIP(r); got != tt.want {
			t.Errorf("clientIP(%s, %v) = %s, want %s", tt.remote, tt.hdr, got, tt.want)
		}
	}
}
