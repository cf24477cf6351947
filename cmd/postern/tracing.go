package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/tracing"
)

// startTracing starts the span exporter of cfg (nil: tracing off, a nil
// provider and nothing to stop). stop flushes the spans still buffered,
// bounded in time: a collector that is down must not hold up the exit.
func startTracing(cfg *tracing.Config, log *slog.Logger) (tp trace.TracerProvider, stop func(), err error) {
	p, err := tracing.Start(cfg, tracing.Options{})
	if err != nil || p == nil {
		return nil, func() {}, err
	}
	log.Info("tracing on: exporting spans over OTLP/HTTP", "endpoint", cfg.Endpoint, "sample_ratio", cfg.SampleRatio, "service_name", cfg.ServiceName)
	return p.TracerProvider(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			log.Warn("spans not exported at shutdown", "error", err)
		}
	}, nil
}

// withTraceIDs makes log lines written with a request's context carry its
// trace and span IDs; without tracing the logger is left as it is.
func withTraceIDs(log *slog.Logger, tp trace.TracerProvider) *slog.Logger {
	if tp == nil {
		return log
	}
	return slog.New(tracing.LogHandler(log.Handler()))
}
