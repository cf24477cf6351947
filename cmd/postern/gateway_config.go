package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
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
	"github.com/postern-auth/postern/netedge"
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

type gwTLSFile struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	CAFile   string `json:"ca_file"`
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
	raw, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	return parseGatewayConfig(raw, getenv)
}

func parseGatewayConfig(raw []byte, getenv func(string) string) (*GatewayConfig, error) {
	expanded, err := expandEnv(raw, getenv)
	if err != nil {
		return nil, err
	}
	var gf gatewayFile
	if err := strictDecode(expanded, &gf, ""); err != nil {
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
		return nil, errAt("listen", "expected host:port, got %q", c.Listen)
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			return nil, errAt("admin_listen", "expected host:port, got %q", c.AdminListen)
		}
		if _, port, _ := net.SplitHostPort(c.Listen); c.AdminListen == c.Listen && port != "0" {
			return nil, errAt("admin_listen", "must differ from listen: metrics are not for the public")
		}
	}
	if len(gf.TLS) > 0 {
		var tf gwTLSFile
		if err := strictDecode(gf.TLS, &tf, "tls"); err != nil {
			return nil, err
		}
		if tf.CAFile != "" {
			return nil, errAt("tls.ca_file", "client certificates toward the gateway are not supported")
		}
		cert, err := loadKeyPair("tls", tf)
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
			return nil, errAt("issuer", "is required: routes that need a token are checked against it")
		case g.ClientID == "":
			return nil, errAt("client_id", "is required: the gateway introspects tokens as this client")
		case g.ClientSecret == "":
			return nil, errAt("client_secret", "is required (use ${ENV_VAR} to keep it out of git)")
		}
	}
	return c, nil
}

// identity reads issuer, client credentials, public_url, trusted_proxies
// and forwarded_header.
func (gf *gatewayFile) identity(g *gateway.Config) error {
	if gf.Issuer != "" {
		iss, err := validateIssuer(gf.Issuer)
		if err != nil {
			return errAt("issuer", "%v", err)
		}
		g.Issuer = iss
	}
	g.ClientID, g.ClientSecret, g.Audience = gf.ClientID, gf.ClientSecret, gf.Audience
	if g.ClientID != "" && !clientIDPattern.MatchString(g.ClientID) {
		return errAt("client_id", "%q must be 1-128 characters of A-Z a-z 0-9 . _ ~ -", g.ClientID)
	}
	if gf.PublicURL != "" {
		u, err := url.Parse(gf.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errAt("public_url", "expected an absolute http(s) URL such as https://api.example.com, got %q", gf.PublicURL)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(gf.PublicURL, "?#") {
			return errAt("public_url", "must not contain user info, a query or a fragment")
		}
		if _, err := netip.ParseAddr(u.Hostname()); err != nil && !hostnamePattern.MatchString(u.Hostname()) {
			return errAt("public_url", "%q is not a valid host name", u.Hostname())
		}
		g.PublicURL = u
	}
	for i, s := range gf.TrustedProxies {
		p, err := netedge.ParsePrefix(s)
		if err != nil {
			return errAt(fmt.Sprintf("trusted_proxies[%d]", i), "%v", err)
		}
		g.TrustedProxies = append(g.TrustedProxies, p)
	}
	switch gf.ForwardedHeader {
	case "":
		g.ForwardedHeader = gateway.ForwardedHeaderX
	case gateway.ForwardedHeaderX, gateway.ForwardedHeaderRFC7239:
		g.ForwardedHeader = gf.ForwardedHeader
	default:
		return errAt("forwarded_header", "expected %q (X-Forwarded-For, -Proto, -Host, -Port, -Prefix) or %q (RFC 7239 Forwarded): the one header family the trusted proxies overwrite; got %q",
			gateway.ForwardedHeaderX, gateway.ForwardedHeaderRFC7239, gf.ForwardedHeader)
	}
	return nil
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$`)

func (gf *gatewayFile) caches(g *gateway.Config) error {
	g.Cache = gateway.CacheConfig{TTL: gateway.DefaultCacheTTL, NegativeTTL: gateway.DefaultNegativeTTL, MaxEntries: gateway.DefaultCacheEntries}
	if len(gf.Cache) > 0 {
		var cf gwCacheFile
		if err := strictDecode(gf.Cache, &cf, "cache"); err != nil {
			return err
		}
		var err error
		if g.Cache.TTL, err = parseDuration("cache.ttl", cf.TTL, g.Cache.TTL, 0); err != nil {
			return err
		}
		if g.Cache.NegativeTTL, err = parseDuration("cache.negative_ttl", cf.NegativeTTL, g.Cache.NegativeTTL, 0); err != nil {
			return err
		}
		if cf.MaxEntries != nil {
			if *cf.MaxEntries < 1 {
				return errAt("cache.max_entries", "must be at least 1 (set ttl to \"0s\" to disable the cache)")
			}
			g.Cache.MaxEntries = *cf.MaxEntries
		}
	}
	if len(gf.JWKS) > 0 {
		var jf gwJWKSFile
		if err := strictDecode(gf.JWKS, &jf, "jwks"); err != nil {
			return err
		}
		var err error
		if g.JWKS.MaxAge, err = parseDuration("jwks.max_age", jf.MaxAge, gateway.DefaultJWKSMaxAge, time.Second); err != nil {
			return err
		}
		if g.JWKS.MinRefetchInterval, err = parseDuration("jwks.min_refetch_interval", jf.MinRefetchInterval, gateway.DefaultJWKSMinRefetch, 0); err != nil {
			return err
		}
		if g.JWKS.MinRefetchInterval == 0 {
			g.JWKS.MinRefetchInterval = -1 // explicit "0s": no limit
		}
	}
	return nil
}

// parseDuration reads a Go duration string; "" gives def.
func parseDuration(path, s string, def, min time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errAt(path, `expected a duration such as "30s" or "5m", got %q`, s)
	}
	if d < min {
		return 0, errAt(path, "must be at least %s, got %s", min, d)
	}
	return d, nil
}

var tierNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (gf *gatewayFile) rateLimits(g *gateway.Config) error {
	g.Tiers = map[string]gateway.Tier{}
	for _, name := range sortedKeys(gf.Tiers) {
		path := "tiers." + name
		if !tierNamePattern.MatchString(name) {
			return errAt(path, "tier names are 1-64 characters of A-Z a-z 0-9 . _ -")
		}
		var tf gwTierFile
		if err := strictDecode(gf.Tiers[name], &tf, path); err != nil {
			return err
		}
		if tf.Requests < 1 {
			return errAt(path+".requests", "must be at least 1")
		}
		if tf.Per == "" {
			return errAt(path+".per", `is required, e.g. "1s" or "1m"`)
		}
		per, err := parseDuration(path+".per", tf.Per, 0, time.Millisecond)
		if err != nil {
			return err
		}
		if tf.Burst < 0 {
			return errAt(path+".burst", "must not be negative (0 means the same as requests)")
		}
		g.Tiers[name] = gateway.Tier{Requests: tf.Requests, Per: per, Burst: tf.Burst}
	}
	g.ClientTiers = map[string]string{}
	for _, client := range sortedKeys(gf.ClientTiers) {
		tier := gf.ClientTiers[client]
		if _, ok := g.Tiers[tier]; !ok {
			return errAt("client_tiers."+client, "unknown tier %q", tier)
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
			return errAt("claim_headers", "a claim name is empty")
		}
		if err := gateway.CheckClaimHeader(h); err != nil {
			return errAt(path, "%v", err)
		}
		canon := strings.ToLower(h)
		if other, dup := headers[canon]; dup {
			return errAt(path, "header %s already carries claim %q", h, other)
		}
		headers[canon] = claim
		g.ClaimHeaders[claim] = h
	}
	return nil
}

func (gf *gatewayFile) routes(g *gateway.Config) error {
	if len(gf.Routes) == 0 {
		return errAt("routes", "at least one route is required")
	}
	seen := map[string]int{}
	for i, raw := range gf.Routes {
		path := fmt.Sprintf("routes[%d]", i)
		var rf gwRouteFile
		if err := strictDecode(raw, &rf, path); err != nil {
			return err
		}
		r, err := rf.validate(path, g.Tiers)
		if err != nil {
			return err
		}
		key := strings.TrimRight(r.PathPrefix, "/")
		if j, dup := seen[key]; dup {
			return errAt(path+".path_prefix", "%q is already used by routes[%d]", r.PathPrefix, j)
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
		return r, errAt(path+".path_prefix", "is required")
	case !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#% \t") || (p != "/" && pathpkg.Clean(p) != strings.TrimRight(p, "/")):
		return r, errAt(path+".path_prefix", "%q must be a clean absolute path such as /search/v1", p)
	case p == gateway.HealthPath || strings.HasPrefix(p, gateway.HealthPath+"/"):
		return r, errAt(path+".path_prefix", "%s is the gateway's own health check", gateway.HealthPath)
	}
	u, err := url.Parse(rf.Upstream)
	switch {
	case rf.Upstream == "":
		return r, errAt(path+".upstream", "is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return r, errAt(path+".upstream", "expected an absolute http(s) URL, got %q", rf.Upstream)
	case u.User != nil:
		return r, errAt(path+".upstream", "must not contain credentials; use upstream_auth.basic")
	case u.Fragment != "" || strings.Contains(rf.Upstream, "#"):
		return r, errAt(path+".upstream", "must not contain a fragment")
	}
	r.Upstream = u
	for j, s := range rf.Scopes {
		if !scopeToken.MatchString(s) {
			return r, errAt(fmt.Sprintf("%s.scopes[%d]", path, j), "invalid scope %q", s)
		}
	}
	r.Scopes = rf.Scopes
	if rf.Public && len(rf.Scopes) > 0 {
		return r, errAt(path+".scopes", "a public route takes no token, so it cannot require scopes")
	}
	if rf.Tier != "" {
		if _, ok := tiers[rf.Tier]; !ok {
			return r, errAt(path+".tier", "unknown tier %q", rf.Tier)
		}
	}
	if r.Timeout, err = parseDuration(path+".timeout", rf.Timeout, gateway.DefaultUpstreamTimeout, time.Millisecond); err != nil {
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
	if err := strictDecode(raw, &cf, path); err != nil {
		return nil, err
	}
	if len(cf.AllowedOrigins) == 0 {
		return nil, errAt(path+".allowed_origins", `at least one origin is required, e.g. ["https://app.example.com"]`)
	}
	seen := map[string]int{}
	for i, o := range cf.AllowedOrigins {
		at := fmt.Sprintf("%s.allowed_origins[%d]", path, i)
		switch {
		case o == "*" && len(cf.AllowedOrigins) > 1:
			return nil, errAt(at, `"*" allows every origin and must be the only entry`)
		case o == "*" && cf.AllowCredentials:
			return nil, errAt(path+".allow_credentials", `cannot be true with the origin "*": list the origins that may send credentials`)
		case o == "*":
		default:
			if j, dup := seen[o]; dup {
				return nil, errAt(at, "%q is already listed as allowed_origins[%d]", o, j)
			}
			if err := gateway.CheckOrigin(o); err != nil {
				return nil, errAt(at, "%v", err)
			}
		}
		seen[o] = i
	}
	for i, h := range cf.AllowedHeaders {
		if err := gateway.CheckCORSHeader(h); err != nil {
			return nil, errAt(fmt.Sprintf("%s.allowed_headers[%d]", path, i), "%v", err)
		}
	}
	for i, h := range cf.ExposedHeaders {
		if err := gateway.CheckCORSHeader(h); err != nil {
			return nil, errAt(fmt.Sprintf("%s.exposed_headers[%d]", path, i), "%v", err)
		}
	}
	maxAge, err := parseDuration(path+".max_age", cf.MaxAge, 0, 0)
	if err != nil {
		return nil, err
	}
	if err := gateway.CheckCORSMaxAge(maxAge); err != nil {
		return nil, errAt(path+".max_age", "%v", err)
	}
	return &gateway.CORS{AllowedOrigins: cf.AllowedOrigins, AllowedHeaders: cf.AllowedHeaders, ExposedHeaders: cf.ExposedHeaders,
		MaxAge: maxAge, AllowCredentials: cf.AllowCredentials}, nil
}

func (rf *gwRouteFile) upstreamAuth(path string, r *gateway.Route) error {
	var af gwUpstreamAuthFile
	if err := strictDecode(rf.UpstreamAuth, &af, path); err != nil {
		return err
	}
	switch {
	case len(af.Basic) > 0 && len(af.TLS) > 0:
		return errAt(path, "set basic or tls, not both")
	case len(af.Basic) > 0:
		var bf gwBasicFile
		if err := strictDecode(af.Basic, &bf, path+".basic"); err != nil {
			return err
		}
		if bf.Username == "" || strings.Contains(bf.Username, ":") {
			return errAt(path+".basic.username", "is required and must not contain ':'")
		}
		if bf.Password == "" {
			return errAt(path+".basic.password", "is required (use ${ENV_VAR} to keep it out of git)")
		}
		if r.ForwardAuthorization {
			return errAt(path+".basic", "cannot be combined with forward_authorization: both set the Authorization header")
		}
		r.BasicAuth = &gateway.BasicAuth{Username: bf.Username, Password: bf.Password}
	case len(af.TLS) > 0:
		var tf gwTLSFile
		if err := strictDecode(af.TLS, &tf, path+".tls"); err != nil {
			return err
		}
		if r.Upstream.Scheme != "https" {
			return errAt(path+".tls", "needs an https upstream, got %q", r.Upstream.String())
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if tf.CertFile != "" || tf.KeyFile != "" {
			cert, err := loadKeyPair(path+".tls", tf)
			if err != nil {
				return err
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		if tf.CAFile != "" {
			pem, err := os.ReadFile(tf.CAFile)
			if err != nil {
				return errAt(path+".tls.ca_file", "%v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return errAt(path+".tls.ca_file", "%s holds no PEM certificates", tf.CAFile)
			}
			cfg.RootCAs = pool
		}
		r.TLS = cfg
	default:
		return errAt(path, "set basic or tls")
	}
	return nil
}

func loadKeyPair(path string, tf gwTLSFile) (tls.Certificate, error) {
	switch {
	case tf.CertFile == "":
		return tls.Certificate{}, errAt(path+".cert_file", "is required with key_file")
	case tf.KeyFile == "":
		return tls.Certificate{}, errAt(path+".key_file", "is required with cert_file")
	}
	cert, err := tls.LoadX509KeyPair(tf.CertFile, tf.KeyFile)
	if err != nil {
		return tls.Certificate{}, errAt(path, "load certificate: %v", err)
	}
	return cert, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
