package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/gateway"
)

// gatewayRetireAfter is how long a replaced gateway keeps its upstream
// connection pools before Close drops the idle ones. Requests still
// running on it (streams, WebSockets) are never cut.
const gatewayRetireAfter = 30 * time.Second

// gatewayRestartChanges names the settings of next that differ from
// running and that only a restart applies: the listeners and the served
// certificate.
func gatewayRestartChanges(running, next *gateway.FileConfig) []string {
	var out []string
	if running.Listen != next.Listen {
		out = append(out, "listen")
	}
	if !sameServedCertificates(running.TLS, next.TLS) || !running.ACME.Same(next.ACME) || running.DataDir != next.DataDir {
		out = append(out, "tls")
	}
	if running.AdminListen != next.AdminListen {
		out = append(out, "admin_listen")
	}
	return out
}

// sameServedCertificates compares the certificate chains two listener TLS
// configurations serve (a key file always matches its certificate).
func sameServedCertificates(a, b *tls.Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	if len(a.Certificates) != len(b.Certificates) {
		return false
	}
	for i := range a.Certificates {
		ca, cb := a.Certificates[i].Certificate, b.Certificates[i].Certificate
		if len(ca) != len(cb) {
			return false
		}
		for j := range ca {
			if !bytes.Equal(ca[j], cb[j]) {
				return false
			}
		}
	}
	return true
}

// gatewayReloader applies reloads to a running `postern gateway`. Reloads
// run one at a time, on the goroutine that waits for signals.
type gatewayReloader struct {
	ctx     context.Context // the process's: ends at shutdown
	log     *slog.Logger
	tracer  trace.TracerProvider // the process's; nil: tracing off
	load    func() (*gateway.FileConfig, error)
	handler *swapHandler // the main listener's
	metrics *swapHandler // the admin listener's /metrics; nil without one
	// collectors live as long as the process (ACME): each gateway built
	// on reload registers them too.
	collectors []prometheus.Collector
	cur        *gateway.FileConfig
	gw         *gateway.Gateway
	retired    []*retiredGateway
}

type retiredGateway struct {
	gw     *gateway.Gateway
	timer  *time.Timer
	closed atomic.Bool
}

func newGateway(cfg *gateway.FileConfig, log *slog.Logger, tp trace.TracerProvider, collectors []prometheus.Collector) (*gateway.Gateway, error) {
	gcfg := cfg.Gateway
	gcfg.Logger = log
	gcfg.Tracer = tp
	gcfg.Collectors = collectors
	return gateway.New(gcfg)
}

// warm runs discovery and checks the gateway's client credentials in the
// background, so a wrong issuer or secret shows in the log now, and starts
// following the revocation feed; the gateway serves meanwhile (see
// runGatewayServer for the check at start).
func (r *gatewayReloader) warm(gw *gateway.Gateway, issuer string) {
	gw.Subscribe(r.ctx)
	go func() {
		if err := r.checkAuthServer(gw, issuer); err != nil {
			r.log.Error("configuration error: tokens cannot be validated until the gateway's client_id / client_secret are fixed", "issuer", issuer, "error", err)
		}
	}()
}

// checkAuthServer runs discovery and introspects a token that cannot
// exist, bounded to 10 s. Only a refusal of the gateway's credentials is
// returned: an unreachable server is logged and may come up later (public
// routes need none).
func (r *gatewayReloader) checkAuthServer(gw *gateway.Gateway, issuer string) error {
	wctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	err := gw.Warm(wctx)
	if err == nil {
		err = gw.CheckCredentials(wctx)
	}
	switch {
	case errors.Is(err, gateway.ErrCredentials):
		return fmt.Errorf("%w; check client_id and client_secret in the gateway's configuration, and that the server at %s has that client with that secret", err, issuer)
	case err != nil && r.ctx.Err() == nil:
		r.log.Warn("authorization server not reachable yet; tokens will be checked once it is", "issuer", issuer, "error", err)
	}
	return nil
}

// reload re-reads the configuration and swaps in a gateway built from it;
// on any problem it logs why and keeps the running one. It reports whether
// the new configuration is in use. The new gateway starts with empty token
// caches and rate-limit buckets, and its own metrics.
func (r *gatewayReloader) reload() bool {
	next, err := r.load()
	if err != nil {
		r.log.Error("configuration not reloaded; still serving the previous configuration", "error", err)
		return false
	}
	if changed := gatewayRestartChanges(r.cur, next); len(changed) > 0 {
		r.log.Error("configuration not reloaded: a change to "+strings.Join(changed, ", ")+" requires a restart; still serving the previous configuration",
			"settings", changed)
		return false
	}
	gw, err := newGateway(next, r.log, r.tracer, r.collectors)
	if err != nil {
		r.log.Error("configuration not reloaded; still serving the previous configuration", "error", err)
		return false
	}
	old := r.gw
	r.handler.swap(gw)
	if r.metrics != nil {
		r.metrics.swap(gw.MetricsHandler())
	}
	r.gw, r.cur = gw, next
	r.retire(old)
	r.warm(gw, next.Gateway.Issuer)
	r.log.Info("configuration reloaded", "routes", len(next.Gateway.Routes), "issuer", next.Gateway.Issuer)
	return true
}

// retire closes old's idle connections after gatewayRetireAfter.
func (r *gatewayReloader) retire(old *gateway.Gateway) {
	live := r.retired[:0]
	for _, o := range r.retired {
		if !o.closed.Load() {
			live = append(live, o)
		}
	}
	o := &retiredGateway{gw: old}
	o.timer = time.AfterFunc(gatewayRetireAfter, func() { o.closed.Store(true); old.Close() })
	r.retired = append(live, o)
}

// close releases every gateway's connections; the process is ending and
// its requests are done.
func (r *gatewayReloader) close() {
	for _, o := range r.retired {
		if o.timer.Stop() {
			o.gw.Close()
		}
	}
	r.retired = nil
	r.gw.Close()
}
