package gateway

import (
	"errors"
	"net/http"
	"strings"
)

// Identity headers the backend trusts (DESIGN.md).
const (
	HeaderUserID    = "X-Authenticated-Userid"
	HeaderScope     = "X-Authenticated-Scope"
	HeaderClientID  = "X-Authenticated-Client-Id"
	HeaderTier      = "X-Authenticated-Tier"
	HeaderForwarded = "Forwarded"
)

// forwardingHeaders describe the client to the backend; only the gateway's
// own Forwarded reaches it.
var forwardingHeaders = []string{
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
	"X-Forwarded-Ssl", "X-Real-Ip", "X-Original-Url", "X-Rewrite-Url",
	// Client addresses and identities other proxies and CDNs set, which
	// backends and WAFs commonly believe (Envoy's mTLS caller identity
	// among them): a client must not be able to choose them.
	"X-Forwarded-Client-Cert", "True-Client-Ip", "X-Client-Ip", "Cf-Connecting-Ip",
	"Fastly-Client-Ip", "X-Cluster-Client-Ip",
}

// protectedHeaders is the set of names no client may send to a backend:
// identity headers, forwarding headers and configured claim headers.
//
// Names are compared after mapping '_' to '-' and canonicalizing case.
// Go canonicalizes "x-authenticated-userid" to the same key already, but
// "X_Authenticated_Userid" stays distinct to Go while CGI, WSGI, Rack, PHP
// and nginx's variables all fold it into HTTP_X_AUTHENTICATED_USERID, the
// very variable the real header lands in. Removing the underscore spelling
// too closes that spoofing path; other underscore headers pass untouched.
type protectedHeaders map[string]bool

func newProtectedHeaders(claimHeaders map[string]string) protectedHeaders {
	p := protectedHeaders{}
	for _, h := range []string{HeaderUserID, HeaderScope, HeaderClientID, HeaderTier} {
		p[http.CanonicalHeaderKey(h)] = true
	}
	for _, h := range forwardingHeaders {
		p[http.CanonicalHeaderKey(h)] = true
	}
	for _, h := range claimHeaders {
		p[http.CanonicalHeaderKey(h)] = true
	}
	return p
}

// strip deletes every protected header from h, in any spelling.
func (p protectedHeaders) strip(h http.Header) {
	for name := range h {
		if p[name] {
			delete(h, name)
			continue
		}
		// Rare path: only names Go could not fully canonicalize.
		if strings.IndexByte(name, '_') >= 0 || name != http.CanonicalHeaderKey(name) {
			if p[http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))] {
				delete(h, name)
			}
		}
	}
}

// setIdentity writes the identity headers for id. X-Authenticated-Userid
// is absent for client-credentials tokens: no user is involved.
// X-Authenticated-Tier is the tier the request was limited in, which may
// be the route's rather than the one the token names.
func setIdentity(h http.Header, id *Identity, tier string, claimHeaders map[string]string) {
	if id.Subject != "" {
		h[HeaderUserID] = []string{id.Subject}
	}
	if tier != "" {
		h[HeaderTier] = []string{tier}
	}
	h[HeaderScope] = []string{id.Scope}
	h[HeaderClientID] = []string{id.ClientID}
	// claimHeaders is canonicalized once at start; id.Claims holds only
	// claims named there, already checked by validHeaderValue.
	for claim, header := range claimHeaders {
		if v, ok := id.Claims[claim]; ok {
			h[header] = []string{v}
		}
	}
}

// validHeaderValue refuses control characters: a claim value carrying
// CR/LF must never reach a backend's header parser, and Go's transport
// would fail the whole request on it.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// reservedHeaders cannot carry claims: they are the gateway's own or they
// change how the request is routed or framed.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Host": true, "Connection": true, "Content-Length": true,
	"Transfer-Encoding": true, "Te": true, "Trailer": true, "Upgrade": true,
	"Keep-Alive": true, "Proxy-Authorization": true, "Proxy-Connection": true, "Cookie": true,
}

// CheckClaimHeader validates a header name configured in claim_headers.
func CheckClaimHeader(name string) error {
	if name == "" {
		return errors.New("header name is empty")
	}
	for i := 0; i < len(name); i++ {
		if !isTchar(name[i]) {
			return errors.New("header name " + quote(name) + " has characters not allowed in a header name")
		}
	}
	if strings.IndexByte(name, '_') >= 0 {
		return errors.New("header name " + quote(name) + " has an underscore; many servers drop or merge such headers, use '-'")
	}
	c := http.CanonicalHeaderKey(name)
	if reservedHeaders[c] {
		return errors.New("header " + c + " cannot carry a claim")
	}
	if c == HeaderUserID || c == HeaderScope || c == HeaderClientID || c == HeaderTier {
		return errors.New("header " + c + " is set by the gateway itself")
	}
	for _, f := range forwardingHeaders {
		if c == f {
			return errors.New("header " + c + " is set by the gateway itself")
		}
	}
	return nil
}

func quote(s string) string { return `"` + s + `"` }

// isTchar is RFC 7230 §3.2.6 tchar, the characters of a header name.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
