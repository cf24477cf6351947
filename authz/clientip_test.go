package authz

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
	for _, tc := range []struct {
		name    string
		peer    string
		trusted []netip.Prefix
		headers map[string]string
		header  string
		want    string
	}{
		{"no proxies configured: headers ignored", "203.0.113.5:1234", nil, map[string]string{"X-Forwarded-For": "198.51.100.1"}, "", "203.0.113.5"},
		{"untrusted peer: headers ignored", "203.0.113.5:1234", lb, map[string]string{"X-Forwarded-For": "198.51.100.1"}, "", "203.0.113.5"},
		{"trusted peer, XFF", "10.1.2.3:1234", lb, map[string]string{"X-Forwarded-For": "198.51.100.1"}, "", "198.51.100.1"},
		{"spoofed left entries are skipped", "10.1.2.3:1234", lb, map[string]string{"X-Forwarded-For": "1.2.3.4, 198.51.100.1"}, "", "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:1234", lb, map[string]string{"X-Forwarded-For": "198.51.100.1, 192.0.2.7, 10.9.9.9"}, "", "198.51.100.1"},
		{"XFF mode ignores a client's Forwarded", "10.1.2.3:1234", lb, map[string]string{"Forwarded": "for=6.6.6.6", "X-Forwarded-For": "198.51.100.1"}, "", "198.51.100.1"},
		{"Forwarded mode ignores XFF", "10.1.2.3:1234", lb, map[string]string{"Forwarded": `for="[2001:db8::1]:443";proto=https`, "X-Forwarded-For": "1.2.3.4"}, "forwarded", "2001:db8::1"},
		{"Forwarded with port", "10.1.2.3:1234", lb, map[string]string{"Forwarded": "for=198.51.100.9:5000, for=10.0.0.2"}, "forwarded", "198.51.100.9"},
		{"garbage hop ends belief", "10.1.2.3:1234", lb, map[string]string{"X-Forwarded-For": "198.51.100.1, unknown"}, "", "10.1.2.3"},
		{"trusted peer without headers", "10.1.2.3:1234", lb, nil, "", "10.1.2.3"},
		// A client-chosen Host, quoted by the proxy, must not add a hop.
		{"quoted ';' in Forwarded", "10.1.2.3:1234", lb, map[string]string{"Forwarded": `for=198.51.100.1;host="evil;for=6.6.6.6"`}, "forwarded", "198.51.100.1"},
		{"quoted ',' in Forwarded", "10.1.2.3:1234", lb, map[string]string{"Forwarded": `for=198.51.100.1;host="evil,for=6.6.6.6"`}, "forwarded", "198.51.100.1"},
		{"every hop trusted: the leftmost", "10.1.2.3:1234", lb, map[string]string{"X-Forwarded-For": "10.5.5.5, 192.0.2.7"}, "", "10.5.5.5"},
		{"mapped IPv4 peer", "[::ffff:203.0.113.5]:1234", lb, nil, "", "203.0.113.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := clientIP(withClientIP(r, tc.trusted, tc.header)); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}
