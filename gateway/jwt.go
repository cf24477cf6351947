package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.opentelemetry.io/otel/trace"
)

// jwtAlgs is the allow-list: the algorithms Postern signs with. "none" and
// the HMAC family are refused before any key is looked at, so a public key
// can never be used as an HMAC secret.
var jwtAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// looksLikeAccessJWT reports whether token is a JWS whose header declares
// an RFC 9068 access token. Only the header is decoded here; nothing is
// trusted until the signature is checked. Other tokens (opaque, or JWTs of
// another type such as ID tokens) go to introspection, where the server
// decides.
func looksLikeAccessJWT(token string) bool {
	if strings.Count(token, ".") != 2 {
		return false
	}
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	return isAccessTokenType(h.Typ)
}

// isAccessTokenType accepts "at+jwt" and its full media type form
// (RFC 9068 §2.1, RFC 7515 §4.1.9), case-insensitively.
func isAccessTokenType(typ string) bool {
	t := strings.ToLower(typ)
	return t == "at+jwt" || t == "application/at+jwt"
}

// jwtVerifier checks RFC 9068 access tokens locally.
type jwtVerifier struct {
	issuer       string
	audience     string
	keys         *keySet
	claimHeaders map[string]string
	now          func() time.Time
}

// verify returns the identity in a valid token, ErrInvalidToken, or
// ErrUnavailable when the keys cannot be fetched.
func (v *jwtVerifier) verify(ctx context.Context, token string) (*Identity, error) {
	tok, err := jwt.ParseSigned(token, jwtAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, ErrInvalidToken
	}
	h := tok.Headers[0]
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !isAccessTokenType(typ) || h.KeyID == "" {
		return nil, ErrInvalidToken
	}
	key, err := v.keys.lookup(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, ErrInvalidToken
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(key.Key, &std, &all); err != nil {
		return nil, ErrInvalidToken
	}
	exp := jwt.Expected{Issuer: v.issuer, Time: v.now()}
	if v.audience != "" {
		exp.AnyAudience = jwt.Audience{v.audience}
	}
	// RFC 9068 §2.2: exp is required; go-jose only checks it when present.
	if std.Expiry == nil || std.Issuer == "" || std.ValidateWithLeeway(exp, jwtLeeway) != nil {
		return nil, ErrInvalidToken
	}
	clientID, _ := all["client_id"].(string)
	scope, _ := all["scope"].(string)
	if clientID == "" || !validHeaderValue(clientID) || !validHeaderValue(scope) || !validHeaderValue(std.Subject) {
		return nil, ErrInvalidToken
	}
	// RFC 9068 §2.2: with no resource owner the subject is the client
	// itself, and then there is no user to name.
	sub := std.Subject
	if sub == clientID {
		sub = ""
	}
	id := newIdentity(sub, clientID, scope, std.Expiry.Time())
	id.Claims = pickClaims(all, v.claimHeaders)
	id.GrantID, _ = all["grant_id"].(string)
	id.Tier, _ = all["tier"].(string)
	if std.IssuedAt != nil {
		id.IssuedAt = std.IssuedAt.Time()
	}
	return id, nil
}

// keySet is the server's JWKS as last fetched.
type keySet struct {
	disco      *discovery
	client     *http.Client
	maxAge     time.Duration
	minRefetch time.Duration // <0: unlimited
	now        func() time.Time

	flightMu  chan struct{} // one fetch at a time; others wait for its result
	keys      map[string]jose.JSONWebKey
	fetchedAt time.Time
	triedAt   time.Time
	tracer    trace.Tracer // nil: no spans
}

func newKeySet(d *discovery, client *http.Client, maxAge, minRefetch time.Duration, now func() time.Time) *keySet {
	return &keySet{disco: d, client: client, maxAge: maxAge, minRefetch: minRefetch, now: now, flightMu: make(chan struct{}, 1)}
}

// lookup finds a signing key by kid, fetching the JWKS when it has never
// been fetched, is older than maxAge, or lacks kid (a rotation), the last
// at most once per minRefetch.
func (ks *keySet) lookup(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	select {
	case ks.flightMu <- struct{}{}:
	case <-ctx.Done():
		return jose.JSONWebKey{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	defer func() { <-ks.flightMu }()

	now := ks.now()
	key, known := ks.keys[kid]
	stale := now.Sub(ks.fetchedAt) >= ks.maxAge
	if known && !stale {
		return key, nil
	}
	if ks.minRefetch >= 0 && !ks.triedAt.IsZero() && now.Sub(ks.triedAt) < ks.minRefetch {
		// Too soon to ask again.
		switch {
		case known:
			return key, nil
		case ks.keys == nil:
			return jose.JSONWebKey{}, fmt.Errorf("%w: jwks fetch failed recently", ErrUnavailable)
		}
		return jose.JSONWebKey{}, ErrInvalidToken
	}
	ks.triedAt = now
	if err := ks.refresh(ctx); err != nil {
		if known {
			// Serve from the stale set rather than fail every JWT while
			// the server is briefly unreachable.
			return key, nil
		}
		return jose.JSONWebKey{}, err
	}
	if key, ok := ks.keys[kid]; ok {
		return key, nil
	}
	return jose.JSONWebKey{}, ErrInvalidToken
}

// refresh fetches the JWKS; the caller holds flightMu.
func (ks *keySet) refresh(ctx context.Context) (err error) {
	ctx, span := startCall(ctx, ks.tracer, "gateway.jwks_fetch")
	defer func() { endCall(span, err) }()
	ep, err := ks.disco.get(ctx)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), authServerTimeout)
	defer cancel()
	var set jose.JSONWebKeySet
	if err := getJSON(fctx, ks.client, ep.JWKS, &set); err != nil {
		return fmt.Errorf("%w: jwks: %w", ErrUnavailable, err)
	}
	keys := map[string]jose.JSONWebKey{}
	for _, k := range set.Keys {
		if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") || !k.Valid() {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != string(jose.ES256) && k.Algorithm != string(jose.RS256) {
			continue
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: jwks at %s has no usable signing keys", ErrUnavailable, ep.JWKS)
	}
	ks.keys, ks.fetchedAt = keys, ks.now()
	return nil
}
