package gateway

import (
	"path"
	"sort"
	"strings"
)

// route is a configured Route with what the hot path needs precomputed.
type route struct {
	Route
	prefix   string // normalized: no trailing slash except for "/"
	tier     *tierState
	label    string // metrics label
	proxy    *routeProxy
	scopeStr string      // for the insufficient_scope challenge
	cors     *corsPolicy // nil: no CORS
	// forwarded is the Forwarded value when public_url fixes it for every
	// request; "" when it is worked out per request.
	forwarded string
}

// forwardedPrefix is the part of the path the route removes, which the
// Forwarded prefix= tells the backend; "" when it removes none.
func (rt *route) forwardedPrefix() string {
	if rt.StripPrefix && rt.prefix != "/" {
		return rt.prefix
	}
	return ""
}

// routeTable finds the longest matching prefix. Routes are few, so a
// sorted slice beats a trie in both speed and clarity.
type routeTable struct {
	routes []*route // longest prefix first
}

func newRouteTable(routes []*route) *routeTable {
	sorted := append([]*route(nil), routes...)
	sort.SliceStable(sorted, func(i, j int) bool { return len(sorted[i].prefix) > len(sorted[j].prefix) })
	return &routeTable{routes: sorted}
}

// match returns the route for a request path, or nil.
func (t *routeTable) match(p string) *route {
	for _, r := range t.routes {
		if prefixMatches(r.prefix, p) {
			return r
		}
	}
	return nil
}

// prefixMatches compares whole segments: "/a" matches "/a" and "/a/b" but
// not "/ab", so a route never captures a sibling it was not meant for.
func prefixMatches(prefix, p string) bool {
	if prefix == "/" {
		return strings.HasPrefix(p, "/")
	}
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}

// cleanPath reports whether p (the decoded path) is in canonical form.
// The gateway matches routes on the decoded path; a backend that resolves
// "..", "." or "//" itself could otherwise be reached outside the route
// the gateway authorized ("/public/../admin"). Such requests are refused,
// not rewritten, so the gateway and the backend can never disagree. The
// same goes for spellings some servers also treat as dot segments or
// separators: backslashes (IIS), control characters, and ';' anywhere:
// Tomcat, Jetty and Spring cut path parameters off every segment, so
// "/api/admin;x/users" is /api/admin/users to them but a sibling of
// /api/admin to a segment-wise prefix match. Since p is decoded, the
// encoded forms (%3B, %5C, %2E%2E, %00) are refused alike.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' || c == ';' {
			return false
		}
	}
	c := path.Clean(p)
	// path.Clean drops a trailing slash, which is harmless.
	return c == p || (strings.HasSuffix(p, "/") && c+"/" == p)
}

// rawPrefixIntact reports whether the escaped path, as it is forwarded,
// starts with the same segments as the decoded path the route matched: no
// encoded slash (%2F) may sit inside the part the route prefix covers.
// The gateway matched "/api%2Fadmin/x" as /api/admin/x, but a backend that
// keeps %2F as data routes on a first segment "api%2Fadmin" instead, so
// the route the gateway checked and the resource the backend serves could
// differ. An encoded slash after the prefix ("/files/a%2Fb") cannot change
// the route and passes unchanged: it is the backend's business.
func rawPrefixIntact(prefix, escaped string) bool {
	if prefix == "/" {
		return true
	}
	// The first n segments of escaped end at its (n+1)th '/', where n is
	// the number of segments in prefix.
	n := strings.Count(prefix, "/")
	end := len(escaped)
	for i, seen := 0, 0; i < len(escaped); i++ {
		if escaped[i] == '/' {
			if seen == n {
				end = i
				break
			}
			seen++
		}
	}
	head := escaped[:end]
	return !strings.Contains(head, "%2F") && !strings.Contains(head, "%2f")
}

// stripPrefix removes the route prefix from a path, keeping it absolute.
func stripPrefix(prefix, p string) string {
	if prefix == "/" {
		return p
	}
	rest := p[len(prefix):]
	if rest == "" {
		return "/"
	}
	return rest
}
