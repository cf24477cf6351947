package authz

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"
)

// idTokenSigner is fosite's jwt.Signer on Postern's keys: ID tokens (and
// back-channel logout tokens) are signed by the active key with its kid,
// and tokens are verified against every published key, so an ID token
// signed before a rotation still verifies (as an id_token_hint, say) for
// as long as its key is in the JWKS overlap. fosite's own DefaultSigner is
// not used: it wants the private key, which never leaves package keys.
type idTokenSigner struct {
	keys KeySet
	now  func() time.Time
}

var _ jwt.Signer = idTokenSigner{}

func (s idTokenSigner) Generate(_ context.Context, claims jwt.MapClaims, _ jwt.Mapper) (string, string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", "", fmt.Errorf("id token claims: %w", err)
	}
	tok, err := s.keys.Sign(payload, map[jose.HeaderKey]any{"typ": "JWT"})
	if err != nil {
		return "", "", fmt.Errorf("sign id token: %w", err)
	}
	return tok, tok[strings.LastIndexByte(tok, '.')+1:], nil
}

// verify checks that the token is an ID token (typ JWT, as Generate
// writes it) and its signature, with the published key it names.
func (s idTokenSigner) verify(token string) ([]byte, jose.Header, error) {
	jws, err := jose.ParseSignedCompact(token, jwtAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, jose.Header{}, errors.New("not a compact JWS")
	}
	h := jws.Signatures[0].Header
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok && typ != "JWT" {
		// The same keys sign JWT access tokens (at+jwt) and logout tokens
		// (logout+jwt): neither may pass for an ID token, as an
		// id_token_hint that signs its user out without asking, say.
		return nil, h, fmt.Errorf("a %v token, not an ID token", typ)
	}
	key, ok := s.keys.PublicKey(h.KeyID)
	if !ok {
		return nil, h, errors.New("signed by a key this server does not publish")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, h, errors.New("signature does not verify")
	}
	return payload, h, nil
}

// Decode verifies the signature and returns the claims; an expired token
// comes back with its claims and a ValidationErrorExpired, which is how
// fosite accepts expired ID tokens as id_token_hint (OIDC Core §3.1.2.1).
func (s idTokenSigner) Decode(_ context.Context, token string) (*jwt.Token, error) {
	payload, h, err := s.verify(token)
	if err != nil {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorSignatureInvalid, Inner: err}
	}
	// A plain map: jwt.MapClaims unmarshals with a value receiver, into a
	// copy, and would leave a nil map empty.
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, &jwt.ValidationError{Errors: jwt.ValidationErrorMalformed, Inner: err}
	}
	t := &jwt.Token{Header: map[string]any{"alg": h.Algorithm, "kid": h.KeyID}, Claims: claims}
	if exp, ok := claims["exp"].(float64); !ok || !s.now().Before(time.Unix(int64(exp), 0)) {
		return t, &jwt.ValidationError{Errors: jwt.ValidationErrorExpired, Inner: errors.New("token is expired")}
	}
	return t, nil
}

func (s idTokenSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// Hash is SHA-256: the hash of both ES256 and RS256.
func (s idTokenSigner) Hash(_ context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	return h[:], nil
}

func (s idTokenSigner) GetSignature(_ context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWS")
	}
	return parts[2], nil
}

func (s idTokenSigner) GetSigningMethodLength(context.Context) int { return sha256.Size }

// idTokenClaims reads a verified ID token this server issued, for the
// end-session endpoint.
type idTokenClaims struct {
	Subject  string
	Audience []string
	SID      string
}

func (s idTokenSigner) readHint(ctx context.Context, token string) (idTokenClaims, error) {
	t, err := s.Decode(ctx, token)
	var ve *jwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired)) {
		return idTokenClaims{}, err
	}
	var c idTokenClaims
	c.Subject, _ = t.Claims["sub"].(string)
	c.SID, _ = t.Claims["sid"].(string)
	switch aud := t.Claims["aud"].(type) {
	case string:
		c.Audience = []string{aud}
	case []any:
		for _, a := range aud {
			if s, ok := a.(string); ok {
				c.Audience = append(c.Audience, s)
			}
		}
	}
	if c.Subject == "" {
		return c, errors.New("the ID token has no subject")
	}
	return c, nil
}

// sidOf is the sid claim for a login session: a digest of its ID, so the
// session's own name (which the store keeps as revoked after a sign-out)
// never leaves the server, yet every ID token and logout token of one
// session carries the same sid.
func sidOf(sessionID string) string {
	h := sha256.Sum256([]byte("postern sid\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}
