package netedge

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// The header families a trusted proxy may set; the configurations call
// the choice forwarded_header. Only the configured one is read: proxies
// overwrite the family they set but pass the other on from the client as
// it came, so reading both would let the client speak for the proxy.
const (
	XForwarded = "x-forwarded" // X-Forwarded-For (and -Proto, -Host, -Port, -Prefix)
	Forwarded  = "forwarded"   // RFC 7239 Forwarded
)

// Proxies says whose forwarding headers are believed.
type Proxies struct {
	Trusted []netip.Prefix // from ParsePrefix
	Header  string         // XForwarded ("" means the same) or Forwarded
}

// Trusts reports whether a is inside a trusted prefix. a should be
// unmapped, as every address this package returns is.
func (p Proxies) Trusts(a netip.Addr) bool {
	for _, pfx := range p.Trusted {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// Client is what the request says about who sent it.
type Client struct {
	// Addr is the client's address (unmapped); the zero Addr when the
	// peer's RemoteAddr is not an IP address (a pipe in tests, a socket).
	Addr netip.Addr
	// ViaProxy: the peer is a trusted proxy, so its header family was read.
	ViaProxy bool
	// Element is, for the Forwarded family, the element written by the
	// proxy that received the request from Addr's side (see Resolve); nil
	// for X-Forwarded-*, without a Forwarded header, or where the walk
	// stopped at text that did not parse.
	Element Element
}

// Resolve walks the forwarding chain of r, one rule for server and
// gateway:
//
//   - Headers are read only if the peer is trusted, and only the family
//     p.Header names.
//   - The hops (X-Forwarded-For entries or Forwarded for= values) are walked
//     from the right, the peer's own report first, since only entries
//     written by trusted proxies can be believed and every proxy appends.
//   - The first untrusted hop is the client.
//   - If every hop is trusted, the leftmost is the client: it is the
//     farthest address a trusted proxy vouched for, and a client inside a
//     trusted network is still a client of its own (taking the peer
//     instead would lump every internal caller into one address).
//   - A hop that does not name an address ("unknown", an obfuscated
//     identifier, garbage, or a Forwarded element without for=) stops the
//     walk; the client is then the last address reached, at worst the
//     peer. Its Forwarded element is still chosen when it parsed: a trusted
//     proxy wrote it, only the address of its own client was withheld.
func (p Proxies) Resolve(r *http.Request) Client {
	c := Client{Addr: PeerAddr(r.RemoteAddr)}
	if !c.Addr.IsValid() || !p.Trusts(c.Addr) {
		return c
	}
	c.ViaProxy = true
	hops := p.hops(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		c.Element = hops[i].el
		if !hops[i].addr.IsValid() {
			break
		}
		c.Addr = hops[i].addr
		if !p.Trusts(c.Addr) {
			break
		}
	}
	return c
}

// hop is one step of the chain, nearest the client first.
type hop struct {
	addr netip.Addr // zero: no address named
	el   Element    // Forwarded family only
}

func (p Proxies) hops(h http.Header) []hop {
	var hops []hop
	if p.Header == Forwarded {
		for _, line := range h.Values("Forwarded") {
			els, err := ParseForwarded(line)
			for _, el := range els {
				n, _ := ParseNode(el["for"]) // no for=: zero Node, stops the walk
				hops = append(hops, hop{addr: n.Addr, el: el})
			}
			if err != nil {
				hops = append(hops, hop{}) // the walk must not pass the fault
			}
		}
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for _, v := range strings.Split(line, ",") {
			if v = strings.Trim(v, " \t"); v != "" {
				hops = append(hops, hop{addr: xffAddr(v)})
			}
		}
	}
	return hops
}

// xffAddr reads an X-Forwarded-For entry. There is no standard: besides a
// bare address, some proxies write a port ("192.0.2.1:4711",
// "[2001:db8::1]:4711") or brackets alone. Anything else is no address.
func xffAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return unzoned(ap.Addr())
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return unzoned(a)
}

// PeerAddr is the address of a RemoteAddr ("192.0.2.1:4711",
// "[::ffff:192.0.2.1]:4711"), unmapped; the zero Addr if it has none.
func PeerAddr(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	// A zone stays: fe80::1%eth0 and fe80::1%eth1 are different hosts, and
	// netip.Prefix.Contains never matches a zoned address, so such a peer
	// is never a trusted proxy.
	return a.Unmap()
}

// unzoned refuses a zone in a header: it names an interface of the
// sender, which means nothing here.
func unzoned(a netip.Addr) netip.Addr {
	if a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Rightmost is the last member of a comma-separated header such as
// X-Forwarded-Proto: the one the trusted peer wrote; earlier ones may come
// from the client.
func Rightmost(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.Trim(v, " \t")
}
