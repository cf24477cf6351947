package authz

import (
	"context"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/postern-auth/postern/clients"
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
		// "offline" scope (see refreshPolicyConfig).
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
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2AuthorizeImplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		passwordGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	return provider, fc
}

// passwordGrantFactory is fosite's password handler with one change: it
// issues a refresh token only to clients registered for the refresh_token
// grant (fosite's own handler would issue one to every client).
func passwordGrantFactory(config fosite.Configurator, storage interface{}, strategy interface{}) interface{} {
	//lint:ignore SA1019 the password grant is deprecated in OAuth 2.1, and Postern offers it only to trusted first-party clients, as the issue asks.
	return &oauth2.ResourceOwnerPasswordCredentialsGrantHandler{
		ResourceOwnerPasswordCredentialsGrantStorage: storage.(oauth2.ResourceOwnerPasswordCredentialsGrantStorage),
		HandleHelper: &oauth2.HandleHelper{
			AccessTokenStrategy: strategy.(oauth2.AccessTokenStrategy),
			AccessTokenStorage:  storage.(oauth2.AccessTokenStorage),
			Config:              config,
		},
		RefreshTokenStrategy: strategy.(oauth2.RefreshTokenStrategy),
		Config:               refreshPolicyConfig{config.(*fosite.Config)},
	}
}

// noRefreshScope can never be granted (scope tokens exclude NUL), so
// requiring it withholds the refresh token.
const noRefreshScope = "\x00no-refresh-token"

type refreshPolicyConfig struct{ *fosite.Config }

func (c refreshPolicyConfig) GetRefreshTokenScopes(ctx context.Context) []string {
	if ex := exchangeFrom(ctx); ex != nil && ex.client != nil && ex.client.HasGrant(clients.GrantRefreshToken) {
		return nil
	}
	return []string{noRefreshScope}
}
