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
		"/a/..;/b":       false,
		"/a/.;x/b":       false,
		"/a;x=1/b":       true,
		"/a/..\\b":       false,
		"/a/\x00":        false,
		"/a/...":         true,
	}
	for p, want := range tests {
		if got := cleanPath(p); got != want {
			t.Errorf("cleanPath(%q) = %v, want %v", p, got, want)
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
