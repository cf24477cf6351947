package netedge

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "" means an error containing wantErr
		wantErr  string
	}{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: "2001:db8::/32", want: "2001:db8::/32"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{in: "::ffff:10.0.0.0/104", want: "10.0.0.0/8"},
		{in: "::/0", want: "::/0"},
		// Host bits are refused, with the masked form suggested.
		{in: "10.0.0.1/8", wantErr: `"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		{in: "10.1.2.3/8", wantErr: `did you mean 10.0.0.0/8?`},
		{in: "2001:db8::1/32", wantErr: `"2001:db8::1/32" has host bits set; did you mean 2001:db8::/32?`},
		{in: "::ffff:10.0.0.1/104", wantErr: `did you mean 10.0.0.0/8?`},
		{in: "lb.internal", wantErr: `"lb.internal" is not an IP address or CIDR prefix`},
		{in: "10.0.0.0/33", wantErr: "is not an IP address or CIDR prefix"},
		{in: "fe80::1%eth0", wantErr: "is not an IP address or CIDR prefix"},
		{in: "", wantErr: "is not an IP address or CIDR prefix"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error containing %q", tt.in, p, err, tt.wantErr)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
			}
		})
	}
}

func TestParseForwarded(t *testing.T) {
	for _, tt := range []struct {
		name string
		line string
		want []Element
		bad  bool // an error; want holds the elements before the fault
	}{
		{name: "RFC 7239 §4 examples",
			line: `for="_gazonk", For="[2001:db8:cafe::17]:4711" ,for=192.0.2.60;proto=http;by=203.0.113.43`,
			want: []Element{{"for": "_gazonk"}, {"for": "[2001:db8:cafe::17]:4711"}, {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}}},
		{name: "separators inside quotes are data",
			line: `for=192.0.2.1;host="a;b,c=d", for="[2001:db8::1]:4711";host="x,for=6.6.6.6"`,
			want: []Element{{"for": "192.0.2.1", "host": "a;b,c=d"}, {"for": "[2001:db8::1]:4711", "host": "x,for=6.6.6.6"}}},
		{name: "quoted-pair",
			line: `host="a\"b\\c\;d"`,
			want: []Element{{"host": `a"b\c;d`}}},
		{name: "empty members and pairs are skipped",
			line: ` , for=192.0.2.1;;proto=https; ,, for=192.0.2.2 ,`,
			want: []Element{{"for": "192.0.2.1", "proto": "https"}, {"for": "192.0.2.2"}}},
		{name: "whitespace around separators",
			line: "for=192.0.2.1 ;\tproto = https",
			want: []Element{{"for": "192.0.2.1", "proto": "https"}}},
		{name: "empty quoted value", line: `host=""`, want: []Element{{"host": ""}}},
		{name: "unterminated quote swallows nothing after it",
			line: `for=192.0.2.9, for="6.6.6.6, for=192.0.2.60`,
			want: []Element{{"for": "192.0.2.9"}}, bad: true},
		{name: "repeated parameter", line: `for=192.0.2.1;for=10.0.0.1`, bad: true},
		{name: "common unquoted values are read", line: `for=[2001:db8::1]:80, for=192.0.2.1:4711;prefix=/api`,
			want: []Element{{"for": "[2001:db8::1]:80"}, {"for": "192.0.2.1:4711", "prefix": "/api"}}},
		{name: "a quote inside an unquoted value", line: `host=a"b`, bad: true},
		{name: "pair without value", line: `for=192.0.2.1, secure`, want: []Element{{"for": "192.0.2.1"}}, bad: true},
		{name: "empty value", line: `for=;proto=https`, bad: true},
		{name: "text after a quoted value", line: `host="a"b`, bad: true},
		{name: "control character in quotes", line: "host=\"a\x01b\"", bad: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseForwarded(tt.line)
			if (err != nil) != tt.bad || (err != nil && !errors.Is(err, ErrMalformed)) {
				t.Errorf("error = %v, want error %v", err, tt.bad)
			}
			if len(got) != 0 || len(tt.want) != 0 {
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("elements = %v\n      want %v", got, tt.want)
				}
			}
		})
	}
}

func TestParseNode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Node
		bad  bool
	}{
		{in: "192.0.2.43", want: Node{Addr: netip.MustParseAddr("192.0.2.43")}},
		{in: "192.0.2.43:4711", want: Node{Addr: netip.MustParseAddr("192.0.2.43"), Port: "4711"}},
		{in: "[2001:db8:cafe::17]", want: Node{Addr: netip.MustParseAddr("2001:db8:cafe::17")}},
		{in: "[2001:db8:cafe::17]:4711", want: Node{Addr: netip.MustParseAddr("2001:db8:cafe::17"), Port: "4711"}},
		{in: "[::ffff:192.0.2.9]:80", want: Node{Addr: netip.MustParseAddr("192.0.2.9"), Port: "80"}},
		{in: "unknown", want: Node{Name: "unknown"}},
		{in: "UNKNOWN:_p", want: Node{Name: "unknown", Port: "_p"}},
		{in: "_hidden", want: Node{Name: "_hidden"}},
		{in: "_SEVKISEK:_1.a-b", want: Node{Name: "_SEVKISEK", Port: "_1.a-b"}},
		{in: "", bad: true},
		{in: "2001:db8::1", bad: true}, // IPv6 needs brackets
		{in: "[192.0.2.1]", bad: true},
		{in: "[2001:db8::1", bad: true},
		{in: "[fe80::1%eth0]", bad: true},
		{in: "192.0.2.1:123456", bad: true},
		{in: "192.0.2.1:", bad: true},
		{in: "_", bad: true},
		{in: "_a b", bad: true},
		{in: "hidden", bad: true},
		{in: "[2001:db8::1]x", bad: true},
	} {
		got, err := ParseNode(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseNode(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestResolve(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}
	const xf, rfc = XForwarded, Forwarded
	tests := []struct {
		name    string
		header  string // Proxies.Header
		trusted []netip.Prefix
		peer    string
		xff     []string
		fwd     []string
		want    string  // Client.Addr, or RemoteAddr's text when invalid
		via     bool    // Client.ViaProxy
		el      Element // Client.Element (Forwarded family)
	}{
		// Whose word counts.
		{name: "no trusted proxies", peer: "203.0.113.5:1", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "untrusted peer", trusted: trusted, peer: "203.0.113.5:1", xff: []string{"198.51.100.1"}, fwd: []string{"for=198.51.100.2"}, want: "203.0.113.5"},
		{name: "trusted peer without headers", trusted: trusted, peer: "10.1.2.3:1", want: "10.1.2.3", via: true},
		{name: "peer not an IP address", trusted: trusted, peer: "pipe", want: "invalid IP"},
		{name: "mapped IPv4 peer is unmapped and trusted", trusted: trusted, peer: "[::ffff:10.1.2.3]:1", xff: []string{"198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "zoned peer is never trusted", trusted: []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, peer: "[fe80::1%eth0]:1", xff: []string{"198.51.100.1"}, want: "fe80::1%eth0"},

		// Only the configured family.
		{name: "x-forwarded ignores Forwarded", header: xf, trusted: trusted, peer: "10.1.2.3:1", xff: []string{"198.51.100.1"}, fwd: []string{"for=6.6.6.6"}, want: "198.51.100.1", via: true},
		{name: "default is x-forwarded", trusted: trusted, peer: "10.1.2.3:1", fwd: []string{"for=6.6.6.6"}, want: "10.1.2.3", via: true},
		{name: "forwarded ignores X-Forwarded-For", header: rfc, trusted: trusted, peer: "10.1.2.3:1", xff: []string{"6.6.6.6"}, want: "10.1.2.3", via: true},

		// The walk from the right.
		{name: "XFF: forged left entries are skipped", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"1.2.3.4, 198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "XFF: through trusted proxies", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"6.6.6.6, 198.51.100.1, 192.0.2.7, 10.9.9.9"}, want: "198.51.100.1", via: true},
		{name: "XFF: spaces, tabs, empty members, several lines", trusted: trusted, peer: "10.1.2.3:1", xff: []string{" 6.6.6.6 ,\t198.51.100.1 ,, ", "  10.9.9.9  "}, want: "198.51.100.1", via: true},
		{name: "XFF: ports and brackets", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"[2001:db8::1]:4711, 10.0.0.2:80"}, want: "2001:db8::1", via: true},
		{name: "XFF: bare IPv6 and bracketed IPv6", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"2001:db8::2, [2001:db8:ffff::1]"}, want: "2001:db8::2", via: true},
		{name: "XFF: mapped IPv4 hop is unmapped, then trusted", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"198.51.100.1, ::ffff:10.0.0.2"}, want: "198.51.100.1", via: true},
		{name: "Forwarded: forged left element is skipped", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{"for=6.6.6.6, for=192.0.2.8"}, want: "192.0.2.8", via: true, el: Element{"for": "192.0.2.8"}},
		{name: "Forwarded: bracketed IPv6 with port", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{`for="[2001:db8::1]:443";proto=https`}, want: "2001:db8::1", via: true, el: Element{"for": "[2001:db8::1]:443", "proto": "https"}},
		{name: "Forwarded: IPv4 with port", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{"for=198.51.100.9:5000, for=10.0.0.2"}, want: "198.51.100.9", via: true, el: Element{"for": "198.51.100.9:5000"}},
		{name: "Forwarded: one element per line", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{"for=6.6.6.6", "for=192.0.2.8;host=api.example.com", "for=10.0.0.2;host=lb"}, want: "192.0.2.8", via: true, el: Element{"for": "192.0.2.8", "host": "api.example.com"}},
		{name: "Forwarded: a quoted ',' and ';' cannot add a hop", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{`for=198.51.100.1;host="x, for=10.0.0.9;proto=https"`},
			want: "198.51.100.1", via: true, el: Element{"for": "198.51.100.1", "host": "x, for=10.0.0.9;proto=https"}},
		{name: "Forwarded: a quoted ',' hides no untrusted hop", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{`for=198.51.100.1, for="[2001:db8:ffff::9]";host="a,for=6.6.6.6"`},
			want: "198.51.100.1", via: true, el: Element{"for": "198.51.100.1"}},

		// Every hop trusted: the leftmost, in both families.
		{name: "XFF: all trusted, leftmost", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"10.5.5.5, 192.0.2.7, 10.9.9.9"}, want: "10.5.5.5", via: true},
		{name: "Forwarded: all trusted, leftmost", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{"for=10.5.5.5;host=internal, for=192.0.2.7;host=lb"},
			want: "10.5.5.5", via: true, el: Element{"for": "10.5.5.5", "host": "internal"}},
		{name: "all trusted IPv6", header: rfc, trusted: trusted, peer: "[2001:db8:ffff::1]:1", fwd: []string{`for="[2001:db8:ffff::2]"`}, want: "2001:db8:ffff::2", via: true, el: Element{"for": "[2001:db8:ffff::2]"}},

		// A hop without an address stops the walk at the last address reached.
		{name: "XFF: unknown next to the peer", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"198.51.100.1, unknown"}, want: "10.1.2.3", via: true},
		{name: "XFF: garbage behind a trusted hop", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"198.51.100.1, not-an-ip, 10.0.0.2"}, want: "10.0.0.2", via: true},
		{name: "XFF: zone in a hop", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"fe80::1%eth0"}, want: "10.1.2.3", via: true},
		{name: "XFF: untrusted before garbage", trusted: trusted, peer: "10.1.2.3:1", xff: []string{"unknown, 198.51.100.1"}, want: "198.51.100.1", via: true},
		{name: "Forwarded: obfuscated node, its element still chosen", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{"for=198.51.100.1, for=_hidden;proto=https;host=api.example.com, for=10.0.0.2"},
			want: "10.0.0.2", via: true, el: Element{"for": "_hidden", "proto": "https", "host": "api.example.com"}},
		{name: "Forwarded: unknown", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{"for=198.51.100.1, for=unknown;proto=https"}, want: "10.1.2.3", via: true, el: Element{"for": "unknown", "proto": "https"}},
		{name: "Forwarded: element without for=", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{"for=198.51.100.1, proto=https;host=api.example.com"}, want: "10.1.2.3", via: true, el: Element{"proto": "https", "host": "api.example.com"}},
		{name: "Forwarded: bare IPv6 without brackets is no address", header: rfc, trusted: trusted, peer: "10.1.2.3:1", fwd: []string{`for="2001:db8::1"`}, want: "10.1.2.3", via: true, el: Element{"for": "2001:db8::1"}},
		{name: "Forwarded: client's unterminated quote cannot hide the proxy's element", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{`for="6.6.6.6, for=198.51.100.1;host=api.example.com`},
			want: "10.1.2.3", via: true},
		{name: "Forwarded: a bad line stops the walk, a later line still counts", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{`for="6.6.6.6`, "for=198.51.100.1;host=api.example.com"},
			want: "198.51.100.1", via: true, el: Element{"for": "198.51.100.1", "host": "api.example.com"}},
		{name: "Forwarded: trusted hop behind a bad line", header: rfc, trusted: trusted, peer: "10.1.2.3:1",
			fwd:  []string{`for="6.6.6.6`, "for=10.0.0.2"},
			want: "10.0.0.2", via: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.fwd {
				r.Header.Add("Forwarded", v)
			}
			c := Proxies{Trusted: tt.trusted, Header: tt.header}.Resolve(r)
			if c.Addr.String() != tt.want || c.ViaProxy != tt.via || !reflect.DeepEqual(c.Element, tt.el) {
				t.Errorf("Resolve = %s via %v element %v\n   want %s via %v element %v", c.Addr, c.ViaProxy, c.Element, tt.want, tt.via, tt.el)
			}
		})
	}
}

func TestElementWriter(t *testing.T) {
	type pair struct {
		name, value string
		path        bool
	}
	for _, tt := range []struct {
		name  string
		pairs []pair
		want  string
		bad   bool
	}{
		{name: "tokens stay bare",
			pairs: []pair{{"proto", "https", false}, {"host", "api.example.com", false}, {"port", "8443", false}},
			want:  "proto=https;host=api.example.com;port=8443"},
		{name: "a path keeps its slashes bare", pairs: []pair{{"prefix", "/search/v1", true}}, want: "prefix=/search/v1"},
		{name: "a path outside tchar is quoted", pairs: []pair{{"prefix", "/a b;c", true}}, want: `prefix="/a b;c"`},
		{name: "slash outside a path is quoted", pairs: []pair{{"host", "a/b", false}}, want: `host="a/b"`},
		{name: "IPv6 is quoted", pairs: []pair{{"host", "[::1]", false}}, want: `host="[::1]"`},
		{name: "empty value is quoted", pairs: []pair{{"host", "", false}}, want: `host=""`},
		{name: "quote and backslash are escaped", pairs: []pair{{"host", `a"b\c`, false}}, want: `host="a\"b\\c"`},
		// What a client-sent Host port could try to inject.
		{name: "injected by=", pairs: []pair{{"port", "8080;by=6.6.6.6", false}}, want: `port="8080;by=6.6.6.6"`},
		{name: "injected element", pairs: []pair{{"port", "8080,for=6.6.6.6", false}}, want: `port="8080,for=6.6.6.6"`},
		{name: "injected proto", pairs: []pair{{"port", "8080;proto=https", false}}, want: `port="8080;proto=https"`},
		{name: "injected host", pairs: []pair{{"port", "8080;host=evil.example", false}}, want: `port="8080;host=evil.example"`},
		{name: "injected quote", pairs: []pair{{"host", `x";by="6.6.6.6`, false}}, want: `host="x\";by=\"6.6.6.6"`},
		{name: "control character", pairs: []pair{{"host", "a\r\nb", false}}, bad: true},
		{name: "name not a token", pairs: []pair{{"a;b", "x", false}}, bad: true},
		{name: "first error sticks", pairs: []pair{{"host", "\x00", false}, {"proto", "https", false}}, bad: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var w ElementWriter
			for _, p := range tt.pairs {
				if p.path {
					w.PathPair(p.name, p.value)
				} else {
					w.Pair(p.name, p.value)
				}
			}
			got, err := w.String()
			if (err != nil) != tt.bad || got != tt.want {
				t.Fatalf("String() = %q, %v; want %q, error %v", got, err, tt.want, tt.bad)
			}
			if tt.bad {
				return
			}
			// What was written reads back as exactly one element holding
			// exactly the pairs written.
			els, err := ParseForwarded(got)
			want := Element{}
			for _, p := range tt.pairs {
				want[p.name] = p.value
			}
			if err != nil || len(els) != 1 || !reflect.DeepEqual(els[0], want) {
				t.Errorf("ParseForwarded(%q) = %v, %v; want [%v]", got, els, err, want)
			}
		})
	}
}

func TestSplitHost(t *testing.T) {
	for _, tt := range []struct {
		in, host, port string
		bad            bool
	}{
		{in: "api.example.com", host: "api.example.com"},
		{in: "API.Example.com:8443", host: "api.example.com", port: "8443"},
		{in: "127.0.0.1:080", host: "127.0.0.1", port: "80"},
		{in: "host_name.internal:", host: "host_name.internal"},
		{in: "[::1]:8080", host: "[::1]", port: "8080"},
		{in: "[2001:DB8::1]", host: "[2001:db8::1]"},
		{in: "api.example:8080;by=6.6.6.6", bad: true},
		{in: "api.example:8080,for=6.6.6.6", bad: true},
		{in: "api.example:8080;proto=https", bad: true},
		{in: "api.example:8080;host=evil.example", bad: true},
		{in: "api.example;host=evil.example", bad: true},
		{in: `api.example"`, bad: true},
		{in: "api.example:0", bad: true},
		{in: "api.example:65536", bad: true},
		{in: "api.example:http", bad: true},
		{in: "::1", bad: true},
		{in: "[::1", bad: true},
		{in: "[::1]x", bad: true},
		{in: "[192.0.2.1]", bad: true},
		{in: "[fe80::1%eth0]", bad: true},
		{in: "", bad: true},
		{in: ":8080", bad: true},
		{in: strings.Repeat("a", 256), bad: true},
	} {
		host, port, err := SplitHost(tt.in)
		if (err != nil) != tt.bad || host != tt.host || port != tt.port || (err != nil && !errors.Is(err, ErrInvalidHost)) {
			t.Errorf("SplitHost(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, host, port, err, tt.host, tt.port, tt.bad)
		}
	}
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"443", "443"}, {"08443", "8443"}, {"65535", "65535"},
		{"0", ""}, {"65536", ""}, {"", ""}, {"443;by=x", ""}, {" 443", ""}, {"123456", ""},
	} {
		got, err := ParsePort(tt.in)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("ParsePort(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestRightmost(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"https"}, "https"},
		{[]string{"http, https "}, "https"},
		{[]string{"http", "gopher,\thttps"}, "https"},
	} {
		if got := Rightmost(tt.in); got != tt.want {
			t.Errorf("Rightmost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
