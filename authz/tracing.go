package authz

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/tracing"
)

// One span per request, named after the endpoint as the metrics label it
// (token, authorize, ...). Its attributes say who asked for what and how
// it ended: method, status, grant type, client ID and outcome (the OAuth
// error code, or ok). Nothing else of the request is copied: a form can
// hold a code, a password, a secret or an assertion, a header a token or a
// cookie. Handlers add their own facts through trace.SpanFromContext
// (introspection: active or not); store calls, argon2 checks and the rest
// are child spans made by their own parts.

// attrGrantType is the server's own span attribute; the ones the gateway
// shares are tracing's.
const attrGrantType = attribute.Key("oauth.grant_type")

// startSpan opens the request's span under the caller's traceparent, if
// it sent one. Without a tracer it returns r unchanged and a nil span.
func (s *Server) startSpan(endpoint string, r *http.Request) (*http.Request, trace.Span) {
	if s.tracer == nil {
		return r, nil
	}
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, endpoint, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(tracing.AttrMethod.String(r.Method)))
	return r.WithContext(ctx), span
}

// endSpan records how the request ended. The grant type and client ID are
// read once the handler has parsed the form; the client ID is the one
// presented (as the client-authentication log names it), or the one in
// the query of a browser request.
func endSpan(span trace.Span, r *http.Request, rec *statusRecorder) {
	if span == nil {
		return
	}
	attrs := []attribute.KeyValue{tracing.AttrStatus.Int(rec.status)}
	if g := r.PostForm.Get("grant_type"); g != "" {
		attrs = append(attrs, attrGrantType.String(g))
	}
	client := presentedClientID(r)
	if client == "" {
		client = r.URL.Query().Get("client_id")
	}
	if client != "" {
		attrs = append(attrs, tracing.AttrClientID.String(client))
	}
	outcome := rec.outcome
	switch {
	case outcome != "":
	case rec.status < 400:
		outcome = "ok"
	default:
		outcome = http.StatusText(rec.status)
	}
	attrs = append(attrs, tracing.AttrOutcome.String(outcome))
	if rec.status >= 500 {
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attrs...)
	span.End()
}

// noteOutcome tells the request's recorder which OAuth error answered it.
// Handlers write through the recorder instrument gave them (CORS passes it
// on as is); any other writer (a test's) just has no span to tell.
func noteOutcome(w http.ResponseWriter, code string) {
	if rec, ok := w.(*statusRecorder); ok && rec.outcome == "" {
		rec.outcome = code
	}
}

// setSpanAttributes adds facts a handler knows to the request's span.
func setSpanAttributes(ctx context.Context, kv ...attribute.KeyValue) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(kv...)
	}
}
