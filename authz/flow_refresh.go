package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// The refresh retry window (tokens.refresh_retry_window, per client
// refresh_retry_window): a refresh token presented again by its own client,
// within the window and while its successor is unused, gets the very same
// answer as the refresh it repeats. A phone that lost the response, or two
// tabs refreshing at once, keep their grant; the grant stays one chain, so
// reuse detection keeps its full strength: whoever else holds the token
// only ever receives the pair the real client also holds, and the first
// later use of either copy of the successor by the other party is reuse.
//
// The answer is sealed (retry_seal.go) and kept next to the redeemed
// token's used-marker by the same atomic storage.Redeem that issues the
// successor pair, so a crash between commit and response loses nothing:
// the retry after a restart gets the same pair.

// retryError: the refresh token was redeemed, and the answer to that
// redemption still stands for a retry. It wraps nothing fosite knows, so
// fosite neither revokes the grant (as for reuse) nor answers on its own;
// refreshGrant decides.
type retryError struct {
	Token  storage.Token
	Answer retryAnswer
}

func (e *retryError) Error() string {
	return "refresh token presented again within its retry window"
}

// refreshStorage is the store as the refresh handler sees it: a redeemed
// token whose answer stands comes back as a *retryError instead of as
// reuse. Introspection and revocation keep the plain fositeStore, for which
// a redeemed token is simply inactive.
type refreshStorage struct{ *fositeStore }

func (s refreshStorage) GetRefreshTokenSession(ctx context.Context, sig string, session fosite.Session) (fosite.Requester, error) {
	req, err := s.fositeStore.GetRefreshTokenSession(ctx, sig, session)
	var reuse *reuseError
	if !errors.As(err, &reuse) {
		return req, err
	}
	a, ok, rerr := s.standingRetry(ctx, sig)
	switch {
	case rerr != nil:
		// Not knowing is not reuse: revoking a grant because the store
		// hiccuped would sign a user out for nothing.
		return nil, rerr
	case ok:
		return req, &retryError{Token: reuse.Token, Answer: a}
	}
	return req, err
}

// standingRetry returns the answer kept for the redeemed refresh token sig,
// if it still stands. An answer that does not open (another system secret)
// stands for nothing.
func (s *fositeStore) standingRetry(ctx context.Context, sig string) (retryAnswer, bool, error) {
	if s.retry == nil {
		return retryAnswer{}, false, nil
	}
	r, err := s.store.RetryOf(ctx, storage.RefreshToken, sig)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return retryAnswer{}, false, nil
	case err != nil:
		return retryAnswer{}, false, fmt.Errorf("refresh retry: %w", err)
	}
	a, err := s.retry.open(sig, r.Sealed)
	if err != nil {
		return retryAnswer{}, false, nil
	}
	return a, true, nil
}

// refreshGrant is fosite's refresh handler, composed in fosite.go, with the
// retry window around it. fosite's OpenID Connect refresh handler (id) runs
// inside it, not beside it: its new ID token is part of the answer sealed
// for a retry, and a retry, answered from the seal, must get that very ID
// token and no freshly minted second one.
type refreshGrant struct {
	inner *oauth2.RefreshTokenGrantHandler
	id    *openid.OpenIDConnectRefreshHandler
	store *fositeStore
	now   func() time.Time
}

func (g *refreshGrant) CanSkipClientAuth(ctx context.Context, req fosite.AccessRequester) bool {
	return g.inner.CanSkipClientAuth(ctx, req)
}

func (g *refreshGrant) CanHandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) bool {
	return g.inner.CanHandleTokenEndpointRequest(ctx, req)
}

func (g *refreshGrant) HandleTokenEndpointRequest(ctx context.Context, req fosite.AccessRequester) error {
	err := g.inner.HandleTokenEndpointRequest(ctx, req)
	var retry *retryError
	if err == nil {
		return g.idToken(g.id.HandleTokenEndpointRequest(ctx, req))
	}
	if !errors.As(err, &retry) {
		return err
	}
	client := authenticatedClient(req)
	if client == nil || client.ID != retry.Token.ClientID || client.ID != retry.Answer.ClientID {
		// Refused like any token of another client, and the real
		// client's grant is left alone: this is no proof of theft.
		return fosite.ErrInvalidGrant.WithHint("The refresh token was issued to another client.")
	}
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected session type")
	}
	sess.retried = &retry.Answer
	return nil
}

func (g *refreshGrant) PopulateTokenEndpointResponse(ctx context.Context, req fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !g.CanHandleTokenEndpointRequest(ctx, req) {
		return fosite.ErrUnknownRequest
	}
	sess, _ := req.GetSession().(*Session)
	if sess != nil && sess.retried != nil {
		sess.retried.fill(resp, g.now())
		return nil
	}
	client := authenticatedClient(req)
	if g.store.retry == nil || client == nil || sess == nil || client.Lifetimes.RefreshRetryWindow <= 0 {
		if err := g.inner.PopulateTokenEndpointResponse(ctx, req, resp); err != nil {
			return err
		}
		return g.idToken(g.id.PopulateTokenEndpointResponse(ctx, req, resp))
	}
	ctx, tx := g.store.beginOwned(ctx)
	if err := g.inner.PopulateTokenEndpointResponse(ctx, req, resp); err != nil {
		return err
	}
	// The ID token goes into resp before the answer is sealed.
	if err := g.idToken(g.id.PopulateTokenEndpointResponse(ctx, req, resp)); err != nil {
		return err
	}
	redeemed := tx.redeemSig
	retry, err := g.retryFor(tx, sess, client, resp)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	err = g.store.commitOwned(ctx, tx, retry)
	var reuse *reuseError
	if errors.As(err, &reuse) {
		// A concurrent refresh with the same token won: its answer is this
		// request's too.
		a, ok, rerr := g.store.standingRetry(context.WithoutCancel(ctx), redeemed)
		if rerr == nil && ok && a.ClientID == client.ID {
			a.fill(resp, g.now())
			sess.retried = &a
			return nil
		}
	}
	if err != nil && !errors.As(err, &reuse) && !errors.Is(err, fosite.ErrNotFound) {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	return err
}

// idToken reads the OpenID handler's answer: ErrUnknownRequest means the
// grant has no openid scope, so there is no ID token to issue.
func (g *refreshGrant) idToken(err error) error {
	if errors.Is(err, fosite.ErrUnknownRequest) {
		return nil
	}
	return err
}

// retryFor seals the answer fosite has just written into resp, to be kept
// with the redemption.
func (g *refreshGrant) retryFor(tx *pendingTx, sess *Session, client *clients.Client, resp fosite.AccessResponder) (*storage.Retry, error) {
	var successor string
	for _, t := range tx.issue {
		if t.Kind == storage.RefreshToken {
			successor = t.Signature
		}
	}
	if tx.redeemSig == "" || successor == "" {
		return nil, errors.New("refresh retry: the redemption issued no refresh token")
	}
	a := retryAnswer{
		ClientID:        client.ID,
		AccessToken:     resp.GetAccessToken(),
		TokenType:       resp.GetTokenType(),
		AccessExpiresAt: sess.GetExpiresAt(fosite.AccessToken),
	}
	for k, v := range resp.ToMap() {
		switch k {
		case "access_token", "token_type", "expires_in":
		case "refresh_token":
			a.RefreshToken, _ = v.(string)
		case "scope":
			a.Scope, _ = v.(string)
		default:
			if a.Extra == nil {
				a.Extra = map[string]any{}
			}
			a.Extra[k] = v
		}
	}
	sealed, err := g.store.retry.seal(tx.redeemSig, a)
	if err != nil {
		return nil, err
	}
	return &storage.Retry{Successor: successor, Until: g.now().Add(client.Lifetimes.RefreshRetryWindow), Sealed: sealed}, nil
}

// fill writes the kept answer as the response, expires_in counted from the
// original issue.
func (a retryAnswer) fill(resp fosite.AccessResponder, now time.Time) {
	resp.SetAccessToken(a.AccessToken)
	resp.SetTokenType(a.TokenType)
	resp.SetExpiresIn(max(0, a.AccessExpiresAt.Sub(now)))
	resp.SetScopes(fosite.Arguments(strings.Fields(a.Scope)))
	resp.SetExtra("refresh_token", a.RefreshToken)
	for k, v := range a.Extra {
		resp.SetExtra(k, v)
	}
}
