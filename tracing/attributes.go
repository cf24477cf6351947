package tracing

import "go.opentelemetry.io/otel/attribute"

// Span attribute keys the server and the gateway share, so that a trace
// through both names the same facts alike. Values are never a token, a
// secret, a code or a password.
const (
	AttrMethod   = attribute.Key("http.request.method")
	AttrStatus   = attribute.Key("http.response.status_code")
	AttrClientID = attribute.Key("oauth.client_id")
	AttrOutcome  = attribute.Key("oauth.outcome")
	AttrActive   = attribute.Key("oauth.introspection.active")
)
