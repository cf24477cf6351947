package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/postern-auth/postern/netedge"
)

// clientView is the request as the client saw it: the scheme, host and
// port it connected to, and any path prefix a proxy in front removed.
type clientView struct {
	proto  string // "http" or "https"
	host   string // without port; IPv6 in brackets
	port   string // empty for the proto's default port
	prefix string // removed by a trusted front proxy, e.g. "/api"
}

// forwardedPolicy decides whose word about the client view counts. Which
// peers and which header family are believed, and which hop of the chain
// is the client, is netedge's rule, shared with the server.
type forwardedPolicy struct {
	public  *clientView // from Config.PublicURL; wins over everything
	proxies netedge.Proxies
}

// newForwardedPolicy: header is Config.ForwardedHeader ("" means
// ForwardedHeaderX).
func newForwardedPolicy(publicURL *url.URL, trusted []netip.Prefix, header string) (*forwardedPolicy, error) {
	p := &forwardedPolicy{proxies: netedge.Proxies{Trusted: trusted, Header: header}}
	if publicURL != nil {
		v := clientView{proto: strings.ToLower(publicURL.Scheme)}
		host, port, err := netedge.SplitHost(publicURL.Host)
		if err != nil {
			return nil, fmt.Errorf("public_url: %w", err)
		}
		v.host, v.port = host, nonDefaultPort(v.proto, port)
		if pp := normalizePrefix(publicURL.EscapedPath()); pp != "/" && pp != "" {
			v.prefix = pp
		}
		p.public = &v
	}
	return p, nil
}

// view works out the client view of r: PublicURL if configured, else what
// a trusted peer says, else the request itself. Without PublicURL the
// request's Host must be a valid host and port: it is copied into the
// Forwarded header the backend believes.
func (p *forwardedPolicy) view(r *http.Request) (clientView, error) {
	if p.public != nil {
		// The operator's statement is complete, including any path
		// prefix in public_url; proxies are not asked.
		return *p.public, nil
	}
	base := clientView{proto: "http"}
	if r.TLS != nil {
		base.proto = "https"
	}
	host, port, err := netedge.SplitHost(r.Host)
	if err != nil {
		return clientView{}, fmt.Errorf("request Host: %w", err)
	}
	base.host, base.port = host, nonDefaultPort(base.proto, port)
	c := p.proxies.Resolve(r)
	if !c.ViaProxy {
		return base, nil
	}
	return fromProxy(base, c.Element, r.Header, p.proxies.Header == netedge.Forwarded), nil
}

// fromProxy reads the configured family: Forwarded (RFC 7239) or
// X-Forwarded-*, never the other. It starts from the base the peer itself
// would give and overrides only what the headers state validly, so a
// garbled header degrades to the request.
func fromProxy(base clientView, el netedge.Element, h http.Header, rfc7239 bool) clientView {
	if rfc7239 {
		// el is the element written by the proxy next to the client;
		// elements left of it may be forged by the client.
		if el == nil {
			return base
		}
		return applyProxyValues(base, el["proto"], el["host"], el["port"], el["prefix"])
	}
	return applyProxyValues(base,
		netedge.Rightmost(h.Values("X-Forwarded-Proto")),
		netedge.Rightmost(h.Values("X-Forwarded-Host")),
		netedge.Rightmost(h.Values("X-Forwarded-Port")),
		netedge.Rightmost(h.Values("X-Forwarded-Prefix")))
}

// applyProxyValues overrides base with the values a trusted proxy gave,
// each only if well-formed.
func applyProxyValues(v clientView, proto, host, port, prefix string) clientView {
	if pr := strings.ToLower(proto); pr == "http" || pr == "https" {
		if pr != v.proto {
			v.proto = pr
			v.port = "" // the peer's port says nothing about the client's
		}
	}
	if host != "" {
		if h, pt, err := netedge.SplitHost(host); err == nil {
			v.host, v.port = h, nonDefaultPort(v.proto, pt)
		}
	}
	if port != "" {
		if pt, err := netedge.ParsePort(port); err == nil {
			v.port = nonDefaultPort(v.proto, pt)
		}
	}
	if prefix != "" && validPrefix(prefix) {
		v.prefix = normalizePrefix(prefix)
		if v.prefix == "/" {
			v.prefix = ""
		}
	}
	return v
}

// header renders the Forwarded value the backend receives, with routePrefix
// (the part strip_prefix removed, or "") appended to any proxy prefix:
//
//	proto=https;host=api.example.com;prefix=/search/v1
//
// port= appears only for a non-default port and never inside host=, as the
// API guidelines the project follows ask. Every value is a token or a
// quoted-string (an IPv6 host is quoted); prefix keeps its slashes bare to
// match that contract. It fails only for a value with control characters.
func (v clientView) header(routePrefix string) (string, error) {
	var w netedge.ElementWriter
	w.Pair("proto", v.proto)
	w.Pair("host", v.host)
	if v.port != "" {
		w.Pair("port", v.port)
	}
	if pfx := joinPrefix(v.prefix, routePrefix); pfx != "" {
		w.PathPair("prefix", pfx)
	}
	return w.String()
}

// realm is the host clients know the gateway by, for WWW-Authenticate.
func (p *forwardedPolicy) realm() string {
	if p.public == nil {
		return "postern"
	}
	if p.public.port != "" {
		return p.public.host + ":" + p.public.port
	}
	return p.public.host
}

func joinPrefix(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return strings.TrimRight(a, "/") + b
}

// nonDefaultPort is port, or "" when it is proto's default.
func nonDefaultPort(proto, port string) string {
	if (proto == "https" && port == "443") || (proto == "http" && port == "80") {
		return ""
	}
	return port
}

// validPrefix accepts an absolute path of unreserved and sub-delim-free
// characters; a prefix is echoed into links, so it must not carry quotes,
// separators or dot segments.
func validPrefix(p string) bool {
	if len(p) > 1024 || !strings.HasPrefix(p, "/") || !cleanPath(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("/-._~%!$&'()*+=:@", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// clientIP is the address rate limits on public routes are keyed by: the
// client netedge.Proxies.Resolve finds, the same one the server's audit
// log and login throttle name.
func (p *forwardedPolicy) clientIP(r *http.Request) string {
	c := p.proxies.Resolve(r)
	if !c.Addr.IsValid() {
		return r.RemoteAddr
	}
	return c.Addr.String()
}
