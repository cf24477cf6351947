package authz

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/passhash"
)

// Servers that replace one another (configuration reload) share a registry:
// the second reuses the first's collectors, so counters carry on.
func TestMetricsSharedRegistryCarriesOn(t *testing.T) {
	reg := prometheus.NewRegistry()
	newServer := func(reg *prometheus.Registry) *Server {
		t.Helper()
		s, err := New(Config{Issuer: "https://auth.example.com", HMACSecret: make([]byte, 32), SecretHasher: clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
			CookieKey: make([]byte, 64), Metrics: reg}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	get := func(s *Server, path string) string {
		rec := httptest.NewRecorder()
		h := http.Handler(s)
		if path == "/metrics" {
			h = s.MetricsHandler() // not on the public router
		}
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Body.String()
	}
	const line = `postern_http_requests_total{code="404",endpoint="not_found"} `
	first := newServer(reg)
	get(first, "/nowhere")
	get(first, "/nowhere")
	second := newServer(reg)
	get(second, "/nowhere")
	if body := get(second, "/metrics"); !strings.Contains(body, line+"3\n") {
		t.Errorf("after two servers on one registry, want %s3:\n%s", line, body)
	}
	if body := get(first, "/metrics"); !strings.Contains(body, line+"3\n") {
		t.Error("the first server's /metrics does not show the same counters")
	}
	rec := httptest.NewRecorder()
	first.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/metrics on the public router: %d, want 404", rec.Code)
	}
	// Without a registry each server has its own, as before.
	own := newServer(nil)
	get(own, "/nowhere")
	if body := get(own, "/metrics"); !strings.Contains(body, line+"1\n") || !strings.Contains(body, "go_goroutines ") {
		t.Errorf("a server with its own registry:\n%s", body)
	}
}

// A collector of the same name but another shape is an error, not a panic.
func TestMetricsConflictingCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "postern_http_requests_total", Help: "other"}, []string{"path"}))
	_, err := New(Config{Issuer: "https://auth.example.com", HMACSecret: make([]byte, 32), SecretHasher: clients.NewSecretHasher(passhash.NewLimiter(0, nil)),
		CookieKey: make([]byte, 64), Metrics: reg}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "authz: metrics:") {
		t.Errorf("New = %v, want a metrics error", err)
	}
}
