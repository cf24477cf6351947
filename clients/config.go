package clients

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/postern-auth/postern/confjson"
)

// FileConfig is one clients[] entry as written in the server's file.
// Field names are RFC 7591's (DESIGN.md).
type FileConfig struct {
	ClientID                string   `json:"client_id"`
	ClientName              string   `json:"client_name"`
	ClientSecretHash        string   `json:"client_secret_hash"`
	ClientSecret            string   `json:"client_secret"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	RedirectURIs            []string `json:"redirect_uris"`
	Scope                   string   `json:"scope"`
	Audience                []string `json:"audience"`
	Trusted                 bool     `json:"trusted"`
	ResourceServer          bool     `json:"resource_server"`
	// private_key_jwt (RFC 7523): the public keys, inline or by URL.
	JWKS                        json.RawMessage `json:"jwks"`
	JWKSURI                     string          `json:"jwks_uri"`
	TokenEndpointAuthSigningAlg string          `json:"token_endpoint_auth_signing_alg"`
	// RefreshRetryWindow replaces tokens.refresh_retry_window for this
	// client ("0s": strict rotation, e.g. for a confidential web backend).
	RefreshRetryWindow *confjson.Duration `json:"refresh_retry_window"`
	// OpenID Connect logout: where RP-Initiated Logout may send the
	// browser back to (exact match), and where Back-Channel Logout posts
	// the logout token.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri"`
}

// ParseConfig decodes and validates the clients[] entry raw at path.
func ParseConfig(path string, raw json.RawMessage, lt Lifetimes) (*Client, []string, error) {
	var cc FileConfig
	if err := confjson.Decode(raw, &cc, path); err != nil {
		return nil, nil, err
	}
	return cc.Validate(path, lt)
}

var knownGrants = map[string]bool{
	GrantAuthorizationCode: true, GrantImplicit: true, GrantPassword: true,
	GrantClientCredentials: true, GrantRefreshToken: true,
}

// Validate checks the entry at path ("clients[1]") and builds its Client
// with lifetimes lt; warnings name development shortcuts.
func (cc FileConfig) Validate(path string, lt Lifetimes) (*Client, []string, error) {
	var warnings []string
	if cc.ClientID == "" {
		return nil, nil, confjson.Errorf(path+".client_id", "is required")
	}
	if err := confjson.ClientID(cc.ClientID); err != nil {
		return nil, nil, confjson.Errorf(path+".client_id", "%v", err)
	}
	c := &Client{
		ID:                      cc.ClientID,
		Name:                    cc.ClientName,
		TokenEndpointAuthMethod: cc.TokenEndpointAuthMethod,
		Trusted:                 cc.Trusted,
		ResourceServer:          cc.ResourceServer,
		Audience:                cc.Audience,
		Lifetimes:               lt,
	}
	switch cc.TokenEndpointAuthMethod {
	case "":
		c.TokenEndpointAuthMethod = AuthSecretBasic
	case AuthSecretBasic, AuthSecretPost, AuthNone:
	case AuthPrivateKeyJWT:
		if err := cc.validateKeys(path, c); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, confjson.Errorf(path+".token_endpoint_auth_method", "unknown method %q (want client_secret_basic, client_secret_post, private_key_jwt or none)", cc.TokenEndpointAuthMethod)
	}
	if c.TokenEndpointAuthMethod != AuthPrivateKeyJWT && (len(cc.JWKS) > 0 || cc.JWKSURI != "" || cc.TokenEndpointAuthSigningAlg != "") {
		return nil, nil, confjson.Errorf(path, "jwks, jwks_uri and token_endpoint_auth_signing_alg belong to token_endpoint_auth_method \"private_key_jwt\"")
	}
	public := c.TokenEndpointAuthMethod == AuthNone
	keyAuth := c.TokenEndpointAuthMethod == AuthPrivateKeyJWT
	switch {
	case keyAuth && (cc.ClientSecretHash != "" || cc.ClientSecret != ""):
		return nil, nil, confjson.Errorf(path, "a private_key_jwt client authenticates with its key and must not have a secret")
	case keyAuth:
	case public && (cc.ClientSecretHash != "" || cc.ClientSecret != ""):
		return nil, nil, confjson.Errorf(path, "a public client (token_endpoint_auth_method \"none\") must not have a secret")
	case !public && cc.ClientSecretHash != "" && cc.ClientSecret != "":
		return nil, nil, confjson.Errorf(path, "set client_secret_hash or client_secret, not both")
	case !public && cc.ClientSecretHash != "":
		if err := ValidateSecretHash(cc.ClientSecretHash); err != nil {
			return nil, nil, confjson.Errorf(path+".client_secret_hash", "%v", err)
		}
		c.SecretHash = []byte(cc.ClientSecretHash)
	case !public && cc.ClientSecret != "":
		if strings.HasPrefix(cc.ClientSecret, "$") {
			return nil, nil, confjson.Errorf(path+".client_secret", "looks like a hash; put it in client_secret_hash")
		}
		c.SecretHash = []byte(cc.ClientSecret)
		warnings = append(warnings, fmt.Sprintf("%s (%s) has a plain client_secret: for development only; use `postern clients secret` and client_secret_hash", path, cc.ClientID))
	case !public:
		return nil, nil, confjson.Errorf(path, "a confidential client needs client_secret_hash (see `postern clients secret`), or token_endpoint_auth_method \"none\" for a public client")
	}

	if len(cc.GrantTypes) == 0 {
		return nil, nil, confjson.Errorf(path+".grant_types", "is required")
	}
	grants := map[string]bool{}
	for _, g := range cc.GrantTypes {
		if !knownGrants[g] {
			return nil, nil, confjson.Errorf(path+".grant_types", "unknown grant %q", g)
		}
		if grants[g] {
			return nil, nil, confjson.Errorf(path+".grant_types", "grant %q listed twice", g)
		}
		grants[g] = true
	}
	c.GrantTypes = cc.GrantTypes
	if grants[GrantClientCredentials] && public {
		return nil, nil, confjson.Errorf(path+".grant_types", "client_credentials needs a confidential client (RFC 6749 §4.4)")
	}
	if grants[GrantPassword] && !cc.Trusted {
		return nil, nil, confjson.Errorf(path+".grant_types", "the password grant is only for first-party clients with \"trusted\": true")
	}
	if grants[GrantRefreshToken] && !grants[GrantAuthorizationCode] && !grants[GrantPassword] {
		return nil, nil, confjson.Errorf(path+".grant_types", "refresh_token needs authorization_code or password: no other grant issues refresh tokens")
	}
	browser := grants[GrantAuthorizationCode] || grants[GrantImplicit]
	if browser && len(cc.RedirectURIs) == 0 {
		return nil, nil, confjson.Errorf(path+".redirect_uris", "is required for authorization_code and implicit")
	}
	if !browser && len(cc.RedirectURIs) > 0 {
		return nil, nil, confjson.Errorf(path+".redirect_uris", "only authorization_code and implicit clients have redirect URIs")
	}
	for j, u := range cc.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return nil, nil, confjson.Errorf(fmt.Sprintf("%s.redirect_uris[%d]", path, j), "%v", err)
		}
	}
	c.RedirectURIs = cc.RedirectURIs
	for _, rt := range cc.ResponseTypes {
		switch {
		case rt == "code" && grants[GrantAuthorizationCode]:
		case implicitResponseTypes[rt] && grants[GrantImplicit]:
		case rt == "code":
			return nil, nil, confjson.Errorf(path+".response_types", "%q needs grant authorization_code", rt)
		case implicitResponseTypes[rt]:
			return nil, nil, confjson.Errorf(path+".response_types", "%q needs grant implicit", rt)
		default:
			return nil, nil, confjson.Errorf(path+".response_types", "unknown response type %q (want code, token, \"id_token token\" or id_token)", rt)
		}
	}
	c.ResponseTypes = cc.ResponseTypes
	for _, sc := range strings.Fields(cc.Scope) {
		if !confjson.ScopeToken(sc) {
			return nil, nil, confjson.Errorf(path+".scope", "invalid scope %q", sc)
		}
		c.Scopes = append(c.Scopes, sc)
	}
	if err := cc.validateLogout(path, browser, c); err != nil {
		return nil, nil, err
	}
	if cc.RefreshRetryWindow != nil {
		if !grants[GrantRefreshToken] {
			return nil, nil, confjson.Errorf(path+".refresh_retry_window", "the client has no refresh_token grant")
		}
		if err := CheckRefreshRetryWindow(cc.RefreshRetryWindow.Duration, lt.AccessToken); err != nil {
			return nil, nil, confjson.Errorf(path+".refresh_retry_window", "%v", err)
		}
		c.Lifetimes.RefreshRetryWindow = cc.RefreshRetryWindow.Duration
	}
	return c, warnings, nil
}

// implicitResponseTypes are the response types of the implicit grant: the
// OAuth token alone, and OpenID Connect's with an ID token.
var implicitResponseTypes = map[string]bool{"token": true, "id_token token": true, "token id_token": true, "id_token": true}

// validateLogout checks the OpenID Connect logout registration: post-logout
// redirect URIs follow the rules of redirect URIs (they are one too), and
// the back-channel URI is an https URL (plain http only on loopback)
// without a fragment (Back-Channel Logout 1.0 §2.2). Both belong to
// clients that sign users in through the browser.
func (cc FileConfig) validateLogout(path string, browser bool, c *Client) error {
	if !browser && (len(cc.PostLogoutRedirectURIs) > 0 || cc.BackchannelLogoutURI != "") {
		return confjson.Errorf(path, "post_logout_redirect_uris and backchannel_logout_uri belong to authorization_code and implicit clients")
	}
	seen := map[string]bool{}
	for j, u := range cc.PostLogoutRedirectURIs {
		at := fmt.Sprintf("%s.post_logout_redirect_uris[%d]", path, j)
		if err := validateRedirectURI(u); err != nil {
			return confjson.Errorf(at, "%v", err)
		}
		if seen[u] {
			return confjson.Errorf(at, "%q listed twice", u)
		}
		seen[u] = true
	}
	c.PostLogoutRedirectURIs = cc.PostLogoutRedirectURIs
	if cc.BackchannelLogoutURI == "" {
		return nil
	}
	u, err := url.Parse(cc.BackchannelLogoutURI)
	loopback := err == nil && u.Scheme == "http" && confjson.LoopbackHost(u.Hostname())
	switch {
	case err != nil || (u.Scheme != "https" && !loopback) || u.Host == "":
		return confjson.Errorf(path+".backchannel_logout_uri", "%q must be an https URL (plain http only on loopback)", cc.BackchannelLogoutURI)
	case u.Fragment != "" || strings.Contains(cc.BackchannelLogoutURI, "#"):
		return confjson.Errorf(path+".backchannel_logout_uri", "%q must not contain a fragment", cc.BackchannelLogoutURI)
	case u.User != nil:
		return confjson.Errorf(path+".backchannel_logout_uri", "%q must not contain user information", cc.BackchannelLogoutURI)
	}
	c.BackchannelLogoutURI = cc.BackchannelLogoutURI
	return nil
}

// MaxRefreshRetryWindow bounds the retry window: a retry repeats a request
// whose answer was lost, seconds later, not minutes.
const MaxRefreshRetryWindow = 5 * time.Minute

// CheckRefreshRetryWindow checks a retry window against its bounds and the
// access-token lifetime (a retry must not hand back an expired token).
func CheckRefreshRetryWindow(w, accessTTL time.Duration) error {
	switch {
	case w < 0:
		return fmt.Errorf("%s is negative", w)
	case w > MaxRefreshRetryWindow:
		return fmt.Errorf("%s exceeds the limit of %s", w, MaxRefreshRetryWindow)
	case accessTTL > 0 && w >= accessTTL:
		return fmt.Errorf("%s must be shorter than the access-token lifetime (%s)", w, accessTTL)
	}
	return nil
}

// validateRedirectURI enforces RFC 6749 §3.1.2 and RFC 9700 §2.1: absolute,
// no fragment, and plain http only for loopback (RFC 8252 §7.3). Private
// schemes (com.example.app:/cb) are allowed for native apps.
func validateRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%q is not an absolute URI", s)
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return fmt.Errorf("%q must not contain a fragment", s)
	}
	if strings.ContainsAny(s, "*") {
		return fmt.Errorf("%q: wildcards are not allowed; redirect URIs match exactly", s)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", s)
		}
	case "http":
		if !confjson.LoopbackHost(u.Hostname()) {
			return fmt.Errorf("%q: plain http is only allowed for loopback addresses", s)
		}
	case "javascript", "data", "file", "vbscript":
		return fmt.Errorf("%q: scheme %q is not allowed", s, u.Scheme)
	}
	return nil
}

// validateKeys checks a private_key_jwt client's key registration: exactly
// one of jwks (public keys only) and jwks_uri, and a supported algorithm.
func (cc FileConfig) validateKeys(path string, c *Client) error {
	switch {
	case len(cc.JWKS) > 0 && cc.JWKSURI != "":
		return confjson.Errorf(path, "set jwks or jwks_uri, not both")
	case len(cc.JWKS) > 0:
		set, err := ParseClientJWKS(cc.JWKS)
		if err != nil {
			return confjson.Errorf(path+".jwks", "%v", err)
		}
		c.JWKS = set
	case cc.JWKSURI != "":
		u, err := url.Parse(cc.JWKSURI)
		loopback := err == nil && u.Scheme == "http" && confjson.LoopbackHost(u.Hostname())
		if err != nil || (u.Scheme != "https" && !loopback) || u.Host == "" {
			return confjson.Errorf(path+".jwks_uri", "%q must be an https URL (plain http only on loopback)", cc.JWKSURI)
		}
		c.JWKSURI = cc.JWKSURI
	default:
		return confjson.Errorf(path, "a private_key_jwt client needs jwks (its public keys) or jwks_uri")
	}
	c.AuthSigningAlg = cc.TokenEndpointAuthSigningAlg
	if c.AuthSigningAlg == "" {
		c.AuthSigningAlg = "RS256" // RFC 7591 / OpenID Connect registration default
	}
	if !slices.Contains(ClientAssertionAlgs, c.AuthSigningAlg) {
		return confjson.Errorf(path+".token_endpoint_auth_signing_alg", "unsupported algorithm %q (want one of %s)", c.AuthSigningAlg, strings.Join(ClientAssertionAlgs, ", "))
	}
	return nil
}
