package confjson

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// The value syntaxes below appear in both the server's and the gateway's
// files; they live here because the gateway may not import the server's
// packages, and one rule must not become two.

// Issuer checks an issuer URL (RFC 8414 §2) and returns it without a
// trailing slash.
func Issuer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("expected an absolute http(s) URL, got %q", s)
	}
	// ContainsAny also catches a bare "?" or "#", which url.Parse records as
	// empty RawQuery and Fragment.
	if strings.ContainsAny(s, "?#") || u.User != nil {
		return "", errors.New("must not contain a query, fragment or user info (RFC 8414 §2)")
	}
	return strings.TrimSuffix(s, "/"), nil
}

// LoopbackHost reports whether host (a URL's Hostname) is localhost or a
// loopback IP: the only hosts plain http is allowed for, since nothing
// between the two ends can read or alter what travels there.
func LoopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// HTTPSURL checks an absolute URL Postern fetches trusted content from or
// tells clients to send tokens to: https, or plain http on a loopback
// address only (development), without user info or a fragment.
func HTTPSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	// Contains also catches a bare "#", which url.Parse records as an
	// empty fragment.
	if u.User != nil || strings.Contains(s, "#") {
		return fmt.Errorf("%q must not contain user info or a fragment", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if LoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is only allowed for loopback addresses; use https", s)
	}
	return fmt.Errorf("%q: want an https URL", s)
}

// HostPort checks a listen address.
func HostPort(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("expected host:port, got %q", s)
	}
	return nil
}

var (
	// RFC 6749 §3.3 scope-token characters.
	scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
	// Client IDs appear in URLs, logs and HTTP Basic; keep them unambiguous.
	clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
)

// ScopeToken reports whether s is one scope (RFC 6749 §3.3).
func ScopeToken(s string) bool { return scopeToken.MatchString(s) }

// ClientID checks a client_id: clients' own and the one the gateway
// introspects with.
func ClientID(s string) error {
	if !clientIDPattern.MatchString(s) {
		return fmt.Errorf("%q must be 1-128 characters of A-Z a-z 0-9 . _ ~ -", s)
	}
	return nil
}
