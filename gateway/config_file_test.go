package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mapEnv(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

const gwMinimal = `{
  "issuer": "http://127.0.0.1:4444",
  "client_id": "gateway",
  "client_secret": "${GW_SECRET}",
  "routes": [{"path_prefix": "/api", "upstream": "http://127.0.0.1:9000"}]
}`

func TestParseConfigFull(t *testing.T) {
	cert, key, ca := writeTestKeyPair(t)
	raw := strings.NewReplacer("@CERT@", cert, "@KEY@", key, "@CA@", ca).Replace(`{
  "listen": "0.0.0.0:8443",
  "tls": {"cert_file": "@CERT@", "key_file": "@KEY@"},
  "admin_listen": "127.0.0.1:9090",
  "issuer": "https://auth.example.com/",
  "client_id": "gateway",
  "client_secret": "${GW_SECRET}",
  "audience": "https://api.example.com",
  "public_url": "https://api.example.com",
  "trusted_proxies": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"],
  "forwarded_header": "forwarded",
  "cache": {"ttl": "0s", "negative_ttl": "2s", "max_entries": 500},
  "jwks": {"max_age": "1m", "min_refetch_interval": "0s"},
  "tiers": {"bronze": {"requests": 10, "per": "1s", "burst": 20}, "gold": {"requests": 100, "per": "1m"}},
  "client_tiers": {"billing": "gold"},
  "claim_headers": {"email": "X-Authenticated-Email"},
  "routes": [
    {"path_prefix": "/search/v1/", "upstream": "http://127.0.0.1:9000", "strip_prefix": true, "scopes": ["read"], "tier": "bronze", "timeout": "2s"},
    {"path_prefix": "/billing", "upstream": "https://billing.internal", "upstream_auth": {"tls": {"cert_file": "@CERT@", "key_file": "@KEY@", "ca_file": "@CA@"}}},
    {"path_prefix": "/legacy", "upstream": "http://legacy.internal/app", "upstream_auth": {"basic": {"username": "gw", "password": "${LEGACY_PW}"}}},
    {"path_prefix": "/", "upstream": "http://www.internal", "public": true}
  ]
}`)
	c, err := ParseConfig([]byte(raw), mapEnv(map[string]string{"GW_SECRET": "s3cret", "LEGACY_PW": "pw"}))
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateway
	if c.Listen != "0.0.0.0:8443" || c.TLS == nil || c.AdminListen != "127.0.0.1:9090" {
		t.Errorf("listeners: %+v", c)
	}
	if g.Issuer != "https://auth.example.com" || g.ClientSecret != "s3cret" || g.PublicURL.Host != "api.example.com" {
		t.Errorf("identity: %q %q %v", g.Issuer, g.ClientSecret, g.PublicURL)
	}
	if len(g.TrustedProxies) != 3 || g.TrustedProxies[1].String() != "192.0.2.7/32" {
		t.Errorf("trusted_proxies = %v", g.TrustedProxies)
	}
	if g.ForwardedHeader != ForwardedHeaderRFC7239 {
		t.Errorf("forwarded_header = %q, want %q", g.ForwardedHeader, ForwardedHeaderRFC7239)
	}
	if g.Cache != (CacheConfig{TTL: 0, NegativeTTL: 2 * time.Second, MaxEntries: 500}) {
		t.Errorf("cache = %+v", g.Cache)
	}
	if g.JWKS.MaxAge != time.Minute || g.JWKS.MinRefetchInterval >= 0 {
		t.Errorf("jwks = %+v", g.JWKS)
	}
	if g.Tiers["bronze"] != (Tier{Requests: 10, Per: time.Second, Burst: 20}) || g.ClientTiers["billing"] != "gold" {
		t.Errorf("tiers = %+v, client_tiers = %v", g.Tiers, g.ClientTiers)
	}
	if len(g.Routes) != 4 || g.Routes[0].Timeout != 2*time.Second || g.Routes[1].TLS == nil || g.Routes[1].TLS.RootCAs == nil ||
		len(g.Routes[1].TLS.Certificates) != 1 || g.Routes[2].BasicAuth.Password != "pw" || g.Routes[3].Timeout != DefaultUpstreamTimeout {
		t.Errorf("routes = %+v", g.Routes)
	}
	if _, err := New(g); err != nil {
		t.Errorf("New refuses a config the loader accepted: %v", err)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(gwMinimal), mapEnv(map[string]string{"GW_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.TLS != nil || c.AdminListen != "" {
		t.Errorf("listeners: %+v", c)
	}
	want := CacheConfig{TTL: DefaultCacheTTL, NegativeTTL: DefaultNegativeTTL, MaxEntries: DefaultCacheEntries}
	if c.Gateway.Cache != want {
		t.Errorf("cache = %+v, want %+v", c.Gateway.Cache, want)
	}
	if c.Gateway.ForwardedHeader != ForwardedHeaderX {
		t.Errorf("forwarded_header = %q, want %q by default", c.Gateway.ForwardedHeader, ForwardedHeaderX)
	}
	c, err = ParseConfig([]byte(strings.Replace(gwMinimal, "{\n", "{\n  \"forwarded_header\": \"x-forwarded\",\n", 1)), mapEnv(map[string]string{"GW_SECRET": "x"}))
	if err != nil || c.Gateway.ForwardedHeader != ForwardedHeaderX {
		t.Errorf("forwarded_header x-forwarded: %v, %+v", err, c)
	}
	// A gateway with only public routes needs no authorization server.
	if _, err := ParseConfig([]byte(`{"routes": [{"path_prefix": "/", "upstream": "http://x", "public": true}]}`), mapEnv(nil)); err != nil {
		t.Errorf("public-only config: %v", err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	env := mapEnv(map[string]string{"GW_SECRET": "x"})
	// withField returns gwMinimal with one top-level field added or replaced.
	with := func(field string) string {
		return strings.Replace(gwMinimal, "{\n", "{\n  "+field+",\n", 1)
	}
	route := func(r string) string {
		return strings.Replace(gwMinimal, `{"path_prefix": "/api", "upstream": "http://127.0.0.1:9000"}`, r, 1)
	}
	cors := func(fields string) string {
		return route(`{"path_prefix": "/api", "upstream": "http://127.0.0.1:9000", "cors": {` + fields + `}}`)
	}
	tests := []struct {
		name, raw, want string
	}{
		{"unknown field", with(`"listn": "x"`), `config: unknown field "listn"`},
		{"env missing", strings.Replace(gwMinimal, "GW_SECRET", "NOPE", 1), "config: client_secret: environment variable NOPE is not set"},
		{"listen", with(`"listen": "8080"`), "config: listen: expected host:port"},
		{"admin same as listen", with(`"listen": "127.0.0.1:1", "admin_listen": "127.0.0.1:1"`), "config: admin_listen: must differ"},
		{"issuer", strings.Replace(gwMinimal, "http://127.0.0.1:4444", "ftp://x", 1), "config: issuer:"},
		{"no issuer", strings.Replace(gwMinimal, `"issuer": "http://127.0.0.1:4444",`, "", 1), "config: issuer: is required"},
		{"no secret", strings.Replace(gwMinimal, `"client_secret": "${GW_SECRET}",`, "", 1), "config: client_secret: is required"},
		{"public_url", with(`"public_url": "api.example.com"`), "config: public_url: expected an absolute http(s) URL"},
		{"public_url query", with(`"public_url": "https://api.example.com/?x=1"`), "config: public_url: must not contain"},
		{"trusted proxy", with(`"trusted_proxies": ["10.0.0.0/8", "10.0.0.1/8"]`), "config: trusted_proxies[1]: \"10.0.0.1/8\" has host bits set"},
		{"trusted proxy junk", with(`"trusted_proxies": ["lb.internal"]`), "config: trusted_proxies[0]: \"lb.internal\" is not an IP address or CIDR prefix"},
		{"forwarded_header", with(`"forwarded_header": "X-Forwarded-For"`), `config: forwarded_header: expected "x-forwarded" (X-Forwarded-For, -Proto, -Host, -Port, -Prefix) or "forwarded" (RFC 7239 Forwarded)`},
		{"forwarded_header both", with(`"forwarded_header": "both"`), `config: forwarded_header: expected "x-forwarded"`},
		{"forwarded_header case", with(`"forwarded_header": "Forwarded"`), `config: forwarded_header: expected "x-forwarded"`},
		{"forwarded_header type", with(`"forwarded_header": ["forwarded"]`), `config: forwarded_header: expected string`},
		{"cache unknown field", with(`"cache": {"tll": "1s"}`), `config: cache: unknown field "tll"`},
		{"cache ttl", with(`"cache": {"ttl": "soon"}`), `config: cache.ttl: expected a duration`},
		{"cache negative", with(`"cache": {"negative_ttl": "-1s"}`), `config: cache.negative_ttl: must be at least 0s`},
		{"cache max", with(`"cache": {"max_entries": 0}`), `config: cache.max_entries: must be at least 1`},
		{"cache type", with(`"cache": {"max_entries": "many"}`), `config: cache.max_entries: expected int`},
		{"tier requests", with(`"tiers": {"gold": {"requests": 0, "per": "1s"}}`), "config: tiers.gold.requests: must be at least 1"},
		{"tier per", with(`"tiers": {"gold": {"requests": 1}}`), "config: tiers.gold.per: is required"},
		{"tier field", with(`"tiers": {"gold": {"requests": 1, "per": "1s", "brust": 2}}`), `config: tiers.gold: unknown field "brust"`},
		{"client tier", with(`"client_tiers": {"billing": "platinum"}`), `config: client_tiers.billing: unknown tier "platinum"`},
		{"claim header reserved", with(`"claim_headers": {"email": "Authorization"}`), "config: claim_headers.email: header Authorization cannot carry a claim"},
		{"claim header identity", with(`"claim_headers": {"sub": "x-authenticated-userid"}`), "config: claim_headers.sub: header X-Authenticated-Userid is set by the gateway"},
		{"claim header twice", with(`"claim_headers": {"a": "X-A", "b": "x-a"}`), "config: claim_headers.b: header x-a already carries claim \"a\""},
		{"client_id syntax", strings.Replace(gwMinimal, `"client_id": "gateway"`, `"client_id": "gate way"`, 1), `config: client_id: "gate way" must be 1-128 characters`},
		{"public_url host", with(`"public_url": "https://api_.example"`), `config: public_url: "api_.example" is not a valid host name`},
		{"tier name", with(`"tiers": {"gold tier": {"requests": 1, "per": "1s"}}`), "config: tiers.gold tier: tier names are 1-64 characters"},
		{"tier per below 1ms", with(`"tiers": {"gold": {"requests": 1, "per": "1us"}}`), "config: tiers.gold.per: must be at least 1ms, got 1µs"},
		{"claim name empty", with(`"claim_headers": {"": "X-A"}`), "config: claim_headers: a claim name is empty"},
		{"route prefix escaped", route(`{"path_prefix": "/a%2Fb", "upstream": "http://x"}`), `config: routes[0].path_prefix: "/a%2Fb" must be a clean absolute path`},
		{"route upstream fragment", route(`{"path_prefix": "/a", "upstream": "http://x/#top"}`), "config: routes[0].upstream: must not contain a fragment"},
		{"route upstream bare fragment", route(`{"path_prefix": "/a", "upstream": "http://x/#"}`), "config: routes[0].upstream: must not contain a fragment"},
		{"route basic username colon", route(`{"path_prefix": "/a", "upstream": "http://x", "upstream_auth": {"basic": {"username": "a:b", "password": "p"}}}`), "config: routes[0].upstream_auth.basic.username: is required and must not contain ':'"},
		{"no routes", strings.Replace(gwMinimal, `[{"path_prefix": "/api", "upstream": "http://127.0.0.1:9000"}]`, "[]", 1), "config: routes: at least one route is required"},
		{"route unknown field", route(`{"path_prefix": "/a", "upstream": "http://x", "scope": ["read"]}`), `config: routes[0]: unknown field "scope"`},
		{"route prefix", route(`{"path_prefix": "api", "upstream": "http://x"}`), "config: routes[0].path_prefix: \"api\" must be a clean absolute path"},
		{"route prefix dots", route(`{"path_prefix": "/a/../b", "upstream": "http://x"}`), "config: routes[0].path_prefix:"},
		{"route healthz", route(`{"path_prefix": "/healthz", "upstream": "http://x"}`), "config: routes[0].path_prefix: /healthz is the gateway's own health check"},
		{"route duplicate", route(`{"path_prefix": "/a", "upstream": "http://x"}, {"path_prefix": "/a/", "upstream": "http://y"}`), `config: routes[1].path_prefix: "/a/" is already used by routes[0]`},
		{"route upstream", route(`{"path_prefix": "/a", "upstream": "127.0.0.1:9000"}`), "config: routes[0].upstream: expected an absolute http(s) URL"},
		{"route upstream creds", route(`{"path_prefix": "/a", "upstream": "http://u:p@x"}`), "config: routes[0].upstream: must not contain credentials"},
		{"route scope", route(`{"path_prefix": "/a", "upstream": "http://x", "scopes": ["re\"ad"]}`), `config: routes[0].scopes[0]: invalid scope`},
		{"route public with scopes", route(`{"path_prefix": "/a", "upstream": "http://x", "public": true, "scopes": ["read"]}`), "config: routes[0].scopes: a public route takes no token"},
		{"route tier", route(`{"path_prefix": "/a", "upstream": "http://x", "tier": "gold"}`), `config: routes[0].tier: unknown tier "gold"`},
		{"route timeout", route(`{"path_prefix": "/a", "upstream": "http://x", "timeout": "5"}`), `config: routes[0].timeout: expected a duration`},
		{"route auth empty", route(`{"path_prefix": "/a", "upstream": "http://x", "upstream_auth": {}}`), "config: routes[0].upstream_auth: set basic or tls"},
		{"route auth both", route(`{"path_prefix": "/a", "upstream": "https://x", "upstream_auth": {"basic": {}, "tls": {}}}`), "config: routes[0].upstream_auth: set basic or tls, not both"},
		{"route basic field", route(`{"path_prefix": "/a", "upstream": "http://x", "upstream_auth": {"basic": {"user": "a"}}}`), `config: routes[0].upstream_auth.basic: unknown field "user"`},
		{"route basic no password", route(`{"path_prefix": "/a", "upstream": "http://x", "upstream_auth": {"basic": {"username": "a"}}}`), "config: routes[0].upstream_auth.basic.password: is required"},
		{"route basic and forward", route(`{"path_prefix": "/a", "upstream": "http://x", "forward_authorization": true, "upstream_auth": {"basic": {"username": "a", "password": "b"}}}`), "config: routes[0].upstream_auth.basic: cannot be combined with forward_authorization"},
		{"route tls over http", route(`{"path_prefix": "/a", "upstream": "http://x", "upstream_auth": {"tls": {"ca_file": "x"}}}`), "config: routes[0].upstream_auth.tls: needs an https upstream"},
		{"route tls missing file", route(`{"path_prefix": "/a", "upstream": "https://x", "upstream_auth": {"tls": {"ca_file": "/nonexistent/ca.pem"}}}`), "config: routes[0].upstream_auth.tls.ca_file: open /nonexistent/ca.pem"},
		{"route tls key without cert", route(`{"path_prefix": "/a", "upstream": "https://x", "upstream_auth": {"tls": {"key_file": "k"}}}`), "config: routes[0].upstream_auth.tls.cert_file: is required with key_file"},
		{"listener tls", with(`"tls": {"cert_file": "/nonexistent.pem", "key_file": "/nonexistent.key"}`), "config: tls: load certificate: open /nonexistent.pem"},
		{"cors unknown field", cors(`"allowed_origins": ["https://app.example.com"], "allowed_methods": ["GET"]`), `config: routes[0].cors: unknown field "allowed_methods"`},
		{"cors no origins", cors(`"allowed_headers": ["Content-Type"]`), "config: routes[0].cors.allowed_origins: at least one origin is required"},
		{"cors origin path", cors(`"allowed_origins": ["https://app.example.com", "https://app.example.com/"]`), `config: routes[0].cors.allowed_origins[1]: "https://app.example.com/": an origin has no path, query or fragment; did you mean "https://app.example.com"?`},
		{"cors origin no scheme", cors(`"allowed_origins": ["app.example.com"]`), `config: routes[0].cors.allowed_origins[0]: "app.example.com" is not an origin`},
		{"cors origin scheme", cors(`"allowed_origins": ["ftp://app.example.com"]`), `config: routes[0].cors.allowed_origins[0]: "ftp://app.example.com": the scheme must be http or https`},
		{"cors origin wildcard subdomain", cors(`"allowed_origins": ["https://*.example.com"]`), `config: routes[0].cors.allowed_origins[0]: "https://*.example.com": wildcards are not supported`},
		{"cors origin default port", cors(`"allowed_origins": ["https://app.example.com:443"]`), `config: routes[0].cors.allowed_origins[0]: "https://app.example.com:443": browsers send this origin as "https://app.example.com"`},
		{"cors origin upper case", cors(`"allowed_origins": ["https://App.example.com"]`), `config: routes[0].cors.allowed_origins[0]: "https://App.example.com": browsers send this origin as "https://app.example.com"`},
		{"cors origin null", cors(`"allowed_origins": ["null"]`), `config: routes[0].cors.allowed_origins[0]: the "null" origin`},
		{"cors origin twice", cors(`"allowed_origins": ["https://a.example", "https://b.example", "https://a.example"]`), `config: routes[0].cors.allowed_origins[2]: "https://a.example" is already listed as allowed_origins[0]`},
		{"cors wildcard and credentials", cors(`"allowed_origins": ["*"], "allow_credentials": true`), `config: routes[0].cors.allow_credentials: cannot be true with the origin "*"`},
		{"cors wildcard among origins", cors(`"allowed_origins": ["https://app.example.com", "*"]`), `config: routes[0].cors.allowed_origins[1]: "*" allows every origin and must be the only entry`},
		{"cors header", cors(`"allowed_origins": ["*"], "allowed_headers": ["Content Type"]`), `config: routes[0].cors.allowed_headers[0]: header name "Content Type" has characters not allowed`},
		{"cors header wildcard", cors(`"allowed_origins": ["*"], "exposed_headers": ["X-Request-Id", "*"]`), `config: routes[0].cors.exposed_headers[1]: wildcards are not supported`},
		{"cors max_age", cors(`"allowed_origins": ["*"], "max_age": "600"`), `config: routes[0].cors.max_age: expected a duration`},
		{"cors max_age negative", cors(`"allowed_origins": ["*"], "max_age": "-1m"`), `config: routes[0].cors.max_age: must be at least 0s`},
		{"cors max_age too long", cors(`"allowed_origins": ["*"], "max_age": "48h"`), `config: routes[0].cors.max_age: must be at most 24h0m0s`},
		{"cors max_age fraction", cors(`"allowed_origins": ["*"], "max_age": "1.5s"`), `config: routes[0].cors.max_age: is sent in whole seconds`},
		{"cors type", cors(`"allowed_origins": "https://app.example.com"`), `config: routes[0].cors.allowed_origins: expected []string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.raw), env)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %v\n   want prefix %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigCORS(t *testing.T) {
	raw := strings.Replace(gwMinimal, `{"path_prefix": "/api", "upstream": "http://127.0.0.1:9000"}`,
		`{"path_prefix": "/api", "upstream": "http://127.0.0.1:9000", "cors": {"allowed_origins": ["https://app.example.com", "http://localhost:3000"],
		  "allowed_headers": ["Content-Type"], "exposed_headers": [], "max_age": "10m", "allow_credentials": true}},
		 {"path_prefix": "/open", "upstream": "http://127.0.0.1:9000", "public": true, "cors": {"allowed_origins": ["*"]}},
		 {"path_prefix": "/plain", "upstream": "http://127.0.0.1:9000"}`, 1)
	c, err := ParseConfig([]byte(raw), mapEnv(map[string]string{"GW_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Gateway.Routes
	if got := r[0].CORS; got == nil || len(got.AllowedOrigins) != 2 || got.AllowedOrigins[1] != "http://localhost:3000" ||
		len(got.AllowedHeaders) != 1 || got.MaxAge != 10*time.Minute || !got.AllowCredentials {
		t.Errorf("routes[0].cors = %+v", got)
	}
	if got := r[1].CORS; got == nil || len(got.AllowedOrigins) != 1 || got.AllowedOrigins[0] != "*" || got.MaxAge != 0 || got.AllowCredentials {
		t.Errorf("routes[1].cors = %+v", got)
	}
	if r[2].CORS != nil {
		t.Errorf("a route without cors got %+v", r[2].CORS)
	}
	if _, err := New(c.Gateway); err != nil {
		t.Errorf("New refuses a config the loader accepted: %v", err)
	}
}

// writeTestKeyPair writes a self-signed certificate and key, returning the
// cert, key and (the same cert as) CA paths.
func writeTestKeyPair(t *testing.T) (cert, key, ca string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, cert
}

// TestGatewayExampleConfig keeps examples/gateway/gateway.json loadable.
func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../examples/gateway/gateway.json", mapEnv(map[string]string{"DEMO_SERVICE_SECRET": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Gateway.Routes) == 0 || c.AdminListen == "" {
		t.Errorf("example config: %+v", c)
	}
	if _, err := New(c.Gateway); err != nil {
		t.Error(err)
	}
}
