package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"slices"
	"testing"
	"time"
)

// benchSetup is one backend with two fronts: a bare httputil.ReverseProxy
// and the gateway with a warm token cache, so the difference between the
// two is the gateway's own work (routing, token check, rate limit, header
// rewriting, metrics).
type benchSetup struct {
	bare, gw *httptest.Server
	client   *http.Client
	token    string
}

func newBenchSetup(b *testing.B) *benchSetup {
	b.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(backend.Close)
	f := newFakeAuth(b)

	target := mustURL(backend.URL)
	bareProxy := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256},
	}
	bare := httptest.NewServer(bareProxy)
	b.Cleanup(bare.Close)

	cfg := f.config(backend.URL)
	cfg.Tiers = map[string]Tier{"gold": {Requests: 1 << 30, Per: time.Second}}
	cfg.Routes = []Route{{PathPrefix: "/search/v1", Upstream: target, StripPrefix: true, Scopes: []string{"read"}, Tier: "gold"}}
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(g.Close)
	gw := httptest.NewServer(g)
	b.Cleanup(gw.Close)

	s := &benchSetup{bare: bare, gw: gw, token: "ory_at_benchmarktoken0123456789.abcdefghijklmnopqrstuvwxyz0123456789",
		client: &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256}}}
	f.ccToken(s.token, "billing", "read write", time.Now().Add(time.Hour))
	if status := s.get(b, s.gw.URL); status != 200 { // warms the cache
		b.Fatalf("gateway answered %d", status)
	}
	return s
}

func (s *benchSetup) get(b *testing.B, base string) int {
	req, _ := http.NewRequest(http.MethodGet, base+"/search/v1/query?q=x", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// BenchmarkGatewayLatency alternates one request through the bare proxy
// and one through the gateway, so both see the same machine state, and
// reports the percentiles of each and the p50/p99 the gateway adds.
func BenchmarkGatewayLatency(b *testing.B) {
	s := newBenchSetup(b)
	bare := make([]time.Duration, 0, b.N)
	gw := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		s.get(b, s.bare.URL)
		t1 := time.Now()
		s.get(b, s.gw.URL)
		t2 := time.Now()
		bare = append(bare, t1.Sub(t0))
		gw = append(gw, t2.Sub(t1))
	}
	b.StopTimer()
	slices.Sort(bare)
	slices.Sort(gw)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(float64(len(d)-1)*p)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(bare, .5), "bare-p50-µs")
	b.ReportMetric(pct(gw, .5), "gw-p50-µs")
	b.ReportMetric(pct(gw, .5)-pct(bare, .5), "added-p50-µs")
	b.ReportMetric(pct(bare, .99), "bare-p99-µs")
	b.ReportMetric(pct(gw, .99), "gw-p99-µs")
	b.ReportMetric(pct(gw, .99)-pct(bare, .99), "added-p99-µs")
}

// BenchmarkGatewayThroughput: requests per second under parallel load,
// bare proxy and gateway in one run.
func BenchmarkGatewayThroughput(b *testing.B) {
	s := newBenchSetup(b)
	for _, front := range []struct{ name, url string }{{"bare", s.bare.URL}, {"gateway", s.gw.URL}} {
		b.Run(front.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if s.get(b, front.url) != 200 {
						b.Error("non-200 answer")
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
