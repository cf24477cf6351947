package authz

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/postern-auth/postern/netedge"
)

// Which forwarding header the trusted proxies set (see netedge.Proxies).
const (
	HeaderXForwardedFor = netedge.XForwarded
	HeaderForwarded     = netedge.Forwarded
)

type clientIPKey struct{}

// clientIP is the address the audit log, the login throttle and the account
// page attribute a request to: the peer, or, behind a trusted proxy, the
// client that proxy reported (see withClientIP).
func clientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	if a := netedge.PeerAddr(r.RemoteAddr); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}

// withClientIP resolves the client address once per request, by the rule
// the gateway follows too (netedge.Proxies.Resolve). Forwarding headers
// are believed only from a trusted peer: behind a load balancer every
// request would otherwise share one address, and one attacker could pause
// logins for everyone.
func withClientIP(r *http.Request, trusted []netip.Prefix, header string) *http.Request {
	if len(trusted) == 0 {
		return r
	}
	c := netedge.Proxies{Trusted: trusted, Header: header}.Resolve(r)
	if !c.ViaProxy {
		return r
	}
	return r.WithContext(context.WithValue(r.Context(), clientIPKey{}, c.Addr.String()))
}
