package authz

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
)

// newProvider is the one place fosite is composed. Every grant Postern
// serves is a fosite handler; Postern's own code only wraps their HTTP
// edges where fosite's answer differs from the RFCs.
func newProvider(cfg Config, store *fositeStore, hmacSecret []byte, keys KeySet) (fosite.OAuth2Provider, *fosite.Config) {
	fc := &fosite.Config{
		AccessTokenLifespan:   cfg.Lifetimes.AccessToken,
		RefreshTokenLifespan:  cfg.Lifetimes.RefreshToken,
		AuthorizeCodeLifespan: cfg.Lifetimes.AuthorizationCode,
		GlobalSecret:          hmacSecret,
		AccessTokenIssuer:     cfg.Issuer,
		IDTokenIssuer:         cfg.Issuer,
		TokenURL:              cfg.Issuer + "/oauth2/token",
		// A client gets exactly the scopes it is registered for; no
		// hierarchical or wildcard widening.
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		ClientSecretsHasher:            cfg.SecretHasher,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		// Refresh tokens follow the client's grant_types, not an
		// "offline" scope (see passwordGrant and the client's grant_types).
		RefreshTokenScopes:         []string{},
		SendDebugMessagesToClients: false,
		// RFC 6749 sets no minimum length for state (nor OpenID Connect
		// for nonce): any non-empty value is the client's to choose. 1, not
		// 0, which fosite reads as its default of 8.
		MinParameterEntropy: 1,
		// OpenID Connect: ID tokens live as long as the access token they
		// come with; select_account has no page here, so it is refused.
		IDTokenLifespan:     cfg.Lifetimes.AccessToken,
		AllowedPromptValues: []string{"none", "login", "consent"},
	}

	var strategy oauth2.CoreStrategy = newPrefixedStrategy(fc)
	if cfg.AccessTokenFormat == FormatJWT {
		strategy = &jwtStrategy{CoreStrategy: strategy, keys: keys, issuer: cfg.Issuer, now: time.Now}
	}

	store.codeSig = strategy.AuthorizeCodeSignature
	// OpenID Connect (handler/openid): ID tokens signed by the server's
	// keys (idtoken.go), one helper and validator shared by its flows.
	signer := idTokenSigner{keys: keys, now: cfg.Now}
	idTokens := &openid.IDTokenHandleHelper{IDTokenStrategy: &openid.DefaultStrategy{Signer: signer, Config: fc}}
	oidcRequests := openid.NewOpenIDConnectRequestValidator(signer, fc)

	provider := compose.Compose(fc, store, strategy,
		// Ahead of the grants, so a missing parameter is invalid_request.
		func(fosite.Configurator, any, any) any { return requiredParams },
		// fosite's code grant, with the reuse it drops put back.
		func(config fosite.Configurator, storage, strategy any) any {
			return codeGrant{compose.OAuth2AuthorizeExplicitFactory(config, storage, strategy).(*oauth2.AuthorizeExplicitGrantHandler)}
		},
		// The ID token of the code flow, after the code grant: it needs
		// the code at the authorization endpoint and runs after the
		// code's tokens at the token endpoint.
		func(fosite.Configurator, any, any) any {
			return &openid.OpenIDConnectExplicitHandler{OpenIDConnectRequestStorage: store, OpenIDConnectRequestValidator: oidcRequests, Config: fc, IDTokenHandleHelper: idTokens}
		},
		// response_type "id_token token" and "id_token" (nonce required).
		func(fosite.Configurator, any, any) any {
			return &openid.OpenIDConnectImplicitHandler{
				AuthorizeImplicitGrantTypeHandler: &oauth2.AuthorizeImplicitGrantTypeHandler{AccessTokenStrategy: strategy, AccessTokenStorage: store, Config: fc},
				IDTokenHandleHelper:               idTokens,
				OpenIDConnectRequestValidator:     oidcRequests,
				Config:                            fc,
			}
		},
		compose.OAuth2AuthorizeImplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		// fosite's refresh grant and its OpenID Connect ID token, with the
		// retry window around both: a retry gets the very ID token the
		// first answer carried, not a second one.
		func(config fosite.Configurator, _, strategy any) any {
			inner := compose.OAuth2RefreshTokenGrantFactory(config, refreshStorage{store}, strategy).(*oauth2.RefreshTokenGrantHandler)
			id := &openid.OpenIDConnectRefreshHandler{IDTokenHandleHelper: idTokens, Config: fc}
			return &refreshGrant{inner: inner, id: id, store: store, now: cfg.Now}
		},
		// Password sign-in is the user directory's, not the store's.
		func(fosite.Configurator, any, any) any {
			return newPasswordGrant(fc, store, strategy, cfg.Users, cfg.Now)
		},
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	for i, h := range fc.TokenEndpointHandlers {
		fc.TokenEndpointHandlers[i] = servedOnly{h}
	}
	return provider, fc
}

// servedOnly asks a token endpoint handler whether it serves the request
// before asking it to populate the response. fosite asks every handler,
// and fosite's own handlers refuse a grant not theirs with an error that
// captures a stack trace (errorsx.WithStack): three traces built and thrown
// away on every client-credentials request, about a quarter of the
// endpoint's CPU. The answer is the same ErrUnknownRequest, without them.
// (fosite checks CanHandleTokenEndpointRequest itself before
// HandleTokenEndpointRequest, so that needs no guard.)
type servedOnly struct{ fosite.TokenEndpointHandler }

func (h servedOnly) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, req) {
		return fosite.ErrUnknownRequest
	}
	return h.TokenEndpointHandler.PopulateTokenEndpointResponse(ctx, req, resp)
}
