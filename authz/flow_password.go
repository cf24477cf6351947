package authz

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
)

// passwordAuthenticator signs a user in for the password grant, through the
// same directory and brute-force counters as the login form. fosite's
// password handler calls Authenticate(ctx, name, secret) and passes it no
// request, so the one request input the throttle needs, the client address,
// is bound into the value: passwordGrant makes one per request.
type passwordAuthenticator struct {
	users *identity.Directory
	from  string // client address the attempt is counted against
}

// Authenticate returns the subject, or a *throttledError or a
// *badCredentialsError; both wrap fosite.ErrNotFound, so fosite answers
// invalid_grant and keeps them as the cause for tokenOutcome.
func (a passwordAuthenticator) Authenticate(ctx context.Context, name, secret string) (string, error) {
	u, err := a.users.Authenticate(ctx, name, secret, a.from)
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		return "", &throttledError{Throttle: throttled}
	case errors.Is(err, identity.ErrBadCredentials):
		return "", &badCredentialsError{Username: name}
	case err != nil:
		return "", fmt.Errorf("password grant: %w", err)
	}
	return u.Username, nil
}

// passwordStorage is what fosite's password handler needs from storage:
// tokens go to the store adapter, sign-ins to the authenticator.
type passwordStorage struct {
	*fositeStore
	passwordAuthenticator
}

var _ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = passwordStorage{}

// passwordGrant is fosite's password handler, bound per request to what
// fosite's interfaces do not carry: the client address for the throttle,
// and whether the client may hold a refresh token (fosite's handler would
// issue one to every client; Postern only to clients registered for the
// refresh_token grant). Once the user is signed in it records who they are
// in the session, which every token of the grant carries.
type passwordGrant struct {
	// handler is fosite's, as composed, without storage; bind completes a
	// copy of it for each request.
	//lint:ignore SA1019 see newPasswordGrant.
	handler oauth2.ResourceOwnerPasswordCredentialsGrantHandler
	store   *fositeStore
	users   *identity.Directory
	config  *fosite.Config
	now     func() time.Time
}

func newPasswordGrant(config *fosite.Config, store *fositeStore, strategy oauth2.CoreStrategy, users *identity.Directory, now func() time.Time) *passwordGrant {
	return &passwordGrant{
		//lint:ignore SA1019 the password grant is deprecated in OAuth 2.1, and Postern offers it only to trusted first-party clients, as the issue asks.
		handler: oauth2.ResourceOwnerPasswordCredentialsGrantHandler{
			HandleHelper: &oauth2.HandleHelper{
				AccessTokenStrategy: strategy,
				AccessTokenStorage:  store,
				Config:              config,
			},
			RefreshTokenStrategy: strategy,
			Config:               config,
		},
		store:  store,
		users:  users,
		config: config,
		now:    now,
	}
}

//lint:ignore SA1019 see newPasswordGrant.
func (g *passwordGrant) bind(req fosite.AccessRequester) *oauth2.ResourceOwnerPasswordCredentialsGrantHandler {
	h := g.handler
	from := ""
	if sess, ok := req.GetSession().(*Session); ok {
		from = sess.IP
	}
	h.ResourceOwnerPasswordCredentialsGrantStorage = passwordStorage{g.store, passwordAuthenticator{users: g.users, from: from}}
	if c := authenticatedClient(req); c == nil || !c.HasGrant(clients.GrantRefreshToken) {
		h.Config = withoutRefreshTokens{g.config}
	}
	return &h
}

func (g *passwordGrant) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	if c := authenticatedClient(req); c == nil || !c.MayUse(clients.GrantPassword) {
		// Refused before the password is checked: an untrusted client
		// must not learn whether it was right, nor move the throttle.
		return fosite.ErrUnauthorizedClient.WithHint("Only trusted first-party clients may use the password grant.")
	}
	if err := g.bind(req).HandleTokenEndpointRequest(ctx, req); err != nil {
		return err
	}
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return nil
	}
	// fosite has set the subject Authenticate returned; the directory is
	// fixed for the life of the server, so the lookup finds that user.
	u, _ := g.users.Lookup(sess.Subject)
	sess.Username = u.Username
	sess.GrantStart = g.now().UTC()
	sess.CredFP, _ = g.users.Fingerprint(u.Username)
	if len(u.Claims) > 0 {
		sess.Claims = make(map[string]any, len(u.Claims))
		for k, v := range u.Claims {
			sess.Claims[k] = v
		}
	}
	return nil
}

func (g *passwordGrant) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	return g.bind(req).PopulateTokenEndpointResponse(ctx, req, resp)
}

func (g *passwordGrant) CanSkipClientAuth(ctx context.Context, req fosite.AccessRequester) bool {
	return g.handler.CanSkipClientAuth(ctx, req)
}

func (g *passwordGrant) CanHandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) bool {
	return g.handler.CanHandleTokenEndpointRequest(ctx, req)
}

// noRefreshScope can never be granted (scope tokens exclude NUL), so
// requiring it withholds the refresh token.
const noRefreshScope = "\x00no-refresh-token"

// withoutRefreshTokens makes fosite's password handler withhold the refresh
// token: it issues one only when the request was granted one of the
// configured refresh-token scopes.
type withoutRefreshTokens struct{ *fosite.Config }

func (withoutRefreshTokens) GetRefreshTokenScopes(context.Context) []string {
	return []string{noRefreshScope}
}
