package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		raw, err string
		want     *Config
	}{
		{raw: ``, want: nil},
		{raw: `null`, want: nil},
		{raw: `{"otlp_endpoint": "http://127.0.0.1:4318"}`, want: &Config{Endpoint: "http://127.0.0.1:4318", SampleRatio: 1, ServiceName: "svc"}},
		{raw: `{"otlp_endpoint": "https://c.example/otlp", "sample_ratio": 0, "service_name": "edge"}`, want: &Config{Endpoint: "https://c.example/otlp", SampleRatio: 0, ServiceName: "edge"}},
		{raw: `{}`, err: "tracing.otlp_endpoint: required"},
		{raw: `{"sample_ratio": 0.5}`, err: "tracing.otlp_endpoint: required"},
		{raw: `{"otlp_endpoint": "127.0.0.1:4318"}`, err: "tracing.otlp_endpoint: expected an http:// or https:// URL"},
		{raw: `{"otlp_endpoint": "grpc://127.0.0.1:4317"}`, err: "tracing.otlp_endpoint: expected an http:// or https:// URL"},
		{raw: `{"otlp_endpoint": "http://u:p@127.0.0.1:4318"}`, err: "tracing.otlp_endpoint: expected a base URL without credentials"},
		{raw: `{"otlp_endpoint": "http://127.0.0.1:4318", "sample_ratio": 1.5}`, err: "tracing.sample_ratio: must lie in [0, 1]"},
		{raw: `{"otlp_endpoint": "http://127.0.0.1:4318", "sample_ratio": -0.1}`, err: "tracing.sample_ratio: must lie in [0, 1]"},
		{raw: `{"otlp_endpoint": "http://127.0.0.1:4318", "sampler": "always"}`, err: "tracing"},
	} {
		got, err := ParseConfig("tracing", []byte(tc.raw), "svc")
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one containing %q", tc.raw, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.raw, err)
		case (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want):
			t.Errorf("%s: got %+v, want %+v", tc.raw, got, tc.want)
		}
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":   "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":  "http://127.0.0.1:4318/v1/traces",
		"https://c.example/otlp/": "https://c.example/otlp/v1/traces",
	} {
		if got := tracesURL(in); got != want {
			t.Errorf("tracesURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A line logged with a span's context names its trace and span; one
// without carries neither.
func TestLogLineCarriesTraceID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("part", "test")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "request")
	log.InfoContext(ctx, "client authentication failed", "client_id", "web")
	span.End()
	log.Info("no span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	sc := span.SpanContext()
	if want := `"trace_id":"` + sc.TraceID().String() + `","span_id":"` + sc.SpanID().String() + `"`; !strings.Contains(lines[0], want) {
		t.Errorf("line %s lacks %s", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("line without a span names a trace: %s", lines[1])
	}
}
