package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/postern-auth/postern/tracing"
)

// proxyState carries what the checks decided to the Rewrite hook, which
// runs inside ReverseProxy after it has cloned the request.
type proxyState struct {
	route     *route
	id        *Identity // nil on public routes
	forwarded string
	rateLimit bool   // RateLimit-* headers are ours; drop the backend's
	tier      string // the tier applied, "" for none
	start     time.Time
}

type stateKey struct{}

func stateOf(ctx context.Context) *proxyState {
	st, _ := ctx.Value(stateKey{}).(*proxyState)
	return st
}

// routeProxy is one ReverseProxy per route: each has its own transport,
// because timeouts and TLS client settings are per route.
type routeProxy struct {
	rp        *httputil.ReverseProxy
	transport *http.Transport
}

func (g *Gateway) newRouteProxy(rt *route) *routeProxy {
	timeout := rt.Timeout
	if timeout <= 0 {
		timeout = DefaultUpstreamTimeout
	}
	tr := &http.Transport{
		// Upstreams are addressed directly; an HTTP_PROXY meant for
		// outbound traffic must not capture backend calls.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256, // the default 2 would reopen connections under any real load
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   upstreamDialTimeout,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
	}
	if rt.TLS != nil {
		tr.TLSClientConfig = rt.TLS.Clone()
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   g.rewrite(rt),
		Transport: tr,
		// FlushInterval 0: ReverseProxy already flushes at once for
		// streamed bodies (unknown length, text/event-stream); bodies of
		// known length are copied in full buffers. Upgraded connections
		// (WebSocket) are spliced by ReverseProxy itself.
		FlushInterval:  0,
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.upstreamError,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	return &routeProxy{rp: rp, transport: tr}
}

// rewrite builds the outbound request. It runs after ReverseProxy removed
// hop-by-hop headers, including any the client listed in Connection; the
// identity headers are therefore set here, so a client cannot name them in
// Connection to have them dropped on the way out.
func (g *Gateway) rewrite(rt *route) func(*httputil.ProxyRequest) {
	return func(pr *httputil.ProxyRequest) {
		st := stateOf(pr.In.Context())
		out := pr.Out
		// The gateway takes tokens only from Authorization, but a token in
		// the query must not reach the backend either (it never sees one),
		// on public routes too. Removed before SetURL, which appends the
		// upstream URL's own query.
		out.URL.RawQuery, _ = withoutQueryToken(out.URL.RawQuery)
		if rt.StripPrefix {
			out.URL.Path = stripPrefix(rt.prefix, out.URL.Path)
			if out.URL.RawPath != "" {
				if prefixMatches(rt.prefix, out.URL.RawPath) {
					out.URL.RawPath = stripPrefix(rt.prefix, out.URL.RawPath)
				} else {
					out.URL.RawPath = "" // re-escaped from Path
				}
			}
		}
		pr.SetURL(rt.Upstream)
		h := out.Header
		g.protected.strip(h)
		if !rt.ForwardAuthorization {
			delete(h, "Authorization")
		}
		if rt.BasicAuth != nil {
			out.SetBasicAuth(rt.BasicAuth.Username, rt.BasicAuth.Password)
		}
		if st.id != nil {
			setIdentity(h, st.id, st.tier, g.claimHeaders)
		}
		h[HeaderForwarded] = []string{st.forwarded}
		if g.tracer != nil {
			// The upstream's spans join the caller's trace under the
			// gateway's span. Without tracing the caller's traceparent
			// travels on as it came.
			tracing.Propagator.Inject(pr.In.Context(), propagation.HeaderCarrier(h))
		}
	}
}

func (g *Gateway) modifyResponse(resp *http.Response) error {
	st := stateOf(resp.Request.Context())
	g.metrics.upstreamLatency(st.route.label, time.Since(st.start))
	if st.rateLimit {
		for _, name := range rateLimitHeaders {
			delete(resp.Header, name)
		}
	}
	if st.route.cors != nil {
		stripBackendCORS(resp.Header)
	}
	return nil
}

// upstreamError answers 504 for an upstream that did not answer in time
// and 502 for every other failure, without saying why: the reason (an
// address, a TLS error) is for the operator's log, not the client.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateOf(r.Context())
	g.metrics.upstreamLatency(st.route.label, time.Since(st.start))
	if r.Context().Err() != nil {
		// The client went away; nobody reads this answer.
		g.log.Debug("client canceled upstream request", "route", st.route.label, "error", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	status, code, desc := http.StatusBadGateway, "bad_gateway", "The upstream service is unavailable."
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		status, code, desc = http.StatusGatewayTimeout, "gateway_timeout", "The upstream service did not answer in time."
	}
	g.log.Warn("upstream request failed", "route", st.route.label, "status", status, "error", err)
	writeError(w, status, code, desc)
}
