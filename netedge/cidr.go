package netedge

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParsePrefix reads one trusted_proxies entry: a CIDR prefix
// ("10.0.0.0/8", "2001:db8::/32") or a single address, which means /32 or
// /128.
//
// A prefix with host bits set ("10.0.0.1/8") is refused, not masked: the
// operator meant either the address or the network, and guessing the
// network would silently trust 16 million addresses where one was meant.
// The error names the masked form. IPv4-mapped IPv6 ("::ffff:10.0.0.0/104")
// becomes plain IPv4 ("10.0.0.0/8"), because the addresses it is matched
// against are unmapped too. Zones are refused: a zone names an interface,
// not a network.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, unmapPrefix(p.Masked()))
		}
		return unmapPrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n (n >= 96) into a.b.c.d/(n-96). A
// shorter mapped prefix reaches beyond the mapped range and stays IPv6.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if !p.Addr().Is4In6() || p.Bits() < 96 {
		return p
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
}
