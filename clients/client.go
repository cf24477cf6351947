package clients

import (
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Grant types a client may list (RFC 7591 names).
const (
	GrantAuthorizationCode = "authorization_code"
	GrantImplicit          = "implicit"
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
)

// Lifetimes are the token lifetimes a deployment configures. They are
// attached to every client so that fosite's per-client lifespan hook applies
// the implicit-grant limit without a handler of our own.
type Lifetimes struct {
	AccessToken         time.Duration
	ImplicitAccessToken time.Duration
	RefreshToken        time.Duration
	AuthorizationCode   time.Duration
	// RefreshRetryWindow is how long a redeemed refresh token, presented
	// again by its client while its successor is unused, gets the very
	// same answer instead of counting as reuse; 0 keeps rotation strict.
	// A client's own refresh_retry_window replaces the server's here.
	RefreshRetryWindow time.Duration
}

// Client is a registered OAuth client as configuration describes it. It
// satisfies fosite.Client and fosite.OpenIDConnectClient (for the
// token_endpoint_auth_method check), so fosite enforces what it declares.
type Client struct {
	ID                      string
	Name                    string
	SecretHash              []byte // keyed SHA-256, argon2id, or a development plaintext
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	Scopes                  []string
	Audience                []string
	TokenEndpointAuthMethod string
	// Trusted marks a first-party client: the only kind that may use the
	// password grant, and one that skips the consent page.
	Trusted bool
	// ResourceServer marks a client that validates other clients' tokens
	// (a gateway, an API): it may introspect any token. Every other client
	// sees only its own tokens as active (RFC 7662 §4).
	ResourceServer bool
	Lifetimes      Lifetimes
	// For private_key_jwt: the registered public keys (or where to fetch
	// them) and the one algorithm the client signs its assertions with.
	JWKS           *jose.JSONWebKeySet
	JWKSURI        string
	AuthSigningAlg string
	// OpenID Connect logout (RP-Initiated and Back-Channel Logout 1.0).
	PostLogoutRedirectURIs []string
	BackchannelLogoutURI   string

	// Registered marks a client registered at runtime (portal, RFC 7591)
	// rather than configured; Owner is its developer's subject.
	Registered bool
	Owner      string
	// Tier is the rate-limit tier its API subscriptions give it; the
	// gateway reads it from introspection or the JWT.
	Tier string
	// RotatedSecretHashes still authenticate during a rotation's grace.
	RotatedSecretHashes [][]byte
}

var (
	_ fosite.Client                         = (*Client)(nil)
	_ fosite.OpenIDConnectClient            = (*Client)(nil)
	_ fosite.ClientWithCustomTokenLifespans = (*Client)(nil)
	_ fosite.ClientWithSecretRotation       = (*Client)(nil)
)

func (c *Client) GetID() string                   { return c.ID }
func (c *Client) GetHashedSecret() []byte         { return c.SecretHash }
func (c *Client) GetRotatedHashes() [][]byte      { return c.RotatedSecretHashes }
func (c *Client) GetRedirectURIs() []string       { return c.RedirectURIs }
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }
func (c *Client) GetScopes() fosite.Arguments     { return c.Scopes }
func (c *Client) GetAudience() fosite.Arguments   { return c.Audience }
func (c *Client) IsPublic() bool                  { return c.TokenEndpointAuthMethod == AuthNone }

// GetResponseTypes follows the grant types when none are configured, so a
// client listing only client_credentials can never start a browser flow.
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) > 0 {
		return c.ResponseTypes
	}
	var rt fosite.Arguments
	if c.HasGrant(GrantAuthorizationCode) {
		rt = append(rt, "code")
	}
	if c.HasGrant(GrantImplicit) {
		rt = append(rt, "token", "id_token token", "id_token")
	}
	return rt
}

// HasGrant reports whether the client is registered for a grant type.
func (c *Client) HasGrant(grant string) bool {
	for _, g := range c.GrantTypes {
		if g == grant {
			return true
		}
	}
	return false
}

// MayUse reports whether the client may use grant at the token endpoint: it
// must be registered for it, and the password grant is for trusted
// (first-party) clients only, however the client was registered.
func (c *Client) MayUse(grant string) bool {
	return c.HasGrant(grant) && (grant != GrantPassword || c.Trusted)
}

// AuthMethod is the effective token_endpoint_auth_method (RFC 7591 default).
func (c *Client) AuthMethod() string {
	if c.TokenEndpointAuthMethod == "" {
		return AuthSecretBasic
	}
	return c.TokenEndpointAuthMethod
}

func (c *Client) GetTokenEndpointAuthMethod() string           { return c.AuthMethod() }
func (c *Client) GetRequestURIs() []string                     { return nil }
func (c *Client) GetJSONWebKeys() *jose.JSONWebKeySet          { return c.JWKS }
func (c *Client) GetJSONWebKeysURI() string                    { return c.JWKSURI }
func (c *Client) GetRequestObjectSigningAlgorithm() string     { return "" }
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string { return c.AuthSigningAlg }

// GetEffectiveLifespan caps implicit access tokens at the implicit lifetime
// and otherwise falls back to the server-wide value fosite passes in.
func (c *Client) GetEffectiveLifespan(gt fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	if gt == fosite.GrantTypeImplicit && tt == fosite.AccessToken && c.Lifetimes.ImplicitAccessToken > 0 {
		return c.Lifetimes.ImplicitAccessToken
	}
	return fallback
}
