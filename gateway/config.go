package gateway

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	pathpkg "path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/confjson"
)

// Config is a validated gateway configuration. The zero values of the
// optional fields mean "default" as documented on each.
type Config struct {
	// Issuer is the authorization server's issuer URL; its RFC 8414 discovery
	// document names the introspection endpoint and jwks_uri.
	Issuer string
	// ClientID and ClientSecret authenticate the gateway at the
	// introspection endpoint (HTTP Basic, RFC 6749 §2.3.1).
	ClientID     string
	ClientSecret string
	// Audience, when set, must appear in a JWT access token's aud claim
	// (RFC 9068 §4). Introspected tokens are not checked against it.
	Audience string
	// PublicURL is how clients reach the gateway (scheme, host, port). When
	// set it decides the Forwarded header and the challenge realm; nil means
	// "as the request (or a trusted proxy) says".
	PublicURL *url.URL
	// TrustedProxies are the peers whose forwarding headers (the family
	// ForwardedHeader names) are believed. Everyone else's are discarded.
	TrustedProxies []netip.Prefix
	// ForwardedHeader names the one header family the trusted proxies set,
	// overwriting whatever the client sent: ForwardedHeaderX ("x-forwarded",
	// the default for "") or ForwardedHeaderRFC7239 ("forwarded"). The other
	// family is ignored even from a trusted peer, since proxies such as
	// nginx and AWS ALB pass it through from the client unchanged.
	ForwardedHeader string
	Cache           CacheConfig
	JWKS            JWKSConfig
	// Tiers are named rate limits; ClientTiers puts a client in one. A
	// client not in ClientTiers gets the tier its token names (the server's
	// API catalogue) when Tiers defines it, else its route's Tier; no tier
	// means no limit.
	Tiers       map[string]Tier
	ClientTiers map[string]string
	Routes      []Route
	// ClaimHeaders maps a token claim (introspection member or JWT claim)
	// to the request header that carries it to the backend, e.g.
	// "email" → "X-Authenticated-Email".
	ClaimHeaders map[string]string

	// Logger receives operational logs; never tokens. Nil discards.
	Logger *slog.Logger
	// Collectors are registered in the gateway's metrics registry beside
	// its own: what the command runs for the process's lifetime (the ACME
	// certificates' expiry), so the metrics survive a reload.
	Collectors []prometheus.Collector
	// AuthClient talks to the authorization server. Nil: a client with
	// short timeouts.
	AuthClient *http.Client
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
	// Tracer records spans (tracing.go); nil: tracing off.
	Tracer trace.TracerProvider
}

// CacheConfig bounds the token cache.
type CacheConfig struct {
	// TTL is the longest a validation result is reused; an entry never
	// outlives the token's exp. Zero disables caching: every request is
	// checked with the server (revocation takes effect at once).
	TTL time.Duration
	// NegativeTTL is how long "this token is not active" is remembered, so a
	// client retrying a bad token does not hammer the server. Zero disables.
	NegativeTTL time.Duration
	// MaxEntries bounds memory; the least recently used entry goes first.
	// Zero: 10000.
	MaxEntries int
}

// JWKSConfig tunes how the server's signing keys are refreshed.
type JWKSConfig struct {
	// MaxAge is how long a fetched key set is used before it is fetched
	// again (so retired keys stop being accepted). Zero: 5m.
	MaxAge time.Duration
	// MinRefetchInterval rate-limits refetches caused by an unknown kid, so
	// tokens with made-up kids cannot turn the gateway into a JWKS flooder.
	// Zero: 10s. Negative: no limit (tests).
	MinRefetchInterval time.Duration
}

// Tier is a token bucket: Requests per Per on average, up to Burst at once.
type Tier struct {
	Requests int
	Per      time.Duration
	Burst    int
}

// Route sends requests under PathPrefix to Upstream.
type Route struct {
	// PathPrefix matches whole path segments: "/search/v1" matches
	// "/search/v1" and "/search/v1/x", not "/search/v10". The longest
	// matching prefix wins.
	PathPrefix string
	Upstream   *url.URL
	// StripPrefix removes PathPrefix before proxying; the Forwarded header
	// then carries it as prefix= so the backend can build public links.
	StripPrefix bool
	// Scopes are all required.
	Scopes []string
	// Tier is the rate limit for clients without a tier of their own.
	Tier string
	// Public routes need no token; identity headers are still removed.
	Public bool
	// ForwardAuthorization passes the client's Authorization header on;
	// by default the token stays at the gateway.
	ForwardAuthorization bool
	// BasicAuth, when set, is the backend's own Authorization.
	BasicAuth *BasicAuth
	// TLS is the client TLS configuration toward an https upstream (mutual
	// TLS with a client certificate, a private CA). Nil: system defaults.
	TLS *tls.Config
	// Timeout bounds the wait for the upstream's response headers (504
	// after it). Zero: 30s.
	Timeout time.Duration
	// CORS, when set, lets browser pages on the listed origins call the
	// route; nil: no CORS (an OPTIONS request needs a token like any).
	CORS *CORS
}

// BasicAuth is HTTP Basic credentials toward an upstream.
type BasicAuth struct {
	Username string
	Password string
}

// ForwardedHeader values.
const (
	// ForwardedHeaderX: X-Forwarded-For, -Proto, -Host, -Port, -Prefix.
	ForwardedHeaderX = "x-forwarded"
	// ForwardedHeaderRFC7239: Forwarded (RFC 7239).
	ForwardedHeaderRFC7239 = "forwarded"
)

// Defaults.
const (
	DefaultCacheTTL         = 30 * time.Second
	DefaultNegativeTTL      = 5 * time.Second
	DefaultCacheEntries     = 10000
	DefaultJWKSMaxAge       = 5 * time.Minute
	DefaultJWKSMinRefetch   = 10 * time.Second
	DefaultUpstreamTimeout  = 30 * time.Second
	upstreamDialTimeout     = 5 * time.Second
	authServerTimeout       = 5 * time.Second
	jwtLeeway               = 60 * time.Second
	retryAfterUnavailable   = 5 // seconds
	discoveryRetryInterval  = time.Second
	maxAuthResponseBytes    = 1 << 20
	defaultMaxRateLimitKeys = 100000
)

// check holds a Config, hand-built or parsed from a file, to every rule
// about its values; ParseConfig leaves them all to it. The first problem
// is reported with the file's field path ("routes[1].upstream: ...").
func (c *Config) check() error {
	for _, step := range []func() error{c.checkIdentity, c.checkLimits, c.checkClaims, c.checkRoutes} {
		if err := step(); err != nil {
			return err
		}
	}
	needToken := false
	for _, r := range c.Routes {
		needToken = needToken || !r.Public
	}
	// Only routes that check tokens need the authorization server; a
	// gateway of public routes alone (a rate-limited front) has none.
	switch {
	case !needToken:
	case c.Issuer == "":
		return confjson.Errorf("issuer", "is required: routes that need a token are checked against it")
	case c.ClientID == "":
		return confjson.Errorf("client_id", "is required: the gateway introspects tokens as this client")
	case c.ClientSecret == "":
		return confjson.Errorf("client_secret", "is required (use ${ENV_VAR} to keep it out of git)")
	}
	return nil
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$`)

// checkIdentity: issuer, client_id, public_url, forwarded_header.
func (c *Config) checkIdentity() error {
	if c.Issuer != "" {
		if _, err := confjson.Issuer(c.Issuer); err != nil {
			return confjson.Errorf("issuer", "%v", err)
		}
	}
	if c.ClientID != "" {
		if err := confjson.ClientID(c.ClientID); err != nil {
			return confjson.Errorf("client_id", "%v", err)
		}
	}
	if u := c.PublicURL; u != nil {
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return confjson.Errorf("public_url", "expected an absolute http(s) URL such as https://api.example.com, got %q", u.String())
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return confjson.Errorf("public_url", "must not contain user info, a query or a fragment")
		}
		if _, err := netip.ParseAddr(u.Hostname()); err != nil && !hostnamePattern.MatchString(u.Hostname()) {
			return confjson.Errorf("public_url", "%q is not a valid host name", u.Hostname())
		}
	}
	switch c.ForwardedHeader {
	case "", ForwardedHeaderX, ForwardedHeaderRFC7239:
	default:
		return confjson.Errorf("forwarded_header", "expected %q (X-Forwarded-For, -Proto, -Host, -Port, -Prefix) or %q (RFC 7239 Forwarded): the one header family the trusted proxies overwrite; got %q",
			ForwardedHeaderX, ForwardedHeaderRFC7239, c.ForwardedHeader)
	}
	return nil
}

var tierNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkLimits: cache, tiers, client_tiers.
func (c *Config) checkLimits() error {
	switch {
	case c.Cache.TTL < 0:
		return confjson.Errorf("cache.ttl", "must be at least 0s, got %s", c.Cache.TTL)
	case c.Cache.NegativeTTL < 0:
		return confjson.Errorf("cache.negative_ttl", "must be at least 0s, got %s", c.Cache.NegativeTTL)
	case c.Cache.MaxEntries < 0:
		return confjson.Errorf("cache.max_entries", "must not be negative")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Tiers)) {
		path, t := "tiers."+name, c.Tiers[name]
		switch {
		case !tierNamePattern.MatchString(name):
			return confjson.Errorf(path, "tier names are 1-64 characters of A-Z a-z 0-9 . _ -")
		case t.Requests < 1:
			return confjson.Errorf(path+".requests", "must be at least 1")
		case t.Per < time.Millisecond:
			return confjson.Errorf(path+".per", "must be at least %s, got %s", time.Millisecond, t.Per)
		case t.Burst < 0:
			return confjson.Errorf(path+".burst", "must not be negative (0 means the same as requests)")
		}
	}
	for _, client := range slices.Sorted(maps.Keys(c.ClientTiers)) {
		if tier := c.ClientTiers[client]; !hasTier(c.Tiers, tier) {
			return confjson.Errorf("client_tiers."+client, "unknown tier %q", tier)
		}
	}
	return nil
}

func hasTier(tiers map[string]Tier, name string) bool {
	_, ok := tiers[name]
	return ok
}

// checkClaims: claim_headers, each header carrying one claim.
func (c *Config) checkClaims() error {
	headers := map[string]string{}
	for _, claim := range slices.Sorted(maps.Keys(c.ClaimHeaders)) {
		h, path := c.ClaimHeaders[claim], "claim_headers."+claim
		if claim == "" {
			return confjson.Errorf("claim_headers", "a claim name is empty")
		}
		if err := CheckClaimHeader(h); err != nil {
			return confjson.Errorf(path, "%v", err)
		}
		canon := strings.ToLower(h)
		if other, dup := headers[canon]; dup {
			return confjson.Errorf(path, "header %s already carries claim %q", h, other)
		}
		headers[canon] = claim
	}
	return nil
}

func (c *Config) checkRoutes() error {
	if len(c.Routes) == 0 {
		return confjson.Errorf("routes", "at least one route is required")
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		path := confjson.Index("routes", i)
		if err := r.check(path, c.Tiers); err != nil {
			return err
		}
		key := normalizePrefix(r.PathPrefix)
		if j, dup := seen[key]; dup {
			return confjson.Errorf(path+".path_prefix", "%q is already used by routes[%d]", r.PathPrefix, j)
		}
		seen[key] = i
	}
	return nil
}

func (r *Route) check(path string, tiers map[string]Tier) error {
	switch p := r.PathPrefix; {
	case p == "":
		return confjson.Errorf(path+".path_prefix", "is required")
	case !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#% \t") || (p != "/" && pathpkg.Clean(p) != strings.TrimRight(p, "/")):
		return confjson.Errorf(path+".path_prefix", "%q must be a clean absolute path such as /search/v1", p)
	case p == HealthPath || strings.HasPrefix(p, HealthPath+"/"):
		return confjson.Errorf(path+".path_prefix", "%s is the gateway's own health check", HealthPath)
	}
	switch u := r.Upstream; {
	case u == nil:
		return confjson.Errorf(path+".upstream", "is required")
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return confjson.Errorf(path+".upstream", "expected an absolute http(s) URL, got %q", u.String())
	case u.User != nil:
		return confjson.Errorf(path+".upstream", "must not contain credentials; use upstream_auth.basic")
	case u.Fragment != "":
		return confjson.Errorf(path+".upstream", "must not contain a fragment")
	}
	for j, s := range r.Scopes {
		if !confjson.ScopeToken(s) {
			return confjson.Errorf(fmt.Sprintf("%s.scopes[%d]", path, j), "invalid scope %q", s)
		}
	}
	if r.Public && len(r.Scopes) > 0 {
		return confjson.Errorf(path+".scopes", "a public route takes no token, so it cannot require scopes")
	}
	if r.Tier != "" && !hasTier(tiers, r.Tier) {
		return confjson.Errorf(path+".tier", "unknown tier %q", r.Tier)
	}
	if err := r.checkUpstreamAuth(path + ".upstream_auth"); err != nil {
		return err
	}
	if r.CORS != nil {
		return r.CORS.check(path + ".cors")
	}
	return nil
}

func (r *Route) checkUpstreamAuth(path string) error {
	if b := r.BasicAuth; b != nil {
		switch {
		case b.Username == "" || strings.Contains(b.Username, ":"):
			return confjson.Errorf(path+".basic.username", "is required and must not contain ':'")
		case b.Password == "":
			return confjson.Errorf(path+".basic.password", "is required (use ${ENV_VAR} to keep it out of git)")
		case r.ForwardAuthorization:
			return confjson.Errorf(path+".basic", "cannot be combined with forward_authorization: both set the Authorization header")
		}
	}
	if r.TLS != nil && r.Upstream.Scheme != "https" {
		return confjson.Errorf(path+".tls", "needs an https upstream, got %q", r.Upstream.String())
	}
	return nil
}

// normalizePrefix drops a trailing slash so "/a/" and "/a" are one route.
func normalizePrefix(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}
