package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics live on a registry owned by the Gateway, so two gateways in one
// process (tests) never collide. A nil *metrics records nothing.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	upstream      *prometheus.HistogramVec
	cache         *prometheus.CounterVec
	introspectLat *prometheus.HistogramVec
	cacheHit      prometheus.Counter
	cacheNegHit   prometheus.Counter
	cacheMiss     prometheus.Counter
	// The revocation feed.
	feedUp         prometheus.Gauge
	feedEvents     prometheus.Counter
	feedReconnects prometheus.Counter
	feedLag        prometheus.Histogram
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_gateway_requests_total",
			Help: "Requests by route, client and status code.",
		}, []string{"route", "client_id", "code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "postern_gateway_upstream_duration_seconds",
			Help:    "Time to the upstream's response headers, by route.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_gateway_token_cache_total",
			Help: "Token cache lookups by result (hit, negative_hit, miss).",
		}, []string{"result"}),
		introspectLat: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "postern_gateway_introspection_duration_seconds",
			Help:    "Introspection calls to the authorization server by outcome (active, inactive, error).",
			Buckets: latencyBuckets,
		}, []string{"outcome"}),
	}
	m.feedUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "postern_gateway_revocation_feed_connected",
		Help: "1 while the gateway follows the revocation feed and is caught up (cached tokens then live until their exp), else 0.",
	})
	m.feedEvents = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "postern_gateway_revocation_events_total",
		Help: "Revocation events applied to the token cache.",
	})
	m.feedReconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "postern_gateway_revocation_feed_reconnects_total",
		Help: "Times the revocation feed was lost and reconnected.",
	})
	m.feedLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "postern_gateway_revocation_lag_seconds",
		Help:    "From a revocation's commit at the server to its application here (clocks of both).",
		Buckets: latencyBuckets,
	})
	m.cacheHit = m.cache.WithLabelValues("hit")
	m.cacheNegHit = m.cache.WithLabelValues("negative_hit")
	m.cacheMiss = m.cache.WithLabelValues("miss")
	m.reg.MustRegister(m.requests, m.upstream, m.cache, m.introspectLat, m.feedUp, m.feedEvents, m.feedReconnects, m.feedLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) cacheResult(positive, found bool) {
	if m == nil {
		return
	}
	switch {
	case found && positive:
		m.cacheHit.Inc()
	case found:
		m.cacheNegHit.Inc()
	default:
		m.cacheMiss.Inc()
	}
}

func (m *metrics) introspection(d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "active"
	switch {
	case errors.Is(err, ErrInvalidToken):
		outcome = "inactive"
	case err != nil:
		outcome = "error"
	}
	m.introspectLat.WithLabelValues(outcome).Observe(d.Seconds())
}

func (m *metrics) request(route, clientID string, code int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, clientID, strconv.Itoa(code)).Inc()
}

func (m *metrics) upstreamLatency(route string, d time.Duration) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) feedConnected(up bool) {
	if m == nil {
		return
	}
	if up {
		m.feedUp.Set(1)
	} else {
		m.feedUp.Set(0)
	}
}

func (m *metrics) feedReconnect() {
	if m != nil {
		m.feedReconnects.Inc()
	}
}

func (m *metrics) feedApplied(committed, applied time.Time) {
	if m == nil {
		return
	}
	m.feedEvents.Inc()
	m.feedLag.Observe(max(0, applied.Sub(committed).Seconds()))
}
