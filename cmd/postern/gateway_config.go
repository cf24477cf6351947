package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/postern-auth/postern/confjson"
	"net"
	"net/netip"
	"net/url"
	"os"
	pathpkg "path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/postern-auth/postern/gateway"
)

// gatewayFile is `postern gateway`'s JSON configuration as written in git.
// Nested objects are kept raw and decoded under their own path, so an
// unknown field is reported as "routes[1].upstream_auth: unknown field".
// Durations are strings parsed here for the same reason.
type gatewayFile struct {
	Listen          string                     `json:"listen"`
	TLS             json.RawMessage            `json:"tls"`
	AdminListen     string                     `json:"admin_listen"`
	Issuer          string                     `json:"issuer"`
	ClientID        string                     `json:"client_id"`
	ClientSecret    string                     `json:"client_secret"`
	Audience        string                     `json:"audience"`
	PublicURL       string                     `json:"public_url"`
	TrustedProxies  []string                   `json:"trusted_proxies"`
	ForwardedHeader string                     `json:"forwarded_header"`
	Cache           json.RawMessage            `json:"cache"`
	JWKS            json.RawMessage            `json:"jwks"`
	Tiers           map[string]json.RawMessage `json:"tiers"`
	ClientTiers     map[string]string          `json:"client_tiers"`
	Routes          []json.RawMessage          `json:"routes"`
	ClaimHeaders    map[string]string          `json:"claim_headers"`
}

type gwCacheFile struct {
	TTL         string `json:"ttl"`
	NegativeTTL string `json:"negative_ttl"`
	MaxEntries  *int   `json:"max_entries"`
}

type gwJWKSFile struct {
	MaxAge             string `json:"max_age"`
	MinRefetchInterval string `json:"min_refetch_interval"`
}

type gwTierFile struct {
	Requests int    `json:"requests"`
	Per      string `json:"per"`
	Burst    int    `json:"burst"`
}

type gwRouteFile struct {
	PathPrefix           string          `json:"path_prefix"`
	Upstream             string          `json:"upstream"`
	StripPrefix          bool            `json:"strip_prefix"`
	Scopes               []string        `json:"scopes"`
	Tier                 string          `json:"tier"`
	Public               bool            `json:"public"`
	UpstreamAuth         json.RawMessage `json:"upstream_auth"`
	ForwardAuthorization bool            `json:"forward_authorization"`
	Timeout              string          `json:"timeout"`
	CORS                 json.RawMessage `json:"cors"`
}

type gwCORSFile struct {
	AllowedOrigins   []string `json:"allowed_origins"`
	AllowedHeaders   []string `json:"allowed_headers"`
	ExposedHeaders   []string `json:"exposed_headers"`
	MaxAge           string   `json:"max_age"`
	AllowCredentials bool     `json:"allow_credentials"`
}

type gwUpstreamAuthFile struct {
	Basic json.RawMessage `json:"basic"`
	TLS   json.RawMessage `json:"tls"`
}

type gwBasicFile struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// GatewayConfig is the validated configuration of `postern gateway`.
type GatewayConfig struct {
	Listen      string
	TLS         *tls.Config // nil: plain HTTP
	AdminListen string      // "" : no admin listener
	Gateway     gateway.Config
}

const defaultGatewayListen = "127.0.0.1:8080"

func loadGatewayConfig(path string, getenv func(string) string) (*GatewayConfig, error) {
	raw, err := confjson.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseGatewayConfig(raw, getenv)
}

func parseGatewayConfig(raw []byte, getenv func(string) string) (*GatewayConfig, error) {
	expanded, err := confjson.ExpandEnv(raw, getenv)
	if err != nil {
		return nil, err
	}
	var gf gatewayFile
	if err := confjson.Decode(expanded, &gf, ""); err != nil {
		return nil, err
	}
	return gf.validate()
}

func (gf *gatewayFile) validate() (*GatewayConfig, error) {
	c := &GatewayConfig{Listen: gf.Listen, AdminListen: gf.AdminListen}
	g := &c.Gateway
	if c.Listen == "" {
		c.Listen = defaultGatewayListen
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, confjson.Errorf("listen", "expected host:port, got %q", c.Listen)
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			return nil, confjson.Errorf("admin_listen", "expected host:port, got %q", c.AdminListen)
		}
		if _, port, _ := net.SplitHostPort(c.Listen); c.AdminListen == c.Listen && port != "0" {
			return nil, confjson.Errorf("admin_listen", "must differ from listen: metrics are not for the public")
		}
	}
	if len(gf.TLS) > 0 {
		var tf confjson.TLSFiles
		if err := confjson.Decode(gf.TLS, &tf, "tls"); err != nil {
			return nil, err
		}
		if tf.CAFile != "" {
			return nil, confjson.Errorf("tls.ca_file", "client certificates toward the gateway are not supported")
		}
		cert, err := tf.LoadKeyPair("tls")
		if err != nil {
			return nil, err
		}
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := gf.identity(g); err != nil {
		return nil, err
	}
	if err := gf.caches(g); err != nil {
		return nil, err
	}
	if err := gf.rateLimits(g); err != nil {
		return nil, err
	}
	if err := gf.claims(g); err != nil {
		return nil, err
	}
	if err := gf.routes(g); err != nil {
		return nil, err
	}
	needToken := false
	for _, r := range g.Routes {
		needToken = needToken || !r.Public
	}
	if needToken {
		switch {
		case g.Issuer == "":
			return nil, confjson.Errorf("issuer", "is required: routes that need a token are checked against it")
		case g.ClientID == "":
			return nil, confjson.Errorf("client_id", "is required: the gateway introspects tokens as this client")
		case g.ClientSecret == "":
			return nil, confjson.Errorf("client_secret", "is required (use ${ENV_VAR} to keep it out of git)")
		}
	}
	return c, nil
}

// identity reads issuer, client credentials, public_url, trusted_proxies
// and forwarded_header.
func (gf *gatewayFile) identity(g *gateway.Config) error {
	if gf.Issuer != "" {
		iss, err := confjson.Issuer(gf.Issuer)
		if err != nil {
			return confjson.Errorf("issuer", "%v", err)
		}
		g.Issuer = iss
	}
	g.ClientID, g.ClientSecret, g.Audience = gf.ClientID, gf.ClientSecret, gf.Audience
	if g.ClientID != "" {
		if err := confjson.ClientID(g.ClientID); err != nil {
			return confjson.Errorf("client_id", "%v", err)
		}
	}
	if gf.PublicURL != "" {
		u, err := url.Parse(gf.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return confjson.Errorf("public_url", "expected an absolute http(s) URL such as https://api.example.com, got %q", gf.PublicURL)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(gf.PublicURL, "?#") {
			return confjson.Errorf("public_url", "must not contain user info, a query or a fragment")
		}
		if _, err := netip.ParseAddr(u.Hostname()); err != nil && !hostnamePattern.MatchString(u.Hostname()) {
			return confjson.Errorf("public_url", "%q is not a valid host name", u.Hostname())
		}
		g.PublicURL = u
	}
	for i, s := range gf.TrustedProxies {
		p, err := parseCIDR(s)
		if err != nil {
			return confjson.Errorf(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
		g.TrustedProxies = append(g.TrustedProxies, p)
	}
	switch gf.ForwardedHeader {
	case "":
		g.ForwardedHeader = gateway.ForwardedHeaderX
	case gateway.ForwardedHeaderX, gateway.ForwardedHeaderRFC7239:
		g.ForwardedHeader = gf.ForwardedHeader
	default:
		return confjson.Errorf("forwarded_header", "expected %q (X-Forwarded-For, -Proto, -Host, -Port, -Prefix) or %q (RFC 7239 Forwarded): the one header family the trusted proxies overwrite; got %q",
			gateway.ForwardedHeaderX, gateway.ForwardedHeaderRFC7239, gf.ForwardedHeader)
	}
	return nil
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$`)

// parseCIDR accepts "10.0.0.0/8", "2001:db8::/32" or a single address.
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("expected a CIDR such as 10.0.0.0/8, got %q", s)
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("expected a CIDR or an IP address, got %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (gf *gatewayFile) caches(g *gateway.Config) error {
	g.Cache = gateway.CacheConfig{TTL: gateway.DefaultCacheTTL, NegativeTTL: gateway.DefaultNegativeTTL, MaxEntries: gateway.DefaultCacheEntries}
	if len(gf.Cache) > 0 {
		var cf gwCacheFile
		if err := confjson.Decode(gf.Cache, &cf, "cache"); err != nil {
			return err
		}
		var err error
		if g.Cache.TTL, err = confjson.ParseDuration("cache.ttl", cf.TTL, g.Cache.TTL, 0); err != nil {
			return err
		}
		if g.Cache.NegativeTTL, err = confjson.ParseDuration("cache.negative_ttl", cf.NegativeTTL, g.Cache.NegativeTTL, 0); err != nil {
			return err
		}
		if cf.MaxEntries != nil {
			if *cf.MaxEntries < 1 {
				return confjson.Errorf("cache.max_entries", "must be at least 1 (set ttl to \"0s\" to disable the cache)")
			}
			g.Cache.MaxEntries = *cf.MaxEntries
		}
	}
	if len(gf.JWKS) > 0 {
		var jf gwJWKSFile
		if err := confjson.Decode(gf.JWKS, &jf, "jwks"); err != nil {
			return err
		}
		var err error
		if g.JWKS.MaxAge, err = confjson.ParseDuration("jwks.max_age", jf.MaxAge, gateway.DefaultJWKSMaxAge, time.Second); err != nil {
			return err
		}
		if g.JWKS.MinRefetchInterval, err = confjson.ParseDuration("jwks.min_refetch_interval", jf.MinRefetchInterval, gateway.DefaultJWKSMinRefetch, 0); err != nil {
			return err
		}
		if g.JWKS.MinRefetchInterval == 0 {
			g.JWKS.MinRefetchInterval = -1 // explicit "0s": no limit
		}
	}
	return nil
}

var tierNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (gf *gatewayFile) rateLimits(g *gateway.Config) error {
	g.Tiers = map[string]gateway.Tier{}
	for _, name := range sortedKeys(gf.Tiers) {
		path := "tiers." + name
		if !tierNamePattern.MatchString(name) {
			return confjson.Errorf(path, "tier names are 1-64 characters of A-Z a-z 0-9 . _ -")
		}
		var tf gwTierFile
		if err := confjson.Decode(gf.Tiers[name], &tf, path); err != nil {
			return err
		}
		if tf.Requests < 1 {
			return confjson.Errorf(path+".requests", "must be at least 1")
		}
		if tf.Per == "" {
			return confjson.Errorf(path+".per", `is required, e.g. "1s" or "1m"`)
		}
		per, err := confjson.ParseDuration(path+".per", tf.Per, 0, time.Millisecond)
		if err != nil {
			return err
		}
		if tf.Burst < 0 {
			return confjson.Errorf(path+".burst", "must not be negative (0 means the same as requests)")
		}
		g.Tiers[name] = gateway.Tier{Requests: tf.Requests, Per: per, Burst: tf.Burst}
	}
	g.ClientTiers = map[string]string{}
	for _, client := range sortedKeys(gf.ClientTiers) {
		tier := gf.ClientTiers[client]
		if _, ok := g.Tiers[tier]; !ok {
			return confjson.Errorf("client_tiers."+client, "unknown tier %q", tier)
		}
		g.ClientTiers[client] = tier
	}
	return nil
}

func (gf *gatewayFile) claims(g *gateway.Config) error {
	g.ClaimHeaders = map[string]string{}
	headers := map[string]string{}
	for _, claim := range sortedKeys(gf.ClaimHeaders) {
		h := gf.ClaimHeaders[claim]
		path := "claim_headers." + claim
		if claim == "" {
			return confjson.Errorf("claim_headers", "a claim name is empty")
		}
		if err := gateway.CheckClaimHeader(h); err != nil {
			return confjson.Errorf(path, "%v", err)
		}
		canon := strings.ToLower(h)
		if other, dup := headers[canon]; dup {
			return confjson.Errorf(path, "header %s already carries claim %q", h, other)
		}
		headers[canon] = claim
		g.ClaimHeaders[claim] = h
	}
	return nil
}

func (gf *gatewayFile) routes(g *gateway.Config) error {
	if len(gf.Routes) == 0 {
		return confjson.Errorf("routes", "at least one route is required")
	}
	seen := map[string]int{}
	for i, raw := range gf.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		var rf gwRouteFile
		if err := confjson.Decode(raw, &rf, path); err != nil {
			return err
		}
		r, err := rf.validate(path, g.Tiers)
		if err != nil {
			return err
		}
		key := strings.TrimRight(r.PathPrefix, "/")
		if j, dup := seen[key]; dup {
			return confjson.Errorf(path+".path_prefix", "%q is already used by routes[%d]", r.PathPrefix, j)
		}
		seen[key] = i
		g.Routes = append(g.Routes, r)
	}
	return nil
}

func (rf *gwRouteFile) validate(path string, tiers map[string]gateway.Tier) (gateway.Route, error) {
	r := gateway.Route{
		PathPrefix:           rf.PathPrefix,
		StripPrefix:          rf.StripPrefix,
		Tier:                 rf.Tier,
		Public:               rf.Public,
		ForwardAuthorization: rf.ForwardAuthorization,
	}
	switch p := rf.PathPrefix; {
	case p == "":
		return r, confjson.Errorf(path+".path_prefix", "is required")
	case !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#% \t") || (p != "/" && pathpkg.Clean(p) != strings.TrimRight(p, "/")):
		return r, confjson.Errorf(path+".path_prefix", "%q must be a clean absolute path such as /search/v1", p)
	case p == gateway.HealthPath || strings.HasPrefix(p, gateway.HealthPath+"/"):
		return r, confjson.Errorf(path+".path_prefix", "%s is the gateway's own health check", gateway.HealthPath)
	}
	u, err := url.Parse(rf.Upstream)
	switch {
	case rf.Upstream == "":
		return r, confjson.Errorf(path+".upstream", "is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return r, confjson.Errorf(path+".upstream", "expected an absolute http(s) URL, got %q", rf.Upstream)
	case u.User != nil:
		return r, confjson.Errorf(path+".upstream", "must not contain credentials; use upstream_auth.basic")
	case u.Fragment != "" || strings.Contains(rf.Upstream, "#"):
		return r, confjson.Errorf(path+".upstream", "must not contain a fragment")
	}
	r.Upstream = u
	for j, s := range rf.Scopes {
		if !confjson.ScopeToken(s) {
			return r, confjson.Errorf(fmt.Sprintf("%s.scopes[%d]", path, j), "invalid scope %q", s)
		}
	}
	r.Scopes = rf.Scopes
	if rf.Public && len(rf.Scopes) > 0 {
		return r, confjson.Errorf(path+".scopes", "a public route takes no token, so it cannot require scopes")
	}
	if rf.Tier != "" {
		if _, ok := tiers[rf.Tier]; !ok {
			return r, confjson.Errorf(path+".tier", "unknown tier %q", rf.Tier)
		}
	}
	if r.Timeout, err = confjson.ParseDuration(path+".timeout", rf.Timeout, gateway.DefaultUpstreamTimeout, time.Millisecond); err != nil {
		return r, err
	}
	if len(rf.UpstreamAuth) > 0 {
		if err := rf.upstreamAuth(path+".upstream_auth", &r); err != nil {
			return r, err
		}
	}
	if len(rf.CORS) > 0 {
		if r.CORS, err = corsConfig(path+".cors", rf.CORS); err != nil {
			return r, err
		}
	}
	return r, nil
}

// corsConfig reads a route's cors block. Origins must be written exactly
// as browsers send them, so the gateway compares strings.
func corsConfig(path string, raw json.RawMessage) (*gateway.CORS, error) {
	var cf gwCORSFile
	if err := confjson.Decode(raw, &cf, path); err != nil {
		return nil, err
	}
	if len(cf.AllowedOrigins) == 0 {
		return nil, confjson.Errorf(path+".allowed_origins", `at least one origin is required, e.g. ["https://app.example.com"]`)
	}
	seen := map[string]int{}
	for i, o := range cf.AllowedOrigins {
		at := fmt.Sprintf("%s.allowed_origins[%d]", path, i)
		switch {
		case o == "*" && len(cf.AllowedOrigins) > 1:
			return nil, confjson.Errorf(at, `"*" allows every origin and must be the only entry`)
		case o == "*" && cf.AllowCredentials:
			return nil, confjson.Errorf(path+".allow_credentials", `cannot be true with the origin "*": list the origins that may send credentials`)
		case o == "*":
		default:
			if j, dup := seen[o]; dup {
				return nil, confjson.Errorf(at, "%q is already listed as allowed_origins[%d]", o, j)
			}
			if err := gateway.CheckOrigin(o); err != nil {
				return nil, confjson.Errorf(at, "%v", err)
			}
		}
		seen[o] = i
	}
	for i, h := range cf.AllowedHeaders {
		if err := gateway.CheckCORSHeader(h); err != nil {
			return nil, confjson.Errorf(fmt.Sprintf("%s.allowed_headers[%d]", path, i), "%v", err)
		}
	}
	for i, h := range cf.ExposedHeaders {
		if err := gateway.CheckCORSHeader(h); err != nil {
			return nil, confjson.Errorf(fmt.Sprintf("%s.exposed_headers[%d]", path, i), "%v", err)
		}
	}
	maxAge, err := confjson.ParseDuration(path+".max_age", cf.MaxAge, 0, 0)
	if err != nil {
		return nil, err
	}
	if err := gateway.CheckCORSMaxAge(maxAge); err != nil {
		return nil, confjson.Errorf(path+".max_age", "%v", err)
	}
	return &gateway.CORS{AllowedOrigins: cf.AllowedOrigins, AllowedHeaders: cf.AllowedHeaders, ExposedHeaders: cf.ExposedHeaders,
		MaxAge: maxAge, AllowCredentials: cf.AllowCredentials}, nil
}

func (rf *gwRouteFile) upstreamAuth(path string, r *gateway.Route) error {
	var af gwUpstreamAuthFile
	if err := confjson.Decode(rf.UpstreamAuth, &af, path); err != nil {
		return err
	}
	switch {
	case len(af.Basic) > 0 && len(af.TLS) > 0:
		return confjson.Errorf(path, "set basic or tls, not both")
	case len(af.Basic) > 0:
		var bf gwBasicFile
		if err := confjson.Decode(af.Basic, &bf, path+".basic"); err != nil {
			return err
		}
		if bf.Username == "" || strings.Contains(bf.Username, ":") {
			return confjson.Errorf(path+".basic.username", "is required and must not contain ':'")
		}
		if bf.Password == "" {
			return confjson.Errorf(path+".basic.password", "is required (use ${ENV_VAR} to keep it out of git)")
		}
		if r.ForwardAuthorization {
			return confjson.Errorf(path+".basic", "cannot be combined with forward_authorization: both set the Authorization header")
		}
		r.BasicAuth = &gateway.BasicAuth{Username: bf.Username, Password: bf.Password}
	case len(af.TLS) > 0:
		var tf confjson.TLSFiles
		if err := confjson.Decode(af.TLS, &tf, path+".tls"); err != nil {
			return err
		}
		if r.Upstream.Scheme != "https" {
			return confjson.Errorf(path+".tls", "needs an https upstream, got %q", r.Upstream.String())
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if tf.CertFile != "" || tf.KeyFile != "" {
			cert, err := tf.LoadKeyPair(path + ".tls")
			if err != nil {
				return err
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		if tf.CAFile != "" {
			pem, err := os.ReadFile(tf.CAFile)
			if err != nil {
				return confjson.Errorf(path+".tls.ca_file", "%v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return confjson.Errorf(path+".tls.ca_file", "%s holds no PEM certificates", tf.CAFile)
			}
			cfg.RootCAs = pool
		}
		r.TLS = cfg
	default:
		return confjson.Errorf(path, "set basic or tls")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
