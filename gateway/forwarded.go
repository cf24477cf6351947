package gateway

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// clientView is the request as the client saw it: the scheme, host and
// port it connected to, and any path prefix a proxy in front removed.
type clientView struct {
	proto  string // "http" or "https"
	host   string // without port; IPv6 in brackets
	port   string // empty for the proto's default port
	prefix string // removed by a trusted front proxy, e.g. "/api"
}

// forwardedPolicy decides whose word about the client view counts.
type forwardedPolicy struct {
	public  *clientView // from Config.PublicURL; wins over everything
	trusted []netip.Prefix
	// rfc7239: the trusted proxies set Forwarded; otherwise X-Forwarded-*.
	// Only that family is read. A proxy overwrites the headers it sets but
	// passes the other family on from the client as it came, so reading
	// both would let the client speak for the proxy.
	rfc7239 bool
}

// newForwardedPolicy: header is Config.ForwardedHeader ("" means
// ForwardedHeaderX).
func newForwardedPolicy(publicURL *url.URL, trusted []netip.Prefix, header string) *forwardedPolicy {
	p := &forwardedPolicy{trusted: trusted, rfc7239: header == ForwardedHeaderRFC7239}
	if publicURL != nil {
		v := clientView{proto: strings.ToLower(publicURL.Scheme)}
		v.host, v.port = splitHostPort(publicURL.Host, v.proto)
		if pp := normalizePrefix(publicURL.EscapedPath()); pp != "/" && pp != "" {
			v.prefix = pp
		}
		p.public = &v
	}
	return p
}

// isTrusted reports whether addr (host:port or bare IP) is a trusted proxy.
func (p *forwardedPolicy) isTrusted(addr string) bool {
	if len(p.trusted) == 0 {
		return false
	}
	ip, ok := parseIP(addr)
	if !ok {
		return false
	}
	for _, pfx := range p.trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// view works out the client view of r: PublicURL if configured, else what
// a trusted peer says, else the request itself.
func (p *forwardedPolicy) view(r *http.Request) clientView {
	if p.public != nil {
		// The operator's statement is complete, including any path
		// prefix in public_url; proxies are not asked.
		return *p.public
	}
	if p.isTrusted(r.RemoteAddr) {
		if v, ok := p.fromProxy(r); ok {
			return v
		}
	}
	return directView(r)
}

func directView(r *http.Request) clientView {
	v := clientView{proto: "http"}
	if r.TLS != nil {
		v.proto = "https"
	}
	v.host, v.port = splitHostPort(r.Host, v.proto)
	return v
}

// fromProxy reads the configured family: Forwarded (RFC 7239) or
// X-Forwarded-*, never the other. It starts from the base the peer itself
// would give and overrides only what the headers state validly, so a
// garbled header degrades to the request.
func (p *forwardedPolicy) fromProxy(r *http.Request) (clientView, bool) {
	base := directView(r)
	if p.rfc7239 {
		el := p.chosenElement(parseForwarded(r.Header.Values("Forwarded")))
		if el == nil {
			return base, false
		}
		return applyProxyValues(base, el["proto"], el["host"], el["port"], el["prefix"]), true
	}
	proto := lastValue(r.Header.Values("X-Forwarded-Proto"))
	host := lastValue(r.Header.Values("X-Forwarded-Host"))
	port := lastValue(r.Header.Values("X-Forwarded-Port"))
	prefix := lastValue(r.Header.Values("X-Forwarded-Prefix"))
	if proto == "" && host == "" && port == "" && prefix == "" {
		return base, false
	}
	return applyProxyValues(base, proto, host, port, prefix), true
}

// chosenElement walks the Forwarded elements from the right: the last was
// written by our (trusted) peer; while it says its own client was also a
// trusted proxy, the element before is believed instead. Elements left of
// the first untrusted hop may be forged by the client and are ignored.
func (p *forwardedPolicy) chosenElement(els []map[string]string) map[string]string {
	if len(els) == 0 {
		return nil
	}
	i := len(els) - 1
	for i > 0 && p.isTrusted(els[i]["for"]) {
		i--
	}
	return els[i]
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
	if host != "" && validHost(host) {
		v.host, v.port = splitHostPort(host, v.proto)
	}
	if port != "" && validPort(port) {
		v.port = port
		if isDefaultPort(v.proto, port) {
			v.port = ""
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
// API guidelines the project follows ask. Values are bare tokens where
// possible; prefix keeps its slashes unquoted to match that contract, and
// anything else outside RFC 7230 tchar (an IPv6 host) is a quoted-string.
func (v clientView) header(routePrefix string) string {
	var b strings.Builder
	b.Grow(64)
	b.WriteString("proto=")
	b.WriteString(v.proto)
	b.WriteString(";host=")
	writeValue(&b, v.host, false)
	if v.port != "" {
		b.WriteString(";port=")
		b.WriteString(v.port)
	}
	if pfx := joinPrefix(v.prefix, routePrefix); pfx != "" {
		b.WriteString(";prefix=")
		writeValue(&b, pfx, true)
	}
	return b.String()
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

func writeValue(b *strings.Builder, s string, slashOK bool) {
	bare := s != ""
	for i := 0; i < len(s) && bare; i++ {
		bare = isTchar(s[i]) || (slashOK && s[i] == '/')
	}
	if bare {
		b.WriteString(s)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
}

// isTchar is RFC 7230 §3.2.6 tchar.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// splitHostPort separates an authority into host and a non-default port.
func splitHostPort(authority, proto string) (host, port string) {
	host = authority
	if h, p, err := net.SplitHostPort(authority); err == nil {
		host, port = h, p
		if strings.IndexByte(h, ':') >= 0 {
			host = "[" + h + "]"
		}
	}
	host = strings.ToLower(host)
	if isDefaultPort(proto, port) {
		port = ""
	}
	return host, port
}

func isDefaultPort(proto, port string) bool {
	return port == "" || (proto == "https" && port == "443") || (proto == "http" && port == "80")
}

// validHost accepts reg-name, IPv4 and bracketed IPv6, with an optional
// port: enough to refuse anything that could break the header or a link.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']'
		if !ok {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
		n = n*10 + int(p[i]-'0')
	}
	return n > 0 && n < 65536
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

// lastValue is the rightmost element of a comma-separated header: the one
// our trusted peer wrote. Earlier ones may come from the client.
func lastValue(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	v := vals[len(vals)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// parseIP reads "1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1", or a
// Forwarded for= value ("[2001:db8::1]:4711", quotes already removed).
func parseIP(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseForwarded splits Forwarded header values into elements of
// lower-case parameter names and unquoted values (RFC 7239 §4). Malformed
// pairs are skipped rather than failing the whole header.
func parseForwarded(values []string) []map[string]string {
	var out []map[string]string
	for _, v := range values {
		el := map[string]string{}
		for len(v) > 0 {
			var pair string
			var sep byte
			pair, sep, v = cutUnquoted(v)
			if k, val, ok := strings.Cut(strings.TrimSpace(pair), "="); ok {
				el[strings.ToLower(strings.TrimSpace(k))] = unquote(strings.TrimSpace(val))
			}
			if sep == ',' || len(v) == 0 {
				if len(el) > 0 {
					out = append(out, el)
				}
				el = map[string]string{}
			}
		}
	}
	return out
}

// cutUnquoted returns the text up to the first ';' or ',' outside quotes.
func cutUnquoted(s string) (before string, sep byte, after string) {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case (c == ';' || c == ',') && !inQuote:
			return s[:i], c, s[i+1:]
		}
	}
	return s, 0, ""
}

func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// clientIP is the address rate limits on public routes are keyed by: the
// peer, or, when the peer is a trusted proxy, the nearest untrusted
// address it reports (X-Forwarded-For or Forwarded for=, whichever family
// is configured, read from the right, since entries further left may be
// forged by the client).
func (p *forwardedPolicy) clientIP(r *http.Request) string {
	peer, ok := parseIP(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !p.isTrusted(r.RemoteAddr) {
		return peer.String()
	}
	var chain []string
	if p.rfc7239 {
		for _, el := range parseForwarded(r.Header.Values("Forwarded")) {
			chain = append(chain, el["for"])
		}
	} else {
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, part := range strings.Split(v, ",") {
				chain = append(chain, strings.TrimSpace(part))
			}
		}
	}
	for i := len(chain) - 1; i >= 0; i-- {
		ip, ok := parseIP(chain[i])
		if !ok {
			break // "unknown" or obfuscated: stop at what we can name
		}
		if !p.isTrusted(chain[i]) {
			return ip.String()
		}
	}
	return peer.String()
}
