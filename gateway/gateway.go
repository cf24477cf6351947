package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Gateway is the sidecar's HTTP handler: route, check, proxy.
type Gateway struct {
	routes        *routeTable
	all           []*route
	validator     *validator
	limiter       *limiter
	preflightTier *tierState // per client address, for CORS preflights
	tiers         *tierChooser
	fwd           *forwardedPolicy
	protected     protectedHeaders
	claimHeaders  map[string]string // claim → canonical header
	realm         string
	metrics       *metrics
	log           *slog.Logger
	authClient    *http.Client
	disco         *discovery
	introspector  *introspector
	// The revocation feed (feed.go): what it told, the credentials it is
	// read with, and how to stop following it.
	revoked          *revocations
	feedClientID     string
	feedClientSecret string
	stopFeed         context.CancelFunc

	lastUnavailableLog atomic.Int64 // unix second of the last "cannot validate" warning

	tracer trace.Tracer // nil: tracing off (tracing.go)
}

// New builds a Gateway. Nothing is fetched yet: discovery happens on the
// first request that needs a token checked (or through Warm), so the
// gateway can start before the authorization server does.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	fwd, err := newForwardedPolicy(cfg.PublicURL, cfg.TrustedProxies, cfg.ForwardedHeader)
	if err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	client := cfg.AuthClient
	if client == nil {
		client = newAuthClient()
	}
	// g.authClient keeps the client as built (Close reaches its
	// transport); the calls to the server go through calls.
	calls := client
	var tracer trace.Tracer
	if cfg.Tracer != nil {
		tracer = cfg.Tracer.Tracer("github.com/postern-auth/postern/gateway")
		calls = withPropagation(client)
	}
	g := &Gateway{
		log:              log,
		metrics:          newMetrics(),
		fwd:              fwd,
		protected:        newProtectedHeaders(cfg.ClaimHeaders),
		claimHeaders:     map[string]string{},
		limiter:          newLimiter(defaultMaxRateLimitKeys, now),
		preflightTier:    newTierState("cors-preflight", preflightLimit),
		authClient:       client,
		revoked:          newRevocations(),
		feedClientID:     cfg.ClientID,
		feedClientSecret: cfg.ClientSecret,
		tracer:           tracer,
	}
	for _, c := range cfg.Collectors {
		if err := g.metrics.reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway metrics: %w", err)
		}
	}
	g.realm = g.fwd.realm()
	for claim, h := range cfg.ClaimHeaders {
		g.claimHeaders[claim] = http.CanonicalHeaderKey(h)
	}
	tiers := map[string]*tierState{}
	for name, t := range cfg.Tiers {
		tiers[name] = newTierState(name, t)
	}
	g.tiers = newTierChooser(tiers, cfg.ClientTiers, log)
	for _, r := range cfg.Routes {
		rt := &route{Route: r, prefix: normalizePrefix(r.PathPrefix), tier: tiers[r.Tier]}
		rt.label = rt.prefix
		rt.scopeStr = strings.Join(r.Scopes, " ")
		rt.cors = newCORSPolicy(r.CORS)
		if fwd.public != nil {
			// public_url answers for every request: the route's Forwarded
			// value is fixed, so it is written once here.
			if rt.forwarded, err = fwd.public.header(rt.forwardedPrefix()); err != nil {
				return nil, fmt.Errorf("gateway config: route %s: %w", rt.label, err)
			}
		}
		rt.proxy = g.newRouteProxy(rt)
		g.all = append(g.all, rt)
	}
	g.routes = newRouteTable(g.all)

	g.disco = &discovery{issuer: strings.TrimSuffix(cfg.Issuer, "/"), client: calls, now: now}
	in := &introspector{disco: g.disco, client: calls, clientID: cfg.ClientID, clientSecret: cfg.ClientSecret,
		issuer: g.disco.issuer, claimHeaders: cfg.ClaimHeaders, tracer: tracer}
	maxAge, minRefetch := cfg.JWKS.MaxAge, cfg.JWKS.MinRefetchInterval
	if maxAge <= 0 {
		maxAge = DefaultJWKSMaxAge
	}
	if minRefetch == 0 {
		minRefetch = DefaultJWKSMinRefetch
	}
	jv := &jwtVerifier{issuer: g.disco.issuer, audience: cfg.Audience, claimHeaders: cfg.ClaimHeaders, now: now,
		keys: newKeySet(g.disco, calls, maxAge, minRefetch, now)}
	jv.keys.tracer = tracer
	maxEntries := cfg.Cache.MaxEntries
	if maxEntries == 0 {
		maxEntries = DefaultCacheEntries
	}
	g.introspector = in
	g.validator = &validator{
		cache:       newTokenCache(maxEntries),
		ttl:         cfg.Cache.TTL,
		negativeTTL: cfg.Cache.NegativeTTL,
		introspect:  in.introspect,
		verifyJWT:   jv.verify,
		now:         now,
		metrics:     g.metrics,
		rev:         g.revoked,
	}
	return g, nil
}

func newAuthClient() *http.Client {
	return &http.Client{
		Timeout: authServerTimeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: authServerTimeout, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64, // introspection calls run concurrently, one per uncached token
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: authServerTimeout,
		},
		// The server's endpoints answer directly; a redirect would be a
		// misconfiguration, and following it could send the gateway's
		// credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Warm runs discovery now, so a misconfigured issuer shows in the log at
// start rather than at the first request. Failure is not fatal.
func (g *Gateway) Warm(ctx context.Context) error {
	if g.disco.issuer == "" {
		return nil // public routes only: no authorization server to find
	}
	_, err := g.disco.get(ctx)
	return err
}

// CheckCredentials introspects a token that cannot exist, so the server
// says now whether it accepts the gateway's client credentials: nil when it
// answers, an error wrapping ErrCredentials when it refuses them, or one
// wrapping ErrUnavailable when it cannot be asked.
func (g *Gateway) CheckCredentials(ctx context.Context) error {
	if g.disco.issuer == "" {
		return nil
	}
	_, err := g.introspector.introspect(ctx, credentialsProbe)
	if err == nil || errors.Is(err, ErrInvalidToken) {
		return nil
	}
	return err
}

// MetricsHandler serves Prometheus metrics (for the admin listener).
func (g *Gateway) MetricsHandler() http.Handler { return g.metrics.handler() }

// Close stops following the revocation feed and releases idle upstream
// connections.
func (g *Gateway) Close() {
	if g.stopFeed != nil {
		g.stopFeed()
	}
	for _, rt := range g.all {
		rt.proxy.transport.CloseIdleConnections()
	}
	if tr, ok := g.authClient.Transport.(*http.Transport); ok {
		tr.CloseIdleConnections()
	}
}

// HealthPath is answered by the gateway itself and never proxied.
const HealthPath = "/healthz"

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == HealthPath {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	r, span := g.startSpan(r)
	label, clientID := g.handle(rec, r)
	status := rec.status
	if status == 0 {
		status = http.StatusOK
		if r.Header.Get("Upgrade") != "" {
			// ReverseProxy hijacked the connection for the upgrade and
			// wrote 101 itself, past the recorder.
			status = http.StatusSwitchingProtocols
		}
	}
	g.metrics.request(label, clientID, status)
	endSpan(span, label, clientID, status, rec.outcome)
	// Method, path and outcome only: query strings and headers can carry
	// credentials. Checked first so the hot path builds no log record.
	if g.log.Enabled(r.Context(), slog.LevelDebug) {
		g.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "route", label, "client_id", clientID,
			"status", status, "duration", time.Since(start))
	}
}

// handle runs the checks in order (route, token, rate limit, scope) and
// proxies only when all pass. On a CORS route a preflight is answered
// right after the route is found, and every other response gets its CORS
// headers before any check can refuse. It returns the route label and
// client for metrics.
func (g *Gateway) handle(w http.ResponseWriter, r *http.Request) (label, clientID string) {
	if !cleanPath(r.URL.Path) {
		writeError(w, http.StatusBadRequest, "invalid_request", "The request path is not in canonical form.")
		return "", ""
	}
	rt := g.routes.match(r.URL.Path)
	if rt == nil {
		writeError(w, http.StatusNotFound, "not_found", "No route for this path.")
		return "", ""
	}
	if !rawPrefixIntact(rt.prefix, r.URL.EscapedPath()) {
		writeError(w, http.StatusBadRequest, "invalid_request", "The request path is not in canonical form.")
		return "", ""
	}
	if rt.cors != nil {
		if isPreflight(r) {
			g.preflight(w, r, rt.cors)
			return rt.label, ""
		}
		rt.cors.actual(w.Header(), r)
	}
	st := &proxyState{route: rt, forwarded: rt.forwarded}
	if st.forwarded == "" {
		view, err := g.fwd.view(r)
		if err != nil {
			// The Host would be copied into Forwarded; one that is not a host
			// and a port could add parameters the backend believes.
			writeError(w, http.StatusBadRequest, "invalid_request", "The Host header is not a valid host and port.")
			return rt.label, ""
		}
		if st.forwarded, err = view.header(rt.forwardedPrefix()); err != nil {
			g.log.Error("cannot write the Forwarded header", "route", rt.label, "error", err)
			writeError(w, http.StatusInternalServerError, "server_error", "The request cannot be forwarded.")
			return rt.label, ""
		}
	}

	tier := rt.tier
	caller := ""
	if !rt.Public {
		id, ok := g.authenticate(w, r)
		if !ok {
			return rt.label, ""
		}
		st.id = id
		caller = id.ClientID
		tier = g.tiers.choose(rt, id)
	} else if tier != nil {
		caller = "ip:" + g.fwd.clientIP(r)
	}
	if tier != nil {
		d := g.limiter.take(tier, caller)
		setRateLimitHeaders(w.Header(), d)
		if !d.allowed {
			writeError(w, http.StatusTooManyRequests, "rate_limited", "Too many requests; see Retry-After.")
			return rt.label, clientLabel(st.id)
		}
		st.rateLimit = true
		st.tier = tier.name
	}
	if st.id != nil && !st.id.hasScopes(rt.Scopes) {
		g.challenge(w, http.StatusForbidden, "insufficient_scope", "The token lacks a scope this route requires.", rt.scopeStr)
		return rt.label, st.id.ClientID
	}
	st.start = time.Now()
	rt.proxy.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	return rt.label, clientLabel(st.id)
}

func clientLabel(id *Identity) string {
	if id == nil {
		return ""
	}
	return id.ClientID
}

// authenticate answers the request itself (401, 400, 503) when the token
// does not yield an identity.
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) (*Identity, bool) {
	token, err := bearerToken(r)
	switch {
	case errors.Is(err, errTwoMethods):
		g.challenge(w, http.StatusBadRequest, "invalid_request", "Send the token in the Authorization header only, not also as access_token.", "")
		return nil, false
	case err != nil:
		g.challenge(w, http.StatusBadRequest, "invalid_request", "The Authorization header must hold one Bearer token.", "")
		return nil, false
	case token == "":
		g.challenge(w, http.StatusUnauthorized, "", "A bearer token is required.", "")
		return nil, false
	}
	id, err := g.validator.check(r.Context(), token)
	switch {
	case err == nil:
		return id, true
	case errors.Is(err, ErrInvalidToken):
		g.challenge(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.", "")
	case r.Context().Err() != nil:
		// The client left while its token was being checked: not an
		// outage of the authorization server, and no one reads the answer.
		// 499 is nginx's "client closed request", for the metrics only.
		w.WriteHeader(499)
	case errors.Is(err, ErrCredentials):
		// Fail closed as below, but say what to fix: no outage ends this.
		if now := time.Now().Unix(); g.lastUnavailableLog.Swap(now) != now {
			g.log.ErrorContext(r.Context(), "configuration error: cannot validate tokens; fix the gateway's client_id / client_secret (or the client at the server) and reload", "error", err)
		}
		retryAfter(w, retryAfterUnavailable*time.Second)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Token validation is temporarily unavailable.")
	default:
		// Fail closed: without the server's word no token is accepted.
		// During an outage every uncached request lands here; one line a
		// second says it without flooding the log.
		if now := time.Now().Unix(); g.lastUnavailableLog.Swap(now) != now {
			g.log.WarnContext(r.Context(), "cannot validate token", "error", err)
		}
		retryAfter(w, retryAfterUnavailable*time.Second)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Token validation is temporarily unavailable.")
	}
	return nil, false
}

// statusRecorder notes the status for metrics. Unwrap lets ReverseProxy
// reach the real writer's Flush and Hijack through http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	outcome string // the error code answered, for the trace (noteOutcome)
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
