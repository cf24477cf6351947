package authz

import (
	"context"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

// Token prefixes make Postern's credentials recognisable to people and to
// secret scanners (a leaked "pst_rt_…" in a repository is unmistakable).
const (
	prefixAccess  = "pst_at_"
	prefixRefresh = "pst_rt_"
	prefixCode    = "pst_ac_"
)

// prefixedStrategy is fosite's HMAC strategy with Postern's prefixes in
// place of fosite's "ory_" ones; the signature that keys the store is the
// same either way.
type prefixedStrategy struct {
	*oauth2.HMACSHAStrategyUnPrefixed
}

var _ oauth2.CoreStrategy = prefixedStrategy{}

func newPrefixedStrategy(fc *fosite.Config) prefixedStrategy {
	return prefixedStrategy{oauth2.NewHMACSHAStrategyUnPrefixed(&hmac.HMACStrategy{Config: fc}, fc)}
}

func withPrefix(p, token string, sig string, err error) (string, string, error) {
	if err != nil || token == "" {
		return token, sig, err
	}
	return p + token, sig, nil
}

func (s prefixedStrategy) AccessTokenSignature(ctx context.Context, t string) string {
	rest, ok := strings.CutPrefix(t, prefixAccess)
	if !ok {
		// Not this kind of token: no store lookup for it (a refresh token
		// offered as an access token, or garbage a gateway forwards).
		return ""
	}
	return s.HMACSHAStrategyUnPrefixed.AccessTokenSignature(ctx, rest)
}

func (s prefixedStrategy) RefreshTokenSignature(ctx context.Context, t string) string {
	rest, ok := strings.CutPrefix(t, prefixRefresh)
	if !ok {
		// Not this kind of token: no store lookup for it (a refresh token
		// offered as an access token, or garbage a gateway forwards).
		return ""
	}
	return s.HMACSHAStrategyUnPrefixed.RefreshTokenSignature(ctx, rest)
}

func (s prefixedStrategy) AuthorizeCodeSignature(ctx context.Context, t string) string {
	rest, ok := strings.CutPrefix(t, prefixCode)
	if !ok {
		// Not this kind of token: no store lookup for it (a refresh token
		// offered as an access token, or garbage a gateway forwards).
		return ""
	}
	return s.HMACSHAStrategyUnPrefixed.AuthorizeCodeSignature(ctx, rest)
}

func (s prefixedStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, sig, err := s.HMACSHAStrategyUnPrefixed.GenerateAccessToken(ctx, r)
	return withPrefix(prefixAccess, t, sig, err)
}

func (s prefixedStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, sig, err := s.HMACSHAStrategyUnPrefixed.GenerateRefreshToken(ctx, r)
	return withPrefix(prefixRefresh, t, sig, err)
}

func (s prefixedStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, sig, err := s.HMACSHAStrategyUnPrefixed.GenerateAuthorizeCode(ctx, r)
	return withPrefix(prefixCode, t, sig, err)
}

func (s prefixedStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, t string) error {
	return s.HMACSHAStrategyUnPrefixed.ValidateAccessToken(ctx, r, strings.TrimPrefix(t, prefixAccess))
}

func (s prefixedStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, t string) error {
	return s.HMACSHAStrategyUnPrefixed.ValidateRefreshToken(ctx, r, strings.TrimPrefix(t, prefixRefresh))
}

func (s prefixedStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, t string) error {
	return s.HMACSHAStrategyUnPrefixed.ValidateAuthorizeCode(ctx, r, strings.TrimPrefix(t, prefixCode))
}
