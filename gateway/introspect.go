package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/tracing"
)

// introspector asks the server about an opaque token (RFC 7662).
type introspector struct {
	disco        *discovery
	client       *http.Client
	clientID     string
	clientSecret string
	issuer       string
	claimHeaders map[string]string
	tracer       trace.Tracer // nil: no spans
}

// ErrCredentials means the authorization server refused the gateway's own
// client credentials (client_id, client_secret) at its introspection
// endpoint: a configuration error that no retry fixes.
var ErrCredentials = errors.New("the authorization server refused the gateway's client credentials")

// credentialsProbe is the token CheckCredentials introspects: no server
// issues one like it, so an answer can only be "inactive" or a refusal.
const credentialsProbe = "postern-gateway-credentials-check"

// introspect returns the identity of an active access token, or
// ErrInvalidToken, ErrCredentials when the server refuses the gateway's
// credentials, or ErrUnavailable when the server cannot answer.
func (in *introspector) introspect(ctx context.Context, token string) (id *Identity, err error) {
	ctx, span := startCall(ctx, in.tracer, "gateway.introspect")
	defer func() {
		if span != nil {
			endCall(span, err, tracing.AttrActive.Bool(err == nil))
		}
	}()
	ep, err := in.disco.get(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, authServerTimeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.Introspection, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: introspection request: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: Basic credentials are form-encoded first.
	req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.clientSecret))
	resp, err := in.client.Do(req)
	if err != nil {
		// The URL is the endpoint, never the token (which is in the body).
		return nil, fmt.Errorf("%w: introspection: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAuthResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: introspection: read response: %w", ErrUnavailable, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The gateway's own credentials are wrong: a configuration error,
		// never the caller's token being bad, and no outage either.
		return nil, fmt.Errorf("%w (client_id %s): introspection answered 401", ErrCredentials, in.clientID)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: introspection: status %d", ErrUnavailable, resp.StatusCode)
	}
	return in.parse(body)
}

// parse reads an RFC 7662 §2.2 response. Anything but a clearly active
// access token from our issuer is ErrInvalidToken.
func (in *introspector) parse(body []byte) (*Identity, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: introspection response is not JSON: %w", ErrUnavailable, err)
	}
	if active, _ := m["active"].(bool); !active {
		return nil, ErrInvalidToken
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	// A refresh token is active too, but it is not a bearer credential
	// for APIs (RFC 6749 §1.5).
	switch tt := strings.ToLower(str("token_type")); tt {
	case "", "bearer", "access_token":
	default:
		return nil, ErrInvalidToken
	}
	if iss := str("iss"); iss != "" && iss != in.issuer {
		return nil, ErrInvalidToken
	}
	clientID := str("client_id")
	if clientID == "" {
		return nil, ErrInvalidToken
	}
	var exp time.Time
	if n, ok := m["exp"].(json.Number); ok {
		secs, err := n.Int64()
		if err != nil {
			return nil, ErrInvalidToken
		}
		exp = time.Unix(secs, 0)
	}
	sub := str("sub")
	if !validHeaderValue(sub) || !validHeaderValue(clientID) || !validHeaderValue(str("scope")) {
		return nil, ErrInvalidToken
	}
	id := newIdentity(sub, clientID, str("scope"), exp)
	id.Claims = pickClaims(m, in.claimHeaders)
	id.GrantID = str("grant_id")
	id.Tier = str("tier")
	if n, ok := m["iat"].(json.Number); ok {
		if secs, err := n.Int64(); err == nil {
			id.IssuedAt = time.Unix(secs, 0)
		}
	}
	return id, nil
}
