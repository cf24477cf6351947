package authz

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

type clientIPKey struct{}

// clientIP is the address the audit log, the login throttle and the account
// page attribute a request to: the peer, or, behind a trusted proxy, the
// client that proxy reported (see withClientIP).
func clientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	return peerIP(r)
}

func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// withClientIP resolves the client address once per request. Forwarding
// headers are believed only from a peer in trusted (behind a load balancer
// every request would otherwise share one address, and one attacker could
// pause logins for everyone); the chain is read from the right and the
// first hop that is not a trusted proxy is the client.
func withClientIP(r *http.Request, trusted []netip.Prefix, header string) *http.Request {
	if len(trusted) == 0 {
		return r
	}
	peer, err := netip.ParseAddr(peerIP(r))
	if err != nil || !isTrusted(peer.Unmap(), trusted) {
		return r
	}
	hops := forwardedFor(r.Header, header)
	client := ""
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // an unparsable hop ends what can be believed
		}
		client = a.Unmap().String()
		if !isTrusted(a.Unmap(), trusted) {
			break
		}
	}
	if client == "" {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), clientIPKey{}, client))
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Which forwarding header the trusted proxies set. Only that one is read:
// proxies commonly set one family and pass the other through from the
// client, who could then choose the address.
const (
	HeaderXForwardedFor = "x-forwarded"
	HeaderForwarded     = "forwarded"
)

// forwardedFor lists the client-side hops, nearest last, from RFC 7239
// for= values or from X-Forwarded-For.
func forwardedFor(h http.Header, header string) []string {
	var hops []string
	if header == HeaderForwarded {
		for _, line := range h.Values("Forwarded") {
			for _, elem := range strings.Split(line, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if !ok || !strings.EqualFold(k, "for") {
						continue
					}
					hops = append(hops, forwardedNode(v))
				}
			}
		}
		return hops
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for _, v := range strings.Split(line, ",") {
			hops = append(hops, strings.TrimSpace(v))
		}
	}
	return hops
}

// forwardedNode strips quotes, brackets and a port from an RFC 7239 node.
func forwardedNode(v string) string {
	v = strings.Trim(strings.TrimSpace(v), `"`)
	if strings.HasPrefix(v, "[") {
		if i := strings.IndexByte(v, ']'); i > 0 {
			return v[1:i]
		}
	}
	if host, _, err := net.SplitHostPort(v); err == nil {
		return host
	}
	return v
}
