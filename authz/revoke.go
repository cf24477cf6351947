package authz

import (
	"context"
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/storage"
)

// handleRevoke is RFC 7009. The client authenticates (method enforced by
// fosite); then an unknown token, an already revoked one, or another client's
// token are all answered 200 with no effect (§2.2), so a client cannot probe
// for tokens that are not its own.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	client, token, ok := s.tokenRequest(w, r, true)
	if !ok {
		return
	}
	err := s.revoke(r.Context(), token, fosite.TokenType(r.PostForm.Get("token_type_hint")), client)
	switch {
	case err == nil, errors.Is(err, fosite.ErrUnauthorizedClient), errors.Is(err, fosite.ErrNotFound):
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	case errors.Is(err, fosite.ErrInvalidClient):
		writeOAuthError(w, r, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Client authentication failed."})
	case errors.Is(err, fosite.ErrInvalidRequest):
		writeOAuthError(w, r, fromFosite(err))
	case errors.Is(err, storage.ErrUnavailable):
		s.alarm.report("revoke", err)
		writeOAuthError(w, r, &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "Revocation could not be completed; retry."})
	default:
		s.log.Error("revocation failure", "error", err)
		writeOAuthError(w, r, &oauthError{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "Revocation could not be completed; retry."})
	}
}

// revoke runs fosite's revocation handlers for a client authenticated once,
// here (fosite's NewRevocationRequest would authenticate it a second time,
// which a one-time client assertion cannot survive).
func (s *Server) revoke(ctx context.Context, token string, hint fosite.TokenType, client fosite.Client) error {
	ctx = withGrantEnded(ctx)
	found := false
	for _, h := range s.fosite.GetRevocationHandlers(ctx) {
		switch err := h.RevokeToken(ctx, token, hint, client); {
		case err == nil:
			found = true
		case errors.Is(err, fosite.ErrUnknownRequest):
		default:
			return err
		}
	}
	if !found {
		return fosite.ErrInvalidRequest
	}
	return nil
}
