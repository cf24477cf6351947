package authz

import (
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
}

// newMetrics registers on a registry owned by the server, so two servers in
// one process (tests) never collide.
func newMetrics(reg *prometheus.Registry) *metrics {
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
	}
	reg.MustRegister(m.requests, m.latency, m.issued,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

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
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panic", "endpoint", endpoint, "panic", p)
				if rec.status == 0 {
					writeJSONError(rec, http.StatusInternalServerError, "server_error", "")
				}
			}
			d := time.Since(start)
			observer.Observe(d.Seconds())
			s.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(rec.status)).Inc()
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", d)
		}()
		h.ServeHTTP(rec, r)
	})
}
