package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/catalog"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/samlsp"
	"github.com/postern-auth/postern/storage"
)

// Access token formats.
const (
	FormatOpaque = "opaque"
	FormatJWT    = "jwt"
)

// MaxBodyBytes bounds every request body; larger ones are refused with 413.
const MaxBodyBytes = 1 << 20

// Config is everything the HTTP face needs, already validated by the caller.
type Config struct {
	Issuer            string
	AccessTokenFormat string
	Lifetimes         clients.Lifetimes
	Clients           []*clients.Client
	// SecretHasher checks client secrets (see clients.SecretHasher).
	SecretHasher fosite.Hasher
	// HMACSecret keys opaque tokens; at least 32 bytes.
	HMACSecret []byte
	Logger     *slog.Logger
	Now        func() time.Time
	// Users authenticates local accounts (login form and password grant).
	Users *identity.Directory
	// RetryKey (32 bytes) seals the answers kept for the refresh retry
	// window; without it every refresh is strictly one-time.
	RetryKey []byte
	// CookieKey (64 bytes) encrypts the login session cookie and keys the
	// CSRF tokens.
	CookieKey []byte
	// SessionTTL is how long a login session lasts; default 8h.
	SessionTTL time.Duration
	// TrustedProxies are the peers whose Forwarded / X-Forwarded-For
	// headers name the real client (load balancers in front of Postern).
	TrustedProxies []netip.Prefix
	// ForwardedHeader names the header family those proxies set:
	// HeaderXForwardedFor (default) or HeaderForwarded.
	ForwardedHeader string
	// SAML are the identity providers users may sign in with, in the
	// order of the login page's buttons (see saml.go).
	SAML []*samlsp.Provider
	// Metrics is the registry the server records on and /metrics serves;
	// nil gives the server one of its own. A process that replaces its
	// Server (a configuration reload) passes the same registry every time:
	// the collectors already on it are reused, so counters carry on.
	Metrics *prometheus.Registry
	// JWKSFetcher fetches and caches private_key_jwt clients' jwks_uri; nil
	// gives the server fosite's default, created on first use. Its cache
	// runs goroutines for as long as the process, so a process that
	// replaces its Server passes one fetcher every time.
	JWKSFetcher fosite.JWKSFetcherStrategy
	// Catalog is the API catalogue (apis[]); nil is an empty one.
	Catalog *catalog.Catalog
	// RegistrationTokenHash is the hash of the initial access token RFC
	// 7591 registration requires; empty turns registration off.
	RegistrationTokenHash []byte
	// Portal says who may use the developer portal; zero: off.
	Portal Portal
	// Tracer records a span per request (tracing.go); nil: tracing off,
	// no span work at all. Store spans come from the store given to New
	// (storage/storetrace), password-check spans from Users' limiter.
	Tracer trace.TracerProvider
}

// Server is the authorization server's HTTP handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    storage.Store
	keys     KeySet
	fs       *fositeStore
	provider fosite.OAuth2Provider
	fosite   *fosite.Config
	clients  map[string]*clients.Client
	metrics  *metrics
	alarm    *storeAlarm
	authLog  *clientAuthLog
	registry *prometheus.Registry
	router   *mux.Router
	scopes   []string
	users    *identity.Directory
	jar      *cookieJar
	pages    pages
	// backchannel tells clients of a sign-out (backchannel.go).
	backchannel *backchannel

	// SAML identity providers, by ID and in login-page order.
	saml      map[string]*samlsp.Provider
	samlOrder []*samlsp.Provider

	feed *feedHub // the revocation feed's streams (feed.go)

	corsOrigins map[string]bool // configured browser apps' origins (cors.go)
	// regOrigins: registered browser apps' (cors_registered.go); a
	// handler that creates, deletes or re-points a registered client
	// calls its changed.
	regOrigins *registeredOrigins

	// directory finds clients in the configuration and the store.
	directory *clientDirectory
	tracer    trace.Tracer // nil: tracing off (tracing.go)
}

// Endpoint paths, relative to the issuer.
const (
	pathToken      = "/oauth2/token"
	pathIntrospect = "/oauth2/introspect"
	pathRevoke     = "/oauth2/revoke"
	pathJWKS       = "/.well-known/jwks.json"
)

// New builds the server. The store and keys stay owned by the caller.
func New(cfg Config, store storage.Store, keys KeySet) (*Server, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("authz: issuer is required")
	}
	if len(cfg.HMACSecret) < 32 {
		return nil, errors.New("authz: HMAC secret shorter than 32 bytes")
	}
	if cfg.SecretHasher == nil {
		return nil, errors.New("authz: secret hasher is required")
	}
	if cfg.AccessTokenFormat == "" {
		cfg.AccessTokenFormat = FormatOpaque
	}
	if cfg.AccessTokenFormat != FormatOpaque && cfg.AccessTokenFormat != FormatJWT {
		return nil, fmt.Errorf("authz: unknown access token format %q", cfg.AccessTokenFormat)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Users == nil {
		cfg.Users = identity.NewDirectory(nil, identity.NewThrottle(identity.ThrottleOptions{}), passhash.NewLimiter(0, nil))
	}
	hub := newFeedHub()
	// Every revocation committed through this server wakes its feed.
	store = feedStore{Store: store, hub: hub}
	s := &Server{cfg: cfg, log: cfg.Logger, store: store, keys: keys, clients: map[string]*clients.Client{}, users: cfg.Users, feed: hub}
	s.authLog = &clientAuthLog{log: s.log}
	if cfg.Tracer != nil {
		s.tracer = cfg.Tracer.Tracer("github.com/postern-auth/postern/authz")
	}
	var err error
	if s.jar, err = newCookieJar(cfg.CookieKey, strings.HasPrefix(cfg.Issuer, "https://"), cfg.SessionTTL, cfg.Now); err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	if s.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	scopes := map[string]bool{}
	for _, c := range cfg.Clients {
		if _, dup := s.clients[c.ID]; dup {
			return nil, fmt.Errorf("authz: client %q configured twice", c.ID)
		}
		s.clients[c.ID] = c
		for _, sc := range c.Scopes {
			scopes[sc] = true
		}
	}
	// The catalogue's scopes are requested by apps registered at runtime.
	for _, api := range cfg.Catalog.APIs() {
		for _, sc := range api.Scopes {
			scopes[sc.Name] = true
		}
	}
	for sc := range scopes {
		s.scopes = append(s.scopes, sc)
	}
	sort.Strings(s.scopes)
	s.corsOrigins = corsOrigins(s.clients)
	s.regOrigins = newRegisteredOrigins(store, s.clients, s.log, cfg.Now)
	s.directory = newClientDirectory(s.clients, store, catalogGrants{cfg.Catalog}, cfg.Lifetimes, cfg.Now)
	s.fs = &fositeStore{store: store, clients: s.directory, lifetime: cfg.Lifetimes, now: cfg.Now, cache: newDecodeCache(4096)}
	if len(cfg.RetryKey) > 0 {
		if s.fs.retry, err = newRetrySealer(cfg.RetryKey); err != nil {
			return nil, fmt.Errorf("authz: %w", err)
		}
	}
	s.fs.subjectOK = s.subjectActive
	var fc *fosite.Config
	s.provider, fc = newProvider(cfg, s.fs, cfg.HMACSecret, keys)
	s.fosite = fc
	if cfg.JWKSFetcher != nil {
		// Read per request by the client authentication handler.
		fc.JWKSFetcherStrategy = cfg.JWKSFetcher
	}
	s.registry = cfg.Metrics
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	if s.metrics, err = newMetrics(s.registry); err != nil {
		return nil, fmt.Errorf("authz: metrics: %w", err)
	}
	s.alarm = newStoreAlarm(s.log, s.metrics.unavailable, cfg.Now)
	s.saml = map[string]*samlsp.Provider{}
	for _, p := range cfg.SAML {
		if _, dup := s.saml[p.ID()]; dup {
			return nil, fmt.Errorf("authz: SAML provider %q configured twice", p.ID())
		}
		s.saml[p.ID()] = p
		s.samlOrder = append(s.samlOrder, p)
	}
	s.backchannel = newBackchannel(s)
	s.router = s.routes()
	return s, nil
}

func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = s.instrument("not_found", http.HandlerFunc(s.notFound))
	r.MethodNotAllowedHandler = s.instrument("method_not_allowed", http.HandlerFunc(s.notFound))
	handle := func(path, name string, h http.HandlerFunc) {
		r.Handle(path, s.instrument(name, h))
	}
	handle(pathToken, "token", s.withCORS("POST", s.handleToken))
	handle(pathIntrospect, "introspect", s.handleIntrospect)
	handle(pathRevoke, "revoke", s.withCORS("POST", s.handleRevoke))
	handle(pathRevocationFeed, "revocation_feed", s.handleRevocationFeed)
	handle(pathRegister, "register", s.handleRegister)
	handle(pathRegister+"/{id}", "register", s.handleRegisteredClient)
	handle("/.well-known/oauth-authorization-server", "discovery", s.withCORS("GET", s.handleDiscovery))
	handle("/.well-known/openid-configuration", "discovery", s.withCORS("GET", s.handleDiscovery))
	handle(pathJWKS, "jwks", s.withCORS("GET", s.handleJWKS))
	handle(pathUserinfo, "userinfo", s.withCORS("GET, POST", s.handleUserinfo))
	handle(pathEndSession, "end_session", s.handleEndSession)
	handle("/healthz", "healthz", s.handleHealth)
	handle(pathAuthorize, "authorize", s.handleAuthorize)
	handle(pathLogin, "login", s.handleLogin)
	handle(pathConsent, "consent", s.handleConsent)
	handle(pathLogout, "logout", s.handleLogout)
	handle(pathAccount, "account", s.handleAccount)
	handle(pathAccount+"/grants/revoke", "account", s.handleRevokeGrant)
	handle(pathAccount+"/grants/revoke-all", "account", s.handleRevokeAll)
	handle(pathAccount+"/consents/revoke", "account", s.handleForgetConsent)
	handle(pathAccount+"/sessions/end-all", "account", s.handleEndAllSessions)
	handle(pathAccount+"/api/grants", "account_api", s.handleAPIGrants)
	handle(pathAccount+"/api/grants/{id}", "account_api", s.handleAPIRevokeGrant)
	handle("/saml/{id}/login", "saml_login", s.handleSAMLLogin)
	handle("/saml/{id}/acs", "saml_acs", s.handleSAMLACS)
	handle("/saml/{id}/metadata", "saml_metadata", s.handleSAMLMetadata)
	s.portalRoutes(handle)
	r.PathPrefix("/static/").Handler(s.instrument("static", s.staticHandler()))
	return r
}

// ServeHTTP bounds every body before anything reads it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	s.router.ServeHTTP(w, withClientIP(r, s.cfg.TrustedProxies, s.cfg.ForwardedHeader))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeJSONError(w, http.StatusNotFound, "invalid_request", "No such endpoint.")
}

// handleHealth answers 200 when the server can serve: a load balancer
// stops sending traffic to a replica whose database is unreachable.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET.")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.Keys(ctx); err != nil {
		s.log.Warn("health check: store unavailable", "error", err)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
