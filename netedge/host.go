package netedge

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalidHost is an authority that is not host[:port] with a host name,
// an IPv4 address or a bracketed IPv6 address, and a decimal port.
var ErrInvalidHost = errors.New("invalid host")

// SplitHost splits an authority as a Host header, X-Forwarded-Host or a
// Forwarded host= value carries it. host comes back lower case, IPv6 in
// brackets; port is "" or a decimal 1-65535 without leading zeros.
//
// A host name is letters, digits, '-', '.' and '_'. RFC 3986 reg-name also
// admits sub-delims (";", ",", "=" ...), which no DNS name has and which
// are exactly what could break out of a header the host is copied into.
func SplitHost(authority string) (host, port string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w %q: %s", ErrInvalidHost, authority, why)
	}
	if authority == "" || len(authority) > 255 {
		return bad("empty or too long")
	}
	rest := ""
	if strings.HasPrefix(authority, "[") {
		end := strings.IndexByte(authority, ']')
		if end < 0 {
			return bad("unclosed bracket")
		}
		a, err := netip.ParseAddr(authority[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return bad("not an IPv6 address in brackets")
		}
		host, rest = strings.ToLower(authority[:end+1]), authority[end+1:]
	} else {
		h, p, hasPort := strings.Cut(authority, ":")
		if h == "" || !allBytes(h, isHostChar) {
			return bad("not a host name or IPv4 address")
		}
		host = strings.ToLower(h)
		if hasPort {
			rest = ":" + p
		}
	}
	if rest == "" || rest == ":" { // RFC 3986 allows an empty port
		return host, "", nil
	}
	if rest[0] != ':' {
		return bad("text after the host")
	}
	if port, err = ParsePort(rest[1:]); err != nil {
		return "", "", fmt.Errorf("%w %q: %v", ErrInvalidHost, authority, err)
	}
	return host, port, nil
}

// ParsePort reads a decimal port 1-65535 (as X-Forwarded-Port or a
// Forwarded port= carries it) and returns it without leading zeros.
func ParsePort(s string) (string, error) {
	if !isDigits(s, 5) {
		return "", fmt.Errorf("port %q is not a number", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q is out of range", s)
	}
	return strconv.Itoa(n), nil
}

func isHostChar(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_'
}
