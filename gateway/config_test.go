package gateway

import (
	"crypto/tls"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestConfigCheckOnceRules holds a hand-built Config to the rules that,
// before issue 15, only the command's file loader checked: New refused
// none of these. Each case is the smallest change to a valid Config.
func TestConfigCheckOnceRules(t *testing.T) {
	valid := func() Config {
		return Config{Issuer: "http://127.0.0.1:4444", ClientID: "gw", ClientSecret: "s",
			Routes: []Route{{PathPrefix: "/api", Upstream: mustURL("http://127.0.0.1:9000")}}}
	}
	route := func(change func(*Route)) func(*Config) {
		return func(c *Config) { change(&c.Routes[0]) }
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"issuer with a query", func(c *Config) { c.Issuer = "https://auth.example.com/?x=1" }, "config: issuer: must not contain a query"},
		{"issuer not http", func(c *Config) { c.Issuer = "ftp://auth.example.com" }, "config: issuer: expected an absolute http(s) URL"},
		{"client_id syntax", func(c *Config) { c.ClientID = "gate way" }, `config: client_id: "gate way" must be 1-128 characters`},
		{"public_url relative", func(c *Config) { c.PublicURL = mustURL("api.example.com") }, "config: public_url: expected an absolute http(s) URL"},
		{"public_url user info", func(c *Config) { c.PublicURL = mustURL("https://u@api.example.com") }, "config: public_url: must not contain user info"},
		{"public_url host", func(c *Config) { c.PublicURL = &url.URL{Scheme: "https", Host: "api example"} }, `config: public_url: "api example" is not a valid host name`},
		{"no routes", func(c *Config) { c.Routes = nil }, "config: routes: at least one route is required"},
		{"path_prefix empty", route(func(r *Route) { r.PathPrefix = "" }), "config: routes[0].path_prefix: is required"},
		{"path_prefix dot segments", route(func(r *Route) { r.PathPrefix = "/a/../b" }), `config: routes[0].path_prefix: "/a/../b" must be a clean absolute path`},
		{"path_prefix escaped", route(func(r *Route) { r.PathPrefix = "/a%2Fb" }), `config: routes[0].path_prefix: "/a%2Fb" must be a clean absolute path`},
		{"path_prefix /healthz", route(func(r *Route) { r.PathPrefix = "/healthz" }), "config: routes[0].path_prefix: /healthz is the gateway's own health check"},
		{"path_prefix below /healthz", route(func(r *Route) { r.PathPrefix = "/healthz/x" }), "config: routes[0].path_prefix: /healthz is the gateway's own health check"},
		{"upstream user info", route(func(r *Route) { r.Upstream = mustURL("http://u:p@127.0.0.1:9000") }), "config: routes[0].upstream: must not contain credentials"},
		{"upstream fragment", route(func(r *Route) { r.Upstream = mustURL("http://127.0.0.1:9000/#x") }), "config: routes[0].upstream: must not contain a fragment"},
		{"scope syntax", route(func(r *Route) { r.Scopes = []string{`re"ad`} }), "config: routes[0].scopes[0]: invalid scope"},
		{"basic without username", route(func(r *Route) { r.BasicAuth = &BasicAuth{Password: "p"} }), "config: routes[0].upstream_auth.basic.username: is required"},
		{"basic username with colon", route(func(r *Route) { r.BasicAuth = &BasicAuth{Username: "a:b", Password: "p"} }), "config: routes[0].upstream_auth.basic.username: is required and must not contain ':'"},
		{"basic without password", route(func(r *Route) { r.BasicAuth = &BasicAuth{Username: "a"} }), "config: routes[0].upstream_auth.basic.password: is required"},
		{"tls toward http", route(func(r *Route) { r.TLS = &tls.Config{} }), "config: routes[0].upstream_auth.tls: needs an https upstream"},
		{"tier name", func(c *Config) { c.Tiers = map[string]Tier{"gold tier": {Requests: 1, Per: time.Second}} }, "config: tiers.gold tier: tier names are 1-64 characters"},
		{"tier per below 1ms", func(c *Config) { c.Tiers = map[string]Tier{"gold": {Requests: 1, Per: time.Microsecond}} }, "config: tiers.gold.per: must be at least 1ms, got 1µs"},
		{"claim name empty", func(c *Config) { c.ClaimHeaders = map[string]string{"": "X-A"} }, "config: claim_headers: a claim name is empty"},
		{"claim header twice", func(c *Config) { c.ClaimHeaders = map[string]string{"a": "X-A", "b": "x-a"} }, `config: claim_headers.b: header x-a already carries claim "a"`},
	}
	if _, err := New(valid()); err != nil {
		t.Fatalf("the valid config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "gateway: "+tt.want) {
				t.Errorf("New: %v\n want prefix %q", err, "gateway: "+tt.want)
			}
		})
	}
}
