package tracing

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Propagator reads and writes W3C traceparent / tracestate. It holds no
// state, so one value serves the whole process.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Provider is the process's tracer provider and what stops it.
type Provider struct {
	sdk *sdktrace.TracerProvider
}

// Options tune the exporter; the zero value is right for production.
type Options struct {
	// BatchTimeout is the longest a finished span waits before export;
	// zero means the SDK's default (5s).
	BatchTimeout time.Duration
}

// Start builds the tracer provider for cfg. For a nil cfg it returns nil:
// every part treats a nil trace.TracerProvider as "tracing off" and does
// no tracing work at all. Nothing is sent until the first span ends, so a
// collector that is down does not stop the process from starting.
func Start(cfg *Config, opt Options) (*Provider, error) {
	if cfg == nil {
		return nil, nil
	}
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(tracesURL(cfg.Endpoint)))
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if opt.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(opt.BatchTimeout))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, bopts...),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))),
	)
	return &Provider{sdk: tp}, nil
}

// Shutdown exports the spans still buffered and stops the provider; call
// it once the servers have stopped, so the last requests' spans are sent.
// A nil Provider has nothing to do.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush spans: %w", err)
	}
	return nil
}

// TracerProvider is p as the parts take it: nil when p is nil (tracing
// off), never a typed nil inside an interface.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return nil
	}
	return p.sdk
}

// tracesURL appends the OTLP traces path to the base URL, as the OTLP
// specification does for OTEL_EXPORTER_OTLP_ENDPOINT.
func tracesURL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base // validated already
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String()
}
