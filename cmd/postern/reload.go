package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/authz"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/keys"
	"github.com/postern-auth/postern/passhash"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/storetrace"
)

// Configuration reload (SIGHUP). The http.Server's handler is a
// swapHandler; a reload re-reads the configuration file, validates all of
// it, builds a complete new handler from it and only then swaps it in.
// Requests already running finish on the old handler, new ones get the new
// one; a configuration that fails to load or build, or that changes a
// setting only a restart can apply, changes nothing.

// swapHandler forwards every request to the current handler.
type swapHandler struct{ cur atomic.Pointer[http.Handler] }

func newSwapHandler(h http.Handler) *swapHandler {
	s := &swapHandler{}
	s.cur.Store(&h)
	return s
}

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.cur.Load()).ServeHTTP(w, r)
}

// swap installs h and returns the handler it replaces.
func (s *swapHandler) swap(h http.Handler) http.Handler {
	return *s.cur.Swap(&h)
}

// reloadSource is where a running process's reloads come from: a signal
// for each, and the configuration to load then (the same file and flags as
// at start). The zero value never reloads.
type reloadSource[C any] struct {
	signals <-chan os.Signal
	load    func() (C, error)
}

// restartChanges names the settings of next that differ from running and
// that a running `postern serve` cannot apply: the listener, the store,
// the signing-key manager and its schedules, and the issuer (in every
// token, and in the SAML providers' URLs). Both configurations have their
// effective issuer filled in.
func restartChanges(running, next *Config) []string {
	var out []string
	add := func(changed bool, name string) {
		if changed {
			out = append(out, name)
		}
	}
	add(running.Addr != next.Addr, "addr")
	add(running.AdminListen != next.AdminListen, "admin_listen")
	add(running.DataDir != next.DataDir, "data_dir")
	add(running.Store != next.Store, "store")
	add(running.Issuer != next.Issuer, "issuer")
	add(running.KeyAlgorithm != next.KeyAlgorithm, "keys.algorithm")
	add(running.KeyOverlap != next.KeyOverlap, "keys.rotation_overlap")
	add(running.KeyReload != next.KeyReload, "keys.reload_interval")
	add(running.KeyRotate != next.KeyRotate, "keys.rotate_after")
	add(running.TLSFiles != next.TLSFiles, "tls")
	add(!running.ACME.Same(next.ACME), "tls.acme")
	return out
}

// serveBase is what every authz.Server of one process shares, made once at
// start: the store and signing keys, the login throttle (its counters live
// in the store, its local fallback in memory), the client-secret hasher
// (its cache and argon2 gate), the metrics registry (counters carry on
// across reloads) and the jwks_uri fetcher (its cache runs goroutines).
// The session cookie key comes from the system secret, so login sessions
// survive a reload.
type serveBase struct {
	ctx      context.Context // the process's: ends at shutdown
	store    storage.Store
	keys     *keys.Manager
	secret   keys.Secret
	throttle *identity.Throttle
	hasher   *clients.SecretHasher
	// argon is the process's one bound on argon2 checks: password and
	// client-secret checks share it, across reloads.
	argon   *passhash.Limiter
	metrics *prometheus.Registry
	jwks    fosite.JWKSFetcherStrategy
	log     *slog.Logger
	tracer  trace.TracerProvider // nil: tracing off
}

// With a tracer, requests' store calls and argon2 checks become spans; the
// keys manager keeps the store it was given (its calls are not a
// request's).
func newServeBase(ctx context.Context, store storage.Store, km *keys.Manager, secret keys.Secret, log *slog.Logger, tp trace.TracerProvider) *serveBase {
	argon := passhash.NewLimiter(0, nil).WithTracing(tp)
	if tp != nil {
		store = storetrace.Wrap(store, tp)
	}
	return &serveBase{
		ctx:    ctx,
		store:  store,
		keys:   km,
		secret: secret,
		// Login-throttling counters live in the store, so replicas on one
		// database share them (bbolt takes the same path).
		throttle: identity.NewThrottle(identity.ThrottleOptions{Store: store, Logger: log}),
		hasher:   clients.NewSecretHasher(argon),
		argon:    argon,
		metrics:  prometheus.NewRegistry(),
		jwks:     &lazyJWKSFetcher{},
		log:      log,
		tracer:   tp,
	}
}

// lazyJWKSFetcher is fosite's default jwks_uri fetcher, made on first use:
// its cache allocates and starts goroutines, and most deployments have no
// jwks_uri client.
type lazyJWKSFetcher struct {
	once sync.Once
	f    fosite.JWKSFetcherStrategy
}

func (l *lazyJWKSFetcher) Resolve(ctx context.Context, location string, ignoreCache bool) (*jose.JSONWebKeySet, error) {
	l.once.Do(func() {
		// Bounded in time and retries, and silent: the library's default
		// client logs every fetch to stderr, past slog.
		c := retryablehttp.NewClient()
		c.Logger = nil
		c.RetryMax = 2
		c.RetryWaitMax = 2 * time.Second
		c.HTTPClient.Timeout = 10 * time.Second
		l.f = fosite.NewDefaultJWKSFetcherStrategy(fosite.JWKSFetcherWithHTTPClient(c))
	})
	return l.f.Resolve(ctx, location, ignoreCache)
}

// serveInstance is the handler built from one configuration, and what must
// stop when it is replaced.
type serveInstance struct {
	cfg      *Config
	srv      *authz.Server
	stopSAML func() // ends the SAML metadata refreshes and waits for them
}

// build makes a complete handler for cfg (its issuer filled in). On error
// nothing is left running.
func (b *serveBase) build(cfg *Config) (*serveInstance, error) {
	samlProviders, stopSAML, err := startSAML(b.ctx, cfg, cfg.Issuer, b.store, b.secret, b.log)
	if err != nil {
		return nil, err
	}
	srv, err := authz.New(authz.Config{
		Issuer:                cfg.Issuer,
		AccessTokenFormat:     cfg.Format,
		Lifetimes:             cfg.Lifetimes,
		Clients:               cfg.Clients,
		SecretHasher:          b.hasher,
		HMACSecret:            b.secret.Derive("postern token hmac v1", 32),
		CookieKey:             b.secret.Derive("postern cookies v1", 64),
		RetryKey:              b.secret.Derive("postern refresh retry v1", 32),
		SessionTTL:            cfg.SessionTTL,
		TrustedProxies:        cfg.TrustedProxies,
		ForwardedHeader:       cfg.ForwardedHeader,
		Users:                 identity.NewDirectory(cfg.Users, b.throttle, b.argon),
		Logger:                b.log,
		SAML:                  samlProviders,
		Metrics:               b.metrics,
		JWKSFetcher:           b.jwks,
		Portal:                cfg.Portal,
		RegistrationTokenHash: cfg.RegistrationTokenHash,
		Catalog:               cfg.Catalog,
		Tracer:                b.tracer,
	}, b.store, b.keys)
	if err != nil {
		stopSAML()
		return nil, err
	}
	return &serveInstance{cfg: cfg, srv: srv, stopSAML: stopSAML}, nil
}

// serveReloader applies reloads to a running `postern serve`. Reloads run
// one at a time, on the goroutine that waits for signals.
type serveReloader struct {
	base          *serveBase
	load          func() (*Config, error)
	defaultIssuer string // "http://" + the listen address, for a configuration without issuer
	handler       *swapHandler
	cur           *serveInstance
}

// reload re-reads the configuration and swaps in a handler built from it;
// on any problem it logs why and keeps the running configuration. It
// reports whether the new configuration is in use.
func (r *serveReloader) reload() bool {
	log := r.base.log
	next, err := r.load()
	if err != nil {
		log.Error("configuration not reloaded; still serving the previous configuration", "error", err)
		return false
	}
	if next.Issuer == "" {
		next.Issuer = r.defaultIssuer
	}
	if changed := restartChanges(r.cur.cfg, next); len(changed) > 0 {
		log.Error("configuration not reloaded: a change to "+strings.Join(changed, ", ")+" requires a restart; still serving the previous configuration",
			"settings", changed)
		return false
	}
	for _, w := range next.Warnings {
		log.Warn(w)
	}
	inst, err := r.base.build(next)
	if err != nil {
		log.Error("configuration not reloaded; still serving the previous configuration", "error", err)
		return false
	}
	old := r.cur
	r.handler.swap(inst.srv)
	r.cur = inst
	if err := inst.srv.TakeOver(r.base.ctx, old.srv); err != nil {
		log.Error("reloaded, but the revocation feed may miss what the reload ended (caches keep such tokens until their TTL)", "error", err)
	}
	// Requests still inside the old server keep its providers, which work
	// on without their refresh.
	old.stopSAML()
	added, removed := clientChanges(old.cfg.Clients, next.Clients)
	log.Info("configuration reloaded", "clients", len(next.Clients), "users", len(next.Users),
		"saml_providers", len(next.SAMLProviders), "apis", len(next.Catalog.APIs()), "clients_added", added, "clients_removed", removed)
	return true
}

// close stops what the current instance runs; the process is ending.
func (r *serveReloader) close() { r.cur.stopSAML() }

// clientChanges lists the client IDs only in next (added) and only in old
// (removed), sorted.
func clientChanges(old, next []*clients.Client) (added, removed []string) {
	ids := func(cs []*clients.Client) map[string]bool {
		m := make(map[string]bool, len(cs))
		for _, c := range cs {
			m[c.ID] = true
		}
		return m
	}
	o, n := ids(old), ids(next)
	for id := range n {
		if !o[id] {
			added = append(added, id)
		}
	}
	for id := range o {
		if !n[id] {
			removed = append(removed, id)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	return added, removed
}

// serveUntilStopped waits for the stop signal, reloading on each SIGHUP; a
// listener that fails ends the wait with its error.
func serveUntilStopped[C any](ctx context.Context, errc <-chan error, reloads reloadSource[C], reload func(), log *slog.Logger) error {
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			return nil
		case <-reloads.signals:
			log.Info("SIGHUP: reloading the configuration")
			reload()
		}
	}
}
