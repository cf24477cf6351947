package gateway

import "testing"

func TestRouteMatch(t *testing.T) {
	mk := func(p string) *route { return &route{prefix: normalizePrefix(p), label: normalizePrefix(p)} }
	table := newRouteTable([]*route{mk("/"), mk("/search"), mk("/search/v1/"), mk("/search/v10"), mk("/billing")})
	tests := []struct {
		path, want string
	}{
		{"/search/v1", "/search/v1"},
		{"/search/v1/", "/search/v1"},
		{"/search/v1/query", "/search/v1"},
		{"/search/v10/query", "/search/v10"},
		{"/search/v2", "/search"},
		{"/search", "/search"},
		{"/searchx", "/"},
		{"/billing/x/y", "/billing"},
		{"/billingx", "/"},
		{"/", "/"},
		{"/other", "/"},
	}
	for _, tt := range tests {
		got := table.match(tt.path)
		if got == nil || got.label != tt.want {
			t.Errorf("match(%q) = %v, want %s", tt.path, got, tt.want)
		}
	}
	noRoot := newRouteTable([]*route{mk("/a")})
	if r := noRoot.match("/b"); r != nil {
		t.Errorf("match(/b) without a root route = %s, want none", r.label)
	}
}

func TestCleanPath(t *testing.T) {
	// cleanPath sees the decoded path (URL.Path): "%3B" arrives as ";",
	// "%2e%2e" as "..", "%5C" as a backslash, "%2F" as "/".
	tests := map[string]bool{
		"/":              true,
		"/a":             true,
		"/a/":            true,
		"/a/b":           true,
		"":               false,
		"a":              false,
		"/a/../b":        false,
		"/public/../api": false,
		"/a/./b":         false,
		"/a//b":          false,
		"/a//":           false,
		"/..":            false,
		"/a/..":          false,
		"/a/..\\b":       false,
		"/a/\x00":        false,
		"/a/\x7f":        false,
		"/a/...":         true,
		"/a/.b":          true,
		"/a/b.":          true,
		"/a/%3B":         true, // decoded from %253B: a literal "%3B" to a backend that decodes once

		// Path parameters, in any segment, raw or decoded from %3B/%3b.
		"/api/admin;x/users":      false,
		"/api/admin;/users":       false,
		"/api;x/admin":            false,
		"/api/admin/users;jsid=1": false,
		"/a;x=1/b":                false,
		";":                       false,
		"/;":                      false,
		"/a/..;/b":                false,
		"/a/.;x/b":                false,
		"/a/;/b":                  false,
	}
	for p, want := range tests {
		if got := cleanPath(p); got != want {
			t.Errorf("cleanPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestRawPrefixIntact(t *testing.T) {
	tests := []struct {
		prefix, escaped string
		want            bool
	}{
		{"/", "/a%2Fb", true},
		{"/", "/%2F", true},
		{"/api", "/api", true},
		{"/api", "/api/", true},
		{"/api", "/api/x%2Fy", true}, // after the prefix: the backend's business
		{"/api", "/api/x%2fy/z", true},
		{"/api/admin", "/api/admin/users", true},
		{"/api/admin", "/api/admin/a%2Fb", true},
		{"/api/admin", "/api/%61dmin/users", true}, // other escapes decode to the same segment
		{"/api/admin", "/api%2Fadmin/users", false},
		{"/api/admin", "/api%2fadmin/users", false},
		{"/api/admin", "/api%2Fadmin", false},
		{"/api/admin", "/api/admin%2Fusers", false}, // decoded /api/admin/users, raw segment "admin%2Fusers"
		{"/api", "/api%2Fusers", false},
		{"/a/b/c", "/a/b%2Fc", false},
		{"/a/b/c", "/a/b/c%2F", false},
	}
	for _, tt := range tests {
		if got := rawPrefixIntact(tt.prefix, tt.escaped); got != tt.want {
			t.Errorf("rawPrefixIntact(%q, %q) = %v, want %v", tt.prefix, tt.escaped, got, tt.want)
		}
	}
}

func TestStripPrefix(t *testing.T) {
	tests := []struct{ prefix, path, want string }{
		{"/search/v1", "/search/v1/query", "/query"},
		{"/search/v1", "/search/v1", "/"},
		{"/search/v1", "/search/v1/", "/"},
		{"/", "/x", "/x"},
	}
	for _, tt := range tests {
		if got := stripPrefix(tt.prefix, tt.path); got != tt.want {
			t.Errorf("stripPrefix(%q, %q) = %q, want %q", tt.prefix, tt.path, got, tt.want)
		}
	}
}
