package authz

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
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
	}

	var strategy oauth2.CoreStrategy = newPrefixedStrategy(fc)
	if cfg.AccessTokenFormat == FormatJWT {
		strategy = &jwtStrategy{CoreStrategy: strategy, keys: keys, issuer: cfg.Issuer, now: time.Now}
	}

	provider := compose.Compose(fc, store, strategy,
		// Ahead of the grants, so a missing parameter is invalid_request.
		func(fosite.Configurator, any, any) any { return requiredParams },
		// fosite's code grant, with the reuse it drops put back.
		func(config fosite.Configurator, storage, strategy any) any {
			return codeGrant{compose.OAuth2AuthorizeExplicitFactory(config, storage, strategy).(*oauth2.AuthorizeExplicitGrantHandler)}
		},
		compose.OAuth2AuthorizeImplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		// fosite's refresh grant, with the retry window around it.
		func(config fosite.Configurator, _, strategy any) any {
			inner := compose.OAuth2RefreshTokenGrantFactory(config, refreshStorage{store}, strategy).(*oauth2.RefreshTokenGrantHandler)
			return &refreshGrant{inner: inner, store: store, now: cfg.Now}
		},
		// Password sign-in is the user directory's, not the store's.
		func(fosite.Configurator, any, any) any {
			return newPasswordGrant(fc, store, strategy, cfg.Users, cfg.Now)
		},
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	return provider, fc
}
