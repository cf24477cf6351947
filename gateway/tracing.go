package gateway

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/tracing"
)

// One span per request (named after the route), with the route, status,
// client ID and outcome (the error code the gateway answered, or ok);
// child spans for the calls to the authorization server (introspection,
// JWKS), which carry the trace on in traceparent. The proxied request
// carries it to the upstream. Without a tracer none of this runs, and a
// caller's traceparent reaches the upstream untouched, as any header.

// attrRoute is the gateway's own span attribute; the ones the server
// shares are tracing's.
const attrRoute = attribute.Key("gateway.route")

func (g *Gateway) startSpan(r *http.Request) (*http.Request, trace.Span) {
	if g.tracer == nil {
		return r, nil
	}
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := g.tracer.Start(ctx, "gateway", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(tracing.AttrMethod.String(r.Method)))
	return r.WithContext(ctx), span
}

func endSpan(span trace.Span, label, clientID string, status int, outcome string) {
	if span == nil {
		return
	}
	if label != "" {
		span.SetName(label)
	}
	switch {
	case outcome != "":
	case status < 400:
		outcome = "ok"
	default:
		outcome = http.StatusText(status)
	}
	attrs := []attribute.KeyValue{attrRoute.String(label), tracing.AttrStatus.Int(status), tracing.AttrOutcome.String(outcome)}
	if clientID != "" {
		attrs = append(attrs, tracing.AttrClientID.String(clientID))
	}
	if status >= 500 {
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attrs...)
	span.End()
}

// noteOutcome tells the request's recorder which error code answered it.
func noteOutcome(w http.ResponseWriter, code string) {
	if rec, ok := w.(*statusRecorder); ok && rec.outcome == "" {
		rec.outcome = code
	}
}

// startCall opens the span of a call to the authorization server; with a
// nil tracer it does nothing and returns a nil span (see endCall).
func startCall(ctx context.Context, t trace.Tracer, name string) (context.Context, trace.Span) {
	if t == nil {
		return ctx, nil
	}
	return t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
}

func endCall(span trace.Span, err error, attrs ...attribute.KeyValue) {
	if span == nil {
		return
	}
	if err != nil && !errors.Is(err, ErrInvalidToken) {
		span.SetStatus(codes.Error, "call failed")
	}
	span.SetAttributes(attrs...)
	span.End()
}

// propagating carries the caller's trace to the authorization server: the
// span in the request's context becomes the parent of the server's.
type propagating struct{ next http.RoundTripper }

func (p propagating) RoundTrip(r *http.Request) (*http.Response, error) {
	if trace.SpanContextFromContext(r.Context()).IsValid() {
		r = r.Clone(r.Context()) // a RoundTripper must not modify its request
		tracing.Propagator.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	}
	return p.next.RoundTrip(r)
}

// withPropagation returns a copy of c whose requests carry traceparent.
func withPropagation(c *http.Client) *http.Client {
	cp := *c
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cp.Transport = propagating{next: next}
	return &cp
}
