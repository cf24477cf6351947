package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// grantsServed are the grant types whose handlers are composed in fosite.go.
var grantsServed = map[string]bool{
	clients.GrantAuthorizationCode: true,
	clients.GrantClientCredentials: true,
	clients.GrantPassword:          true,
	clients.GrantRefreshToken:      true,
}

// handleToken is the token endpoint (RFC 6749 §3.2). It checks what fosite
// leaves to the RFC's letter (method, content type, repeated parameters,
// unknown grant types), then lets fosite run the grant.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if e := readForm(w, r); e != nil {
		writeOAuthError(w, r, e)
		return
	}
	grant := r.PostForm.Get("grant_type")
	if grant == "" {
		writeOAuthError(w, r, errInvalidRequest("Parameter \"grant_type\" is missing."))
		return
	}
	if e := badAuthorization(r); e != nil {
		writeOAuthError(w, r, e)
		return
	}
	if r.Header.Get("Authorization") == "" && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		// RFC 6749 §5.2: missing client authentication is invalid_client.
		writeOAuthError(w, r, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication is missing."})
		return
	}
	if !grantsServed[grant] {
		writeOAuthError(w, r, &oauthError{Status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "Grant type \"" + grant + "\" is not supported."})
		return
	}

	ctx := r.Context()
	sess := newSession()
	sess.GrantType = grant
	sess.IP = clientIP(r)
	sess.UserAgent = r.UserAgent()
	ar, err := s.provider.NewAccessRequest(ctx, r, sess)
	if s.refused(ctx, w, r, ar, err) {
		return
	}
	client := authenticatedClient(ar)
	if grant == clients.GrantClientCredentials || grant == clients.GrantPassword {
		grantRequested(ar, client)
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if s.refused(ctx, w, r, ar, err) {
		return
	}
	// Recorded once tokens exist: a sign-in that issued nothing is not one.
	if grant == clients.GrantPassword {
		s.audit(r, "login", ar.GetSession().GetSubject(), client.ID, "password grant")
	}
	if rs, _ := ar.GetSession().(*Session); rs != nil && rs.retried != nil {
		// The same pair again, not a new one: audited as what it is.
		s.audit(r, "refresh_retried", ar.GetSession().GetSubject(), client.ID, "")
		s.metrics.retried.Inc()
		s.log.InfoContext(ctx, "refresh token presented again within its retry window; the same answer again", "type", "refresh_retried", "client_id", client.ID, "ip", sess.IP)
		s.provider.WriteAccessResponse(ctx, w, ar, resp)
		return
	}
	s.metrics.issued.WithLabelValues(grant).Inc()
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// grantRequested grants the requested scopes and audience (fosite has already
// checked them against the client's registration). Without a scope parameter
// the client gets every scope it is registered for (RFC 6749 §3.3 default).
func grantRequested(ar fosite.AccessRequester, c *clients.Client) {
	scopes := ar.GetRequestedScopes()
	if len(scopes) == 0 {
		scopes = c.Scopes
	}
	for _, sc := range scopes {
		ar.GrantScope(sc)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
}

// refused answers a token request that cannot be granted, as tokenOutcome
// decides, and does what the outcome asks beyond the answer: a reused
// one-time token revokes its grant, a wrong password is audited, a store
// that cannot answer is reported. It reports false when nothing stands in
// the way.
func (s *Server) refused(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) bool {
	e := tokenOutcome(r, ar, err)
	if e == nil {
		return false
	}
	if e.Code == "invalid_client" {
		s.authLog.failed(r, err, e)
	}
	var (
		reuse *reuseError
		bad   *badCredentialsError
	)
	if errors.As(err, &reuse) {
		s.revokeReused(ctx, r, reuse.Token)
	}
	if errors.As(err, &bad) {
		clientID := ""
		if c := authenticatedClient(ar); c != nil {
			clientID = c.ID
		}
		s.audit(r, "login_failed", bad.Username, clientID, "password grant")
	}
	switch {
	case e.Code == "temporarily_unavailable" && errors.Is(err, storage.ErrUnavailable):
		s.alarm.report("token", err)
	case e.Status >= 500:
		s.log.ErrorContext(ctx, "token endpoint failure", "grant_type", r.PostForm.Get("grant_type"), "error", err)
	}
	writeOAuthError(w, r, e)
	return true
}

// revokeReused ends a grant whose one-time token was presented twice (RFC
// 9700 §4.14.2) and records who and where, for the user and the operator.
func (s *Server) revokeReused(ctx context.Context, r *http.Request, t storage.Token) {
	// Revocation must not depend on the client still waiting for an answer.
	ctx = context.WithoutCancel(ctx)
	n, err := s.store.RevokeGrant(ctx, t.RequestID)
	if err != nil {
		s.log.ErrorContext(ctx, "revoke grant after token reuse", "client_id", t.ClientID, "error", err)
	}
	ev := storage.Event{
		Time:      s.cfg.Now().UTC(),
		Type:      "refresh_token_reuse",
		Subject:   t.Subject,
		ClientID:  t.ClientID,
		RequestID: t.RequestID,
		IP:        clientIP(r),
		UserAgent: r.UserAgent(),
	}
	if t.Kind == storage.AuthorizationCode {
		ev.Type = "authorization_code_reuse"
	}
	if err := s.store.AppendEvent(ctx, ev); err != nil {
		s.log.ErrorContext(ctx, "record audit event", "type", ev.Type, "error", err)
	}
	// n counts what was still there: fosite's own reuse handling may have
	// revoked the grant a moment earlier, through the same store.
	s.log.WarnContext(ctx, "one-time token reused; grant revoked", "type", ev.Type, "client_id", t.ClientID, "subject", t.Subject, "tokens_left_to_revoke", n, "ip", ev.IP)
}

// authenticateClient runs fosite's client authentication (method enforced)
// for the introspection and revocation endpoints.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, allowPublic bool) (*clients.Client, *oauthError) {
	if e := badAuthorization(r); e != nil {
		s.authLog.failed(r, nil, e)
		return nil, e
	}
	if _, _, basic := r.BasicAuth(); !basic && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		return nil, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication is missing; use HTTP Basic, client_secret_post or a client assertion."}
	}
	c, err := s.provider.(*fosite.Fosite).AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		e := fromFosite(err)
		if e.Code != "invalid_request" || r.PostForm.Get("client_assertion") != "" {
			e = &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication failed."}
		}
		if e.Code == "invalid_client" {
			s.authLog.failed(r, err, e)
		}
		return nil, e
	}
	client := c.(*clients.Client)
	if client.IsPublic() && !allowPublic {
		return nil, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "A public client cannot call this endpoint."}
	}
	return client, nil
}

// badAuthorization refuses an Authorization header that is not usable HTTP
// Basic client authentication (RFC 6749 §2.3.1: another scheme, bad base64,
// no colon, credentials that are not form-encoded). The client tried to
// authenticate and failed, so it is invalid_client (§5.2), whatever the body
// carries; fosite would skip the header, look for credentials in the body
// and, finding none, call the request malformed.
func badAuthorization(r *http.Request) *oauthError {
	if r.Header.Get("Authorization") == "" {
		return nil
	}
	if id, secret, ok := r.BasicAuth(); ok {
		_, idErr := url.QueryUnescape(id)
		_, secretErr := url.QueryUnescape(secret)
		if idErr == nil && secretErr == nil {
			return nil
		}
	}
	return &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "The Authorization header is not valid HTTP Basic client authentication."}
}
