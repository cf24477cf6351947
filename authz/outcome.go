package authz

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/storage"
)

// What can go wrong in a token request beyond fosite's own vocabulary
// travels as a typed error: the store adapter and the password sign-in
// return one, fosite wraps it into its answer (WithWrap, as for any storage
// error), and tokenOutcome finds it there with errors.As. Each also wraps
// the fosite error fosite's handlers branch on, so fosite takes the same
// path as before. Where fosite drops the cause, the handler wrappers in
// flow_code.go and fositestore.go put it back; TestOutcomesSurviveFosite
// pins every path.

// reuseError: a one-time token (authorization code or refresh token) was
// presented again, or lost a concurrent redemption to another request.
// RFC 9700 §4.14.2: the grant it belongs to is revoked and the reuse
// audited.
type reuseError struct {
	Token storage.Token
	// fositeErr is what fosite's handler branches on: ErrInactiveToken
	// makes the refresh handler revoke the grant, ErrInvalidatedAuthorizeCode
	// the code handler.
	fositeErr error
}

func (e *reuseError) Error() string { return fmt.Sprintf("%s token already used", e.Token.Kind) }
func (e *reuseError) Unwrap() error { return e.fositeErr }

// goneError: a one-time token vanished between being read and being
// redeemed, because a concurrent reuse revoked its grant. fosite would
// answer "retry the request"; a retry cannot succeed.
type goneError struct{ Kind storage.Kind }

func (e *goneError) Error() string {
	return fmt.Sprintf("%s token revoked while being redeemed", e.Kind)
}
func (e *goneError) Unwrap() error { return fosite.ErrNotFound }

// throttledError: password sign-ins for this username or address are
// paused by the login throttle. fosite sees "not found" (invalid_grant).
type throttledError struct{ Throttle *identity.ThrottledError }

func (e *throttledError) Error() string { return "password grant: " + e.Throttle.Error() }
func (e *throttledError) Unwrap() []error {
	return []error{e.Throttle, fosite.ErrNotFound}
}

// badCredentialsError: a password sign-in named an unknown user or gave the
// wrong password. It carries the name for the login_failed audit event.
type badCredentialsError struct{ Username string }

func (e *badCredentialsError) Error() string {
	return fmt.Sprintf("password grant: bad credentials for %q", e.Username)
}
func (e *badCredentialsError) Unwrap() []error {
	return []error{identity.ErrBadCredentials, fosite.ErrNotFound}
}

// tokenOutcome is the one translation from what happened at the token
// endpoint to the RFC 6749 §5.2 answer; nil means nothing stands in the way
// of issuing tokens. ar is fosite's access request (nil or without client
// when authentication failed), err what fosite or Postern returned.
//
// Precedence, first match wins: a failed client authentication is
// invalid_client; an authenticated client not registered for the grant is
// unauthorized_client, whatever else the grant's handler objected to; then
// the typed outcomes; then fosite's own error, translated.
func tokenOutcome(r *http.Request, ar fosite.AccessRequester, err error) *oauthError {
	grant := r.PostForm.Get("grant_type")
	client := authenticatedClient(ar)
	var e *oauthError
	if err != nil {
		e = fromFosite(err)
		if e.Code == "invalid_request" && r.PostForm.Get("client_assertion") != "" && client == nil {
			// fosite reports some bad assertions (expired, unparsable
			// claims) as unrecognizable errors; RFC 7523 §3.2 says
			// invalid_client.
			return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "The client assertion is not valid."}
		}
		if e.Code == "invalid_client" {
			return e
		}
	}
	// fosite's client-credentials handler checks the client's grant types
	// only as it populates the response, after handleToken has granted the
	// scopes, and knows nothing of trusted clients: this is the check that
	// answers first, not a second opinion.
	if client != nil && !client.MayUse(grant) {
		desc := "The client is not registered for grant type \"" + grant + "\"."
		if client.HasGrant(grant) {
			desc = "Only trusted first-party clients may use the password grant."
		}
		return &oauthError{Status: http.StatusBadRequest, Code: "unauthorized_client", Description: desc}
	}
	if err == nil {
		return nil
	}
	var (
		reuse     *reuseError
		gone      *goneError
		throttled *throttledError
	)
	switch {
	case errors.As(err, &reuse):
		return &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "The token was already used; the grant has been revoked."}
	case errors.As(err, &gone):
		return &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "The token is no longer valid."}
	case errors.As(err, &throttled):
		t := throttled.Throttle
		e = &oauthError{Status: http.StatusTooManyRequests, Code: "invalid_grant", Description: "Too many failed logins; retry later.",
			RetryAfter: int(t.RetryAfter.Round(time.Second)/time.Second) + 1}
		if t.Busy {
			e.Description = "Another sign-in for this account is being checked; retry in a moment."
		}
	}
	return e
}

// authenticatedClient is the client fosite authenticated, or nil (fosite
// starts every request with an empty placeholder client).
func authenticatedClient(ar fosite.AccessRequester) *clients.Client {
	if ar == nil {
		return nil
	}
	c, _ := ar.GetClient().(*clients.Client)
	return c
}
