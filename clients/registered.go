package clients

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/postern-auth/postern/confjson"
)

// Clients registered at runtime (the developer portal, RFC 7591 dynamic
// registration) live in the store, next to the configuration's. They are
// the same Client to the token service, with narrower rights: no password
// grant (trusted is for first-party clients, which the configuration
// names), no implicit grant (RFC 9700 §2.1.2), no resource_server, and the
// scopes of the APIs they subscribe to.

// Portal app kinds: what a developer picks when creating an app.
const (
	KindService = "service" // a machine: client credentials
	KindWeb     = "web"     // a web app with a backend: code + secret
	KindSPA     = "spa"     // a SPA or mobile app: public, code + PKCE
)

// Bounds on what a runtime registration may hold (configuration files are
// trusted; registrations come from strangers).
const (
	MaxNameLen         = 100
	MaxRedirectURIs    = 10
	MaxRedirectURILen  = 2000
	maxRegisteredScope = 64
)

// OpenIDScopes are the scopes a user-facing registered client gets besides
// its APIs': sign-in with OpenID Connect needs no subscription.
var OpenIDScopes = []string{"openid", "profile", "email"}

// Registration is a runtime client as the store keeps it (storage.Client's
// Data). Secrets and registration access tokens are kept as hashes only.
type Registration struct {
	Name                   string   `json:"client_name"`
	Kind                   string   `json:"kind,omitempty"`
	AuthMethod             string   `json:"token_endpoint_auth_method"`
	GrantTypes             []string `json:"grant_types"`
	ResponseTypes          []string `json:"response_types,omitempty"`
	RedirectURIs           []string `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// Scope is what the client may request besides its subscriptions'
	// scopes: OpenID Connect's for user-facing apps, and what an RFC 7591
	// registration asked for.
	Scope      []string `json:"scope,omitempty"`
	SecretHash string   `json:"secret_hash,omitempty"`
	// After a rotation the previous secret keeps working until
	// PreviousUntil, so a deployment can roll out the new one.
	PreviousSecretHash string    `json:"previous_secret_hash,omitempty"`
	PreviousUntil      time.Time `json:"previous_until,omitzero"`
	// RegistrationTokenHash is the RFC 7592 registration access token's.
	RegistrationTokenHash string `json:"registration_token_hash,omitempty"`
}

// EncodeRegistration serializes r for the store.
func EncodeRegistration(r Registration) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode client registration: %w", err)
	}
	return b, nil
}

// DecodeRegistration reads what EncodeRegistration wrote.
func DecodeRegistration(data []byte) (Registration, error) {
	var r Registration
	if err := json.Unmarshal(data, &r); err != nil {
		return Registration{}, fmt.Errorf("decode client registration: %w", err)
	}
	return r, nil
}

// NewClientID returns an identifier for a runtime client: random, so that
// nobody can pick one (a configured client's, or one a deleted app had).
func NewClientID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate client id: %w", err)
	}
	return "app-" + base64.RawURLEncoding.EncodeToString(b), nil
}

// MetadataError is a registration refused for its metadata; Field names
// the offending member, RedirectURI says the problem is a redirect URI
// (RFC 7591 §3.2.2 tells invalid_redirect_uri from invalid_client_metadata).
type MetadataError struct {
	Field       string
	RedirectURI bool
	Msg         string
}

func (e *MetadataError) Error() string { return e.Field + ": " + e.Msg }

func metaErr(field, format string, args ...any) error {
	return &MetadataError{Field: field, Msg: fmt.Sprintf(format, args...), RedirectURI: strings.Contains(field, "redirect_uri")}
}

// Validate checks a registration by the rules configured clients follow
// (the same code: one set of rules for redirect URIs, grants and
// authentication methods) plus the narrower rights of runtime clients.
// scopeKnown says whether a scope may be granted at all.
func (r Registration) Validate(scopeKnown func(string) bool) error {
	if r.Name == "" {
		return metaErr("client_name", "is required")
	}
	if len(r.Name) > MaxNameLen || strings.ContainsFunc(r.Name, func(c rune) bool { return c < ' ' || c == 0x7f }) {
		return metaErr("client_name", "must be at most %d printable characters", MaxNameLen)
	}
	switch r.AuthMethod {
	case AuthSecretBasic, AuthSecretPost, AuthNone:
	default:
		return metaErr("token_endpoint_auth_method", "%q is not offered to registered clients (want client_secret_basic, client_secret_post or none)", r.AuthMethod)
	}
	for _, g := range r.GrantTypes {
		switch g {
		case GrantPassword:
			return metaErr("grant_types", "the password grant is only for first-party clients named in the server's configuration")
		case GrantImplicit:
			return metaErr("grant_types", "the implicit grant is not offered to registered clients; use authorization_code with PKCE")
		}
	}
	if len(r.RedirectURIs) > MaxRedirectURIs {
		return metaErr("redirect_uris", "at most %d", MaxRedirectURIs)
	}
	for i, u := range r.RedirectURIs {
		if len(u) > MaxRedirectURILen {
			return metaErr(fmt.Sprintf("redirect_uris[%d]", i), "longer than %d characters", MaxRedirectURILen)
		}
		if slices.Index(r.RedirectURIs, u) != i {
			return metaErr(fmt.Sprintf("redirect_uris[%d]", i), "%q listed twice", u)
		}
	}
	if len(r.PostLogoutRedirectURIs) > MaxRedirectURIs {
		return metaErr("post_logout_redirect_uris", "at most %d", MaxRedirectURIs)
	}
	if len(r.Scope) > maxRegisteredScope {
		return metaErr("scope", "at most %d scopes", maxRegisteredScope)
	}
	for _, sc := range r.Scope {
		if !confjson.ScopeToken(sc) {
			return metaErr("scope", "invalid scope %q", sc)
		}
		if scopeKnown != nil && !scopeKnown(sc) {
			return metaErr("scope", "%q is not offered by any API of this server", sc)
		}
	}
	fc := r.fileConfig("app")
	if _, _, err := fc.Validate("", Lifetimes{}); err != nil {
		field := "metadata"
		var ce *confjson.Error
		if errors.As(err, &ce) {
			if field = strings.TrimPrefix(ce.Path, "."); field == "" {
				field = "metadata"
			}
			return metaErr(field, "%s", ce.Msg)
		}
		return metaErr(field, "%v", err)
	}
	return nil
}

func (r Registration) fileConfig(id string) FileConfig {
	fc := FileConfig{
		ClientID:                id,
		ClientName:              r.Name,
		TokenEndpointAuthMethod: r.AuthMethod,
		GrantTypes:              r.GrantTypes,
		ResponseTypes:           r.ResponseTypes,
		RedirectURIs:            r.RedirectURIs,
		PostLogoutRedirectURIs:  r.PostLogoutRedirectURIs,
		Scope:                   strings.Join(r.Scope, " "),
	}
	if r.AuthMethod != AuthNone {
		fc.ClientSecretHash = r.SecretHash
	}
	return fc
}

// Runtime builds the Client the token service sees. scopes are the
// subscriptions' scopes, tier the tier they give; the previous secret
// counts only until its grace ends at now.
func (r Registration) Runtime(id, owner string, scopes []string, tier string, lt Lifetimes, now time.Time) *Client {
	c := &Client{
		ID:                      id,
		Name:                    r.Name,
		SecretHash:              []byte(r.SecretHash),
		RedirectURIs:            r.RedirectURIs,
		GrantTypes:              r.GrantTypes,
		ResponseTypes:           r.ResponseTypes,
		TokenEndpointAuthMethod: r.AuthMethod,
		Lifetimes:               lt,
		PostLogoutRedirectURIs:  r.PostLogoutRedirectURIs,
		Owner:                   owner,
		Registered:              true,
		Tier:                    tier,
	}
	if r.AuthMethod == AuthNone {
		c.SecretHash = nil
	}
	c.Scopes = slices.Clone(r.Scope)
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			c.Scopes = append(c.Scopes, sc)
		}
	}
	if r.PreviousSecretHash != "" && now.Before(r.PreviousUntil) {
		c.RotatedSecretHashes = [][]byte{[]byte(r.PreviousSecretHash)}
	}
	return c
}
