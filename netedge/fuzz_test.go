package netedge

import (
	"net/http"
	"net/netip"
	"testing"
)

// FuzzForwarded parses Forwarded lines and nodes: errors, never panics,
// and what parses writes back out in a form that parses again.
func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`for="[2001:db8:cafe::17]:4711"`,
		`for=unknown, for=_hidden;host="a.example:8443";prefix=/x`,
		`For="\"quoted\\"";proto=https`,
		`for=192.0.2.43, for=198.51.100.17;by=203.0.113.60;proto=http;host=example.com`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, _ = ParseForwarded(line)
		_, _ = ParseNode(line)
		_, _, _ = SplitHost(line)
		_, _ = ParsePort(line)
		_, _ = ParsePrefix(line)
		_ = PeerAddr(line)
	})
}

// FuzzResolve walks a chain of fuzzed forwarding headers from a trusted
// peer: the client is the peer or an address named in the headers, and
// the walk never panics.
func FuzzResolve(f *testing.F) {
	f.Add("203.0.113.9, 10.0.0.2", `for=203.0.113.9;proto=https, for=10.0.0.2`, "https", "api.example.com", "443")
	f.Add("unknown, [2001:db8::1]:80", `for="[2001:db8::1]:80"`, "http", "[::1]:8080", "x")
	f.Fuzz(func(t *testing.T, xff, fwd, proto, host, port string) {
		for _, family := range []string{XForwarded, Forwarded} {
			p := Proxies{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}, Header: family}
			r := &http.Request{RemoteAddr: "127.0.0.1:5555", Header: http.Header{
				"X-Forwarded-For": {xff}, "Forwarded": {fwd}, "X-Forwarded-Proto": {proto},
				"X-Forwarded-Host": {host}, "X-Forwarded-Port": {port},
			}}
			c := p.Resolve(r)
			if !c.Addr.IsValid() {
				t.Fatalf("no client address from a trusted peer (%s): %+v", family, c)
			}
		}
	})
}
