package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
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
	// client without a tier gets its route's Tier; no tier means no limit.
	Tiers       map[string]Tier
	ClientTiers map[string]string
	Routes      []Route
	// ClaimHeaders maps a token claim (introspection member or JWT claim)
	// to the request header that carries it to the backend, e.g.
	// "email" → "X-Authenticated-Email".
	ClaimHeaders map[string]string

	// Logger receives operational logs; never tokens. Nil discards.
	Logger *slog.Logger
	// AuthClient talks to the authorization server. Nil: a client with
	// short timeouts.
	AuthClient *http.Client
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
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

// check catches what a hand-built Config can get wrong. The command's
// config loader reports the same problems with field names first.
func (c *Config) check() error {
	var errs []error
	switch c.ForwardedHeader {
	case "", ForwardedHeaderX, ForwardedHeaderRFC7239:
	default:
		errs = append(errs, fmt.Errorf("forwarded_header %q must be %q or %q", c.ForwardedHeader, ForwardedHeaderX, ForwardedHeaderRFC7239))
	}
	needAuth := false
	seen := map[string]bool{}
	for i, r := range c.Routes {
		if !strings.HasPrefix(r.PathPrefix, "/") {
			errs = append(errs, fmt.Errorf("routes[%d]: path_prefix %q must start with /", i, r.PathPrefix))
		}
		p := normalizePrefix(r.PathPrefix)
		if seen[p] {
			errs = append(errs, fmt.Errorf("routes[%d]: path_prefix %q is used twice", i, r.PathPrefix))
		}
		seen[p] = true
		if r.Upstream == nil || (r.Upstream.Scheme != "http" && r.Upstream.Scheme != "https") || r.Upstream.Host == "" {
			errs = append(errs, fmt.Errorf("routes[%d]: upstream must be an absolute http(s) URL", i))
		}
		if r.Tier != "" {
			if _, ok := c.Tiers[r.Tier]; !ok {
				errs = append(errs, fmt.Errorf("routes[%d]: unknown tier %q", i, r.Tier))
			}
		}
		if r.Public && len(r.Scopes) > 0 {
			errs = append(errs, fmt.Errorf("routes[%d]: a public route cannot require scopes", i))
		}
		if r.BasicAuth != nil && r.ForwardAuthorization {
			errs = append(errs, fmt.Errorf("routes[%d]: upstream basic auth and forward_authorization both set Authorization", i))
		}
		if r.CORS != nil {
			if err := r.CORS.check(); err != nil {
				errs = append(errs, fmt.Errorf("routes[%d]: cors: %w", i, err))
			}
		}
		needAuth = needAuth || !r.Public
	}
	// Only routes that check tokens need the authorization server; a
	// gateway of public routes alone (a rate-limited front) has none.
	if needAuth && c.Issuer == "" {
		errs = append(errs, errors.New("issuer is required when a route is not public"))
	}
	if needAuth && (c.ClientID == "" || c.ClientSecret == "") {
		errs = append(errs, errors.New("client_id and client_secret are required for routes that need a token"))
	}
	for name, t := range c.Tiers {
		if t.Requests <= 0 || t.Per <= 0 || t.Burst < 0 {
			errs = append(errs, fmt.Errorf("tier %q: requests and per must be positive", name))
		}
	}
	for client, tier := range c.ClientTiers {
		if _, ok := c.Tiers[tier]; !ok {
			errs = append(errs, fmt.Errorf("client_tiers[%q]: unknown tier %q", client, tier))
		}
	}
	if c.Cache.TTL < 0 || c.Cache.NegativeTTL < 0 || c.Cache.MaxEntries < 0 {
		errs = append(errs, errors.New("cache values must not be negative"))
	}
	for claim, h := range c.ClaimHeaders {
		if err := CheckClaimHeader(h); err != nil {
			errs = append(errs, fmt.Errorf("claim_headers[%q]: %w", claim, err))
		}
	}
	return errors.Join(errs...)
}

// normalizePrefix drops a trailing slash so "/a/" and "/a" are one route.
func normalizePrefix(p string) string {
	if len(p) > 1 {
		return strings.TrimRight(p, "/")
	}
	return p
}
