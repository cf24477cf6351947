package authz

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	issued   *prometheus.CounterVec
	// unavailable counts requests refused because the store could not
	// answer or write (see storeAlarm).
	unavailable *prometheus.CounterVec
	// retried counts refreshes answered from the retry window.
	retried prometheus.Counter
}

// newMetrics registers on reg: by default a registry owned by the server, so
// two servers in one process (tests) never collide. On a registry shared by
// successive servers (reload) the collectors registered by the first are
// reused, so counters carry on rather than restart at zero.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_http_requests_total",
			Help: "HTTP requests by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "postern_http_request_duration_seconds",
			Help:    "HTTP request latency by endpoint.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"endpoint"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_tokens_issued_total",
			Help: "Access tokens issued by grant type.",
		}, []string{"grant_type"}),
		unavailable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_storage_unavailable_total",
			Help: "Requests refused with 503 because the store could not answer or write, by reason (no_space: its disk is full; unavailable: anything else).",
		}, []string{"reason"}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_refresh_retries_total",
			Help: "Refresh requests answered with the response of the refresh they repeat (refresh_retry_window).",
		}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.latency, err = register(reg, m.latency); err != nil {
		return nil, err
	}
	if m.issued, err = register(reg, m.issued); err != nil {
		return nil, err
	}
	if m.unavailable, err = register(reg, m.unavailable); err != nil {
		return nil, err
	}
	if m.retried, err = register(reg, m.retried); err != nil {
		return nil, err
	}
	if _, err = register[prometheus.Collector](reg, collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if _, err = register[prometheus.Collector](reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg, or returns the identical collector already there.
// A collector of the same name but another shape (labels, help) is an error.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// MetricsHandler serves the server's metrics in the Prometheus format, for
// an admin listener: they are not on the public router.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	outcome string // the OAuth error code answered, for the trace (noteOutcome)
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (the revocation
// feed flushes and sets deadlines through it).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// instrument counts and times a handler and logs one line per request:
// method, path and status only (query strings and bodies can carry tokens).
func (s *Server) instrument(endpoint string, h http.Handler) http.Handler {
	observer := s.metrics.latency.WithLabelValues(endpoint)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		r, span := s.startSpan(endpoint, r)
		defer func() {
			if p := recover(); p != nil {
				s.log.ErrorContext(r.Context(), "handler panic", "endpoint", endpoint, "panic", p)
				if rec.status == 0 {
					writeJSONError(rec, http.StatusInternalServerError, "server_error", "")
				}
			}
			d := time.Since(start)
			observer.Observe(d.Seconds())
			s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(rec.status)).Inc()
			s.log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", d)
			endSpan(span, r, rec)
		}()
		h.ServeHTTP(rec, r)
	})
}
