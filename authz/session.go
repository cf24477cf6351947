package authz

import (
	"maps"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what Postern keeps about the party a token speaks for. It is
// serialized into every stored token, so field names are short and stable.
type Session struct {
	Subject   string                         `json:"sub,omitempty"`
	Username  string                         `json:"usr,omitempty"`
	ExpiresAt map[fosite.TokenType]time.Time `json:"exp,omitempty"`
	// Claims are user attributes (email, name) surfaced by introspection and
	// in JWT access tokens.
	Claims map[string]any `json:"claims,omitempty"`
	// GrantType, IP and UserAgent describe how the grant was obtained; the
	// account page shows them so a user can recognise a device.
	GrantType string `json:"gt,omitempty"`
	// GrantStart is when the user authorized the grant; refresh tokens never
	// outlive GrantStart + refresh_token_ttl, however often they rotate.
	GrantStart time.Time `json:"gs,omitzero"`
	// CredFP fingerprints the local user's credential (see loginSession).
	CredFP    string `json:"cfp,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"ua,omitempty"`

	// ID holds the ID token claims of an OpenID Connect grant (subject,
	// auth_time, amr, sid and the claims its scopes release); fosite's
	// openid handlers fill in the rest per token. Nil for plain OAuth.
	ID *jwt.IDTokenClaims `json:"idt,omitempty"`
	// idHeaders are the ID token's JOSE headers as fosite's handlers see
	// them; the signer sets its own, so they are never stored.
	idHeaders *jwt.Headers

	// retried is set, for one request, when a refresh is answered from the
	// retry window (flow_refresh.go); never stored.
	retried *retryAnswer
}

var (
	_ fosite.Session            = (*Session)(nil)
	_ fosite.ExtraClaimsSession = (*Session)(nil)
	_ openid.Session            = (*Session)(nil)
)

func newSession() *Session { return &Session{} }

func (s *Session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = make(map[fosite.TokenType]time.Time, 2)
	}
	s.ExpiresAt[key] = exp
}

func (s *Session) GetExpiresAt(key fosite.TokenType) time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.ExpiresAt[key]
}

func (s *Session) GetUsername() string {
	if s == nil {
		return ""
	}
	return s.Username
}

func (s *Session) GetSubject() string {
	if s == nil {
		return ""
	}
	return s.Subject
}

// GetExtraClaims exposes user claims to fosite; the map may be modified.
func (s *Session) GetExtraClaims() map[string]any {
	if s.Claims == nil {
		s.Claims = map[string]any{}
	}
	return s.Claims
}

// Clone copies the maps so a refreshed grant cannot alias its parent's
// session (fosite clones before mutating expiry times).
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.ExpiresAt = maps.Clone(s.ExpiresAt)
	c.Claims = maps.Clone(s.Claims)
	if s.ID != nil {
		// fosite's refresh handler rewrites exp, jti and at_hash in place.
		id := *s.ID
		id.Audience = slices.Clone(s.ID.Audience)
		id.AuthenticationMethodsReferences = slices.Clone(s.ID.AuthenticationMethodsReferences)
		id.Extra = maps.Clone(s.ID.Extra)
		c.ID = &id
	}
	c.idHeaders = nil
	return &c
}

// SetSubject lets fosite's password-grant handler record who logged in.
func (s *Session) SetSubject(sub string) { s.Subject = sub }

// IDTokenClaims are the claims fosite's openid handlers edit in place.
func (s *Session) IDTokenClaims() *jwt.IDTokenClaims {
	if s.ID == nil {
		s.ID = &jwt.IDTokenClaims{}
	}
	return s.ID
}

// IDTokenHeaders are kept only for the handlers' at_hash and c_hash, which
// read alg from them: unset, they hash with SHA-256, which is right for
// both ES256 and RS256.
func (s *Session) IDTokenHeaders() *jwt.Headers {
	if s.idHeaders == nil {
		s.idHeaders = &jwt.Headers{}
	}
	return s.idHeaders
}
