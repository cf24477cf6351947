package authz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
)

// KeySet is what authz needs from the signing keys.
type KeySet interface {
	// Sign returns a compact JWS signed by the active key, kid set.
	Sign(payload []byte, extra map[jose.HeaderKey]any) (string, error)
	// PublicKey finds a published key by kid.
	PublicKey(kid string) (jose.JSONWebKey, bool)
	// JWKSJSON is the published key set, ready to serve.
	JWKSJSON() []byte
}

// jwtStrategy issues RFC 9068 JWT access tokens and leaves refresh tokens
// and codes to the opaque HMAC strategy. fosite's own JWT strategy is not
// used: it omits the at+jwt type and client_id claim RFC 9068 requires.
// Every JWT is also stored under its signature, so revocation and
// introspection work exactly as for opaque tokens.
type jwtStrategy struct {
	oauth2.CoreStrategy
	keys   KeySet
	issuer string
	now    func() time.Time
}

var jwtAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// AccessTokenSignature is the JWS signature part, the token's storage key.
func (j *jwtStrategy) AccessTokenSignature(_ context.Context, token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || strings.Count(token, ".") != 2 {
		return ""
	}
	return token[i+1:]
}

func (j *jwtStrategy) GenerateAccessToken(_ context.Context, req fosite.Requester) (string, string, error) {
	sess, _ := req.GetSession().(*Session)
	if sess == nil {
		return "", "", fmt.Errorf("jwt access token: session is %T, want *Session", req.GetSession())
	}
	now := j.now().UTC()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		return "", "", fmt.Errorf("jwt access token: no expiry set")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", "", fmt.Errorf("jwt access token id: %w", err)
	}
	// RFC 9068 §2.2: without a resource owner the subject is the client.
	sub := sess.Subject
	if sub == "" {
		sub = req.GetClient().GetID()
	}
	aud := []string(req.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{j.issuer}
	}
	claims := map[string]any{}
	for k, v := range sess.Claims {
		claims[k] = v
	}
	for k, v := range map[string]any{
		"iss":       j.issuer,
		"sub":       sub,
		"aud":       aud,
		"exp":       exp.Unix(),
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"jti":       base64.RawURLEncoding.EncodeToString(jti[:]),
		"client_id": req.GetClient().GetID(),
		// The grant, as the revocation feed names it (a private claim: a
		// gateway validating locally drops the token when its grant is
		// revoked).
		"grant_id": req.GetID(),
	} {
		claims[k] = v
	}
	if scopes := req.GetGrantedScopes(); len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	// Fixed at issue, like the scope: a gateway validating locally cannot
	// ask again. A user claim of that name must not pass for it: the
	// gateway rate-limits by it.
	delete(claims, claimTier)
	if tier := clientTier(req.GetClient()); tier != "" {
		claims[claimTier] = tier
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", "", fmt.Errorf("jwt access token claims: %w", err)
	}
	tok, err := j.keys.Sign(payload, map[jose.HeaderKey]any{"typ": "at+jwt"})
	if err != nil {
		return "", "", fmt.Errorf("sign jwt access token: %w", err)
	}
	return tok, j.AccessTokenSignature(context.Background(), tok), nil
}

// ValidateAccessToken checks the signature against the published keys and the
// expiry; the caller has already found the token in the store.
func (j *jwtStrategy) ValidateAccessToken(_ context.Context, _ fosite.Requester, token string) error {
	jws, err := jose.ParseSignedCompact(token, jwtAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return fosite.ErrInvalidTokenFormat
	}
	key, ok := j.keys.PublicKey(jws.Signatures[0].Header.KeyID)
	if !ok {
		return fosite.ErrTokenSignatureMismatch
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return fosite.ErrTokenSignatureMismatch
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return fosite.ErrInvalidTokenFormat
	}
	if !j.now().Before(time.Unix(c.Exp, 0)) {
		return fosite.ErrTokenExpired
	}
	return nil
}
