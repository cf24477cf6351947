package authz

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/postern-auth/postern/tracing"
)

// BenchmarkCCTokenHTTPTraced is BenchmarkCCTokenHTTP with tracing on,
// every request sampled, spans exported over OTLP/HTTP to a local
// receiver that reads and drops them: the cost of tracing, compared with
// the benchmark without.
func BenchmarkCCTokenHTTPTraced(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	p, err := tracing.Start(&tracing.Config{Endpoint: sink.URL, SampleRatio: 1, ServiceName: "bench"}, tracing.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Shutdown(b.Context()) }()
	f := newFixtureTraced(b, FormatOpaque, p.TracerProvider())
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	runHTTPLoad(b, ts.URL, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+pathToken, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("billing", f.secret)
		return req
	})
}
