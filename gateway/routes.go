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

// cleanPath reports whether p is in canonical form. The gateway matches
// routes on the decoded path; a backend that resolves "..", "." or "//"
// itself could otherwise be reached outside the route the gateway
// authorized ("/public/../admin"). Such requests are refused, not
// rewritten, so the gateway and the backend can never disagree. The same
// goes for spellings some servers also treat as dot segments or
// separators: "..;" (path parameters, as in Tomcat), backslashes (IIS) and
// control characters.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
			return false
		}
	}
	c := path.Clean(p)
	// path.Clean drops a trailing slash, which is harmless.
	return c == p || (strings.HasSuffix(p, "/") && c+"/" == p)
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
