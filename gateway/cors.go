package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/postern-auth/postern/confjson"
)

// CORS lets pages on other origins call a route from a browser (the
// Fetch standard's CORS protocol). On such a route the gateway answers
// preflights itself, without a token and without asking the backend, and
// it owns every Access-Control-* response header: the backend's are
// removed. CORS only decides which pages may read a response; it is not
// authorization, so a request from an origin not listed is still checked
// and proxied as any other, just without CORS headers.
type CORS struct {
	// AllowedOrigins are exact origins as browsers send them:
	// scheme://host[:port], lower case, without the scheme's default port
	// and without a path. "*" alone allows every origin (not together with
	// AllowCredentials).
	AllowedOrigins []string
	// AllowedHeaders are the request headers a page may set beyond the
	// CORS-safelisted ones. Authorization is always allowed.
	AllowedHeaders []string
	// ExposedHeaders are the response headers a page may read beyond the
	// safelisted ones. The gateway's own (WWW-Authenticate, Retry-After,
	// RateLimit-*) are always exposed, so a page can read why it was
	// refused.
	ExposedHeaders []string
	// MaxAge is how long a browser may reuse a preflight answer, in whole
	// seconds up to MaxCORSMaxAge. Zero sends no Access-Control-Max-Age
	// (browsers then keep it 5 seconds).
	MaxAge time.Duration
	// AllowCredentials lets pages send cookies and TLS client certificates
	// (Access-Control-Allow-Credentials). A bearer token in Authorization
	// does not need it.
	AllowCredentials bool
}

// MaxCORSMaxAge is the longest preflight cache accepted; Firefox caps it
// here and Chromium at 2h.
const MaxCORSMaxAge = 24 * time.Hour

// Preflights carry no token, so no client is known to rate-limit. They are
// answered from memory, as cheap as a 401, but an address can still only
// send so many: preflightTier per client address (as trusted_proxies
// resolves it), whatever the route's tier.
var preflightLimit = Tier{Requests: 100, Per: time.Second, Burst: 200}

// gatewayExposed are response headers the gateway itself sets; a page
// needs them to handle the gateway's refusals (scope in the challenge,
// when to retry).
var gatewayExposed = []string{"WWW-Authenticate", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"}

// corsMethods are the methods a preflight may ask for: the standard ones
// a route can serve. Methods are case-sensitive; browsers upper-case only
// DELETE, GET, HEAD, OPTIONS, POST and PUT, so "patch" is not PATCH.
// CONNECT and TRACE are forbidden in fetch anyway.
var corsMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// corsPolicy is a route's CORS with the header values precomputed.
type corsPolicy struct {
	origins       map[string]bool
	any           bool // "*": every origin, answered with "*"
	credentials   bool
	allowHeaders  string
	exposeHeaders string
	maxAge        string // "" : no Access-Control-Max-Age
}

func newCORSPolicy(c *CORS) *corsPolicy {
	if c == nil {
		return nil
	}
	p := &corsPolicy{origins: map[string]bool{}, credentials: c.AllowCredentials}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			p.any = true
		}
		p.origins[o] = true
	}
	p.allowHeaders = headerList(append([]string{"Authorization"}, c.AllowedHeaders...))
	p.exposeHeaders = headerList(append(append([]string(nil), gatewayExposed...), c.ExposedHeaders...))
	if s := int64(c.MaxAge / time.Second); s > 0 {
		p.maxAge = strconv.FormatInt(s, 10)
	}
	return p
}

// headerList joins names for an Access-Control-*-Headers value, dropping
// case-insensitive repeats.
func headerList(names []string) string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		k := strings.ToLower(n)
		if !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// allowOrigin is the Access-Control-Allow-Origin value for r, "" when its
// Origin is absent or not allowed. A request with several Origin headers
// is not from a browser and gets none.
func (p *corsPolicy) allowOrigin(r *http.Request) string {
	vals := r.Header["Origin"]
	if len(vals) != 1 || vals[0] == "" {
		return ""
	}
	if p.any {
		return "*" // never with credentials: refused at configuration
	}
	if p.origins[vals[0]] {
		return vals[0]
	}
	return ""
}

// isPreflight: an OPTIONS request with Origin and
// Access-Control-Request-Method. Any other OPTIONS is an ordinary request
// and needs a token like the rest.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && len(r.Header["Origin"]) > 0 &&
		len(r.Header["Access-Control-Request-Method"]) > 0
}

// preflight answers a CORS preflight itself: 204 with the Access-Control-
// Allow-* headers for an allowed origin and method, 403 without any CORS
// header otherwise (the browser then refuses the actual request). It is
// never proxied and needs no token.
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request, p *corsPolicy) {
	h := w.Header()
	h["Vary"] = []string{"Origin, Access-Control-Request-Method"}
	if d := g.limiter.take(g.preflightTier, "ip:"+g.fwd.clientIP(r)); !d.allowed {
		retryAfter(w, d.retryAfter)
		writeError(w, http.StatusTooManyRequests, "rate_limited", "Too many preflight requests; see Retry-After.")
		return
	}
	allow := p.allowOrigin(r)
	if allow == "" {
		writeError(w, http.StatusForbidden, "origin_not_allowed", "This origin may not call this route from a browser.")
		return
	}
	method := r.Header["Access-Control-Request-Method"]
	if len(method) != 1 || !corsMethods[method[0]] {
		writeError(w, http.StatusForbidden, "method_not_allowed", "This method may not be used from a browser.")
		return
	}
	h["Access-Control-Allow-Origin"] = []string{allow}
	if p.credentials {
		h["Access-Control-Allow-Credentials"] = []string{"true"}
	}
	h["Access-Control-Allow-Methods"] = []string{method[0]}
	h["Access-Control-Allow-Headers"] = []string{p.allowHeaders}
	if p.maxAge != "" {
		h["Access-Control-Max-Age"] = []string{p.maxAge}
	}
	w.WriteHeader(http.StatusNoContent)
}

// actual sets the CORS headers of an ordinary request's response before
// anything is written, so the gateway's own refusals (401, 403, 429, 502,
// 503, 504) carry them as well as the backend's answer: a page must be
// able to read why it was refused. Vary: Origin goes on every response of
// the route, so a cache never serves one origin's answer to another.
func (p *corsPolicy) actual(h http.Header, r *http.Request) {
	h["Vary"] = []string{"Origin"}
	allow := p.allowOrigin(r)
	if allow == "" {
		return
	}
	h["Access-Control-Allow-Origin"] = []string{allow}
	if p.credentials {
		h["Access-Control-Allow-Credentials"] = []string{"true"}
	}
	h["Access-Control-Expose-Headers"] = []string{p.exposeHeaders}
}

// stripBackendCORS removes the backend's Access-Control-* headers (the
// gateway's, set in actual, are already on the client response) and
// Origin from its Vary, which the gateway already sends.
func stripBackendCORS(h http.Header) {
	for name := range h {
		if len(name) >= len("Access-Control-") && strings.EqualFold(name[:len("Access-Control-")], "Access-Control-") {
			delete(h, name)
		}
	}
	vary, ok := h["Vary"]
	if !ok {
		return
	}
	var out []string
	for _, v := range vary {
		var keep []string
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !strings.EqualFold(tok, "Origin") {
				keep = append(keep, tok)
			}
		}
		if len(keep) > 0 {
			out = append(out, strings.Join(keep, ", "))
		}
	}
	if len(out) == 0 {
		delete(h, "Vary")
	} else {
		h["Vary"] = out
	}
}

// check holds a route's CORS (at path, "routes[i].cors") to its rules.
// Origins must be written exactly as browsers send them, so the gateway
// compares strings.
func (c *CORS) check(path string) error {
	if len(c.AllowedOrigins) == 0 {
		return confjson.Errorf(path+".allowed_origins", `at least one origin is required, e.g. ["https://app.example.com"]`)
	}
	seen := map[string]int{}
	for i, o := range c.AllowedOrigins {
		at := confjson.Index(path+".allowed_origins", i)
		switch {
		case o == "*" && len(c.AllowedOrigins) > 1:
			return confjson.Errorf(at, `"*" allows every origin and must be the only entry`)
		case o == "*" && c.AllowCredentials:
			return confjson.Errorf(path+".allow_credentials", `cannot be true with the origin "*": list the origins that may send credentials`)
		case o == "*":
		default:
			if j, dup := seen[o]; dup {
				return confjson.Errorf(at, "%q is already listed as allowed_origins[%d]", o, j)
			}
			if err := CheckOrigin(o); err != nil {
				return confjson.Errorf(at, "%v", err)
			}
		}
		seen[o] = i
	}
	for i, h := range c.AllowedHeaders {
		if err := CheckCORSHeader(h); err != nil {
			return confjson.Errorf(confjson.Index(path+".allowed_headers", i), "%v", err)
		}
	}
	for i, h := range c.ExposedHeaders {
		if err := CheckCORSHeader(h); err != nil {
			return confjson.Errorf(confjson.Index(path+".exposed_headers", i), "%v", err)
		}
	}
	if err := CheckCORSMaxAge(c.MaxAge); err != nil {
		return confjson.Errorf(path+".max_age", "%v", err)
	}
	return nil
}

// CheckOrigin validates one entry of allowed_origins other than "*": an
// origin exactly as a browser serializes it in the Origin header, so that
// the gateway can compare strings.
func CheckOrigin(o string) error {
	const want = "expected scheme://host[:port] such as https://app.example.com"
	switch {
	case o == "":
		return errors.New("origin is empty")
	case o == "*":
		return errors.New(`"*" must be the only origin`)
	case o == "null":
		return errors.New(`the "null" origin is shared by sandboxed frames and local files; it cannot be allowed`)
	case strings.Contains(o, "*"):
		return fmt.Errorf("%q: wildcards are not supported; list each origin", o)
	}
	u, err := url.Parse(o)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return fmt.Errorf("%q is not an origin; %s", o, want)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: the scheme must be http or https", o)
	}
	if u.User != nil {
		return fmt.Errorf("%q: an origin has no user info", o)
	}
	host, port := u.Hostname(), u.Port()
	canon := u.Scheme + "://"
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%q: an origin has no IPv6 zone", o)
		}
		if a.Is6() {
			canon += "[" + a.String() + "]"
		} else {
			canon += a.String()
		}
	} else {
		lower := strings.ToLower(host)
		if !validHostname(lower) {
			return fmt.Errorf("%q: %q is not a valid host name (write internationalized names in their xn-- form)", o, host)
		}
		canon += lower
	}
	if strings.HasSuffix(u.Host, ":") {
		return fmt.Errorf("%q: the port is empty", o)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: invalid port %q", o, port)
		}
		if !(u.Scheme == "http" && n == 80 || u.Scheme == "https" && n == 443) {
			canon += ":" + strconv.Itoa(n)
		}
	}
	if u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(o, "?#") {
		return fmt.Errorf("%q: an origin has no path, query or fragment; did you mean %q?", o, canon)
	}
	if canon != o {
		return fmt.Errorf("%q: browsers send this origin as %q; write it that way", o, canon)
	}
	return nil
}

// validHostname: dot-separated labels of a-z 0-9 - _ (lower case), not
// starting or ending with '-'. A name whose last label is numeric would be
// read as an IPv4 address by browsers, so it must be a valid one.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != "" && !strings.HasPrefix(last, "0x")
}

// CheckCORSHeader validates a header name in allowed_headers or
// exposed_headers.
func CheckCORSHeader(name string) error {
	switch {
	case name == "":
		return errors.New("header name is empty")
	case name == "*":
		return errors.New(`wildcards are not supported; list the header names ("*" never covers Authorization, and is literal with credentials)`)
	}
	for i := 0; i < len(name); i++ {
		if !isTchar(name[i]) {
			return errors.New("header name " + quote(name) + " has characters not allowed in a header name")
		}
	}
	return nil
}

// CheckCORSMaxAge validates max_age: whole seconds from 0 to MaxCORSMaxAge.
func CheckCORSMaxAge(d time.Duration) error {
	switch {
	case d < 0:
		return fmt.Errorf("must be at least 0s, got %s", d)
	case d > MaxCORSMaxAge:
		return fmt.Errorf("must be at most %s (browsers cap it: Firefox at 24h, Chromium at 2h), got %s", MaxCORSMaxAge, d)
	case d%time.Second != 0:
		return fmt.Errorf("is sent in whole seconds, got %s", d)
	}
	return nil
}
