package authz

import (
	"context"
	"net/http"
	"strconv"
	"time"

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
	if r.Header.Get("Authorization") == "" && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		// RFC 6749 §5.2: missing client authentication is invalid_client.
		writeOAuthError(w, r, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication is missing."})
		return
	}
	if !grantsServed[grant] {
		writeOAuthError(w, r, &oauthError{Status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "Grant type \"" + grant + "\" is not supported."})
		return
	}

	ctx, ex := withExchange(r.Context())
	sess := newSession()
	sess.GrantType = grant
	sess.IP = clientIP(r)
	sess.UserAgent = r.UserAgent()
	ex.session, ex.ip = sess, sess.IP
	ar, err := s.provider.NewAccessRequest(ctx, r, sess)
	if err != nil {
		s.tokenError(ctx, w, r, ar, ex, grant, err)
		return
	}
	client := ar.GetClient().(*clients.Client)
	if !client.HasGrant(grant) {
		s.tokenError(ctx, w, r, ar, ex, grant, &oauthError{Status: http.StatusBadRequest, Code: "unauthorized_client", Description: "The client is not registered for grant type \"" + grant + "\"."})
		return
	}
	ex.client = client
	if grant == clients.GrantClientCredentials || grant == clients.GrantPassword {
		grantRequested(ar, client)
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.tokenError(ctx, w, r, ar, ex, grant, err)
		return
	}
	// Recorded once tokens exist: a sign-in that issued nothing is not one.
	if grant == clients.GrantPassword {
		s.audit(r, "login", ar.GetSession().GetSubject(), client.ID, "password grant")
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

func (s *Server) tokenError(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, ex *exchange, grant string, err error) {
	e := fromFosite(err)
	if e.Code == "invalid_request" && r.PostForm.Get("client_assertion") != "" && !authenticated(ar) {
		// fosite reports some bad assertions (expired, unparsable claims)
		// as unrecognizable errors; RFC 7523 §3.2 says invalid_client.
		e = &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "The client assertion is not valid."}
	}
	// A client that authenticated but is not registered for the grant hears
	// unauthorized_client, whatever the grant handler objected to first.
	if ar != nil && e.Code != "invalid_client" {
		if c, ok := ar.GetClient().(*clients.Client); ok && c != nil && !c.HasGrant(grant) {
			e = &oauthError{Status: http.StatusBadRequest, Code: "unauthorized_client", Description: "The client is not registered for grant type \"" + grant + "\"."}
		}
	}
	if ex.throttled > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(ex.throttled.Round(time.Second)/time.Second)+1))
		e = &oauthError{Status: http.StatusTooManyRequests, Code: "invalid_grant", Description: "Too many failed logins; retry later."}
		if ex.busy {
			e.Description = "Another sign-in for this account is being checked; retry in a moment."
		}
	}
	if ex.failed != "" {
		clientID := ""
		if authenticated(ar) {
			clientID = ar.GetClient().GetID()
		}
		s.audit(r, "login_failed", ex.failed, clientID, "password grant")
	}
	if ex.gone {
		e = &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "The token is no longer valid."}
	}
	if ex.reused != nil {
		s.revokeReused(ctx, r, *ex.reused)
		e = &oauthError{Status: http.StatusBadRequest, Code: "invalid_grant", Description: "The token was already used; the grant has been revoked."}
	}
	if e.Status >= 500 {
		s.log.Error("token endpoint failure", "grant_type", grant, "error", err)
	}
	writeOAuthError(w, r, e)
}

// revokeReused ends a grant whose one-time token was presented twice (RFC
// 9700 §4.14.2) and records who and where, for the user and the operator.
func (s *Server) revokeReused(ctx context.Context, r *http.Request, t storage.Token) {
	// Revocation must not depend on the client still waiting for an answer.
	ctx = context.WithoutCancel(ctx)
	n, err := s.store.RevokeGrant(ctx, t.RequestID)
	if err != nil {
		s.log.Error("revoke grant after token reuse", "client_id", t.ClientID, "error", err)
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
		s.log.Error("record audit event", "type", ev.Type, "error", err)
	}
	s.log.Warn("one-time token reused; grant revoked", "type", ev.Type, "client_id", t.ClientID, "subject", t.Subject, "tokens_revoked", n, "ip", ev.IP)
}

// authenticated reports whether fosite authenticated the request's client
// (it starts every request with an empty placeholder client).
func authenticated(ar fosite.AccessRequester) bool {
	if ar == nil {
		return false
	}
	c, ok := ar.GetClient().(*clients.Client)
	return ok && c != nil
}

// authenticateClient runs fosite's client authentication (method enforced)
// for the introspection and revocation endpoints.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, allowPublic bool) (*clients.Client, *oauthError) {
	if _, _, basic := r.BasicAuth(); !basic && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		return nil, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication is missing; use HTTP Basic, client_secret_post or a client assertion."}
	}
	c, err := s.provider.(*fosite.Fosite).AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		e := fromFosite(err)
		if e.Code != "invalid_request" || r.PostForm.Get("client_assertion") != "" {
			e = &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication failed."}
		}
		return nil, e
	}
	client := c.(*clients.Client)
	if client.IsPublic() && !allowPublic {
		return nil, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "A public client cannot call this endpoint."}
	}
	return client, nil
}
