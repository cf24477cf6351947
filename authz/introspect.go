package authz

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/tracing"
)

// handleIntrospect is RFC 7662. The caller must authenticate as a
// confidential client (bearer tokens are not accepted: a leaked access token
// must not become a key to look up every other token). Any failure to find
// or validate the token is the same "active": false.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	caller, token, ok := s.tokenRequest(w, r, false)
	if !ok {
		return
	}
	ctx := r.Context()
	setSpanAttributes(ctx, tracing.AttrClientID.String(caller.ID))
	sess := newSession()
	use, ar, err := s.provider.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), sess)
	if errors.Is(err, storage.ErrUnavailable) {
		// "Not active" would make a gateway reject a good token; say the
		// truth so callers retry or serve from their cache.
		s.alarm.report("introspect", err)
		writeOAuthError(w, r, fromFosite(err))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if err != nil {
		setSpanAttributes(ctx, tracing.AttrActive.Bool(false))
		if !errors.Is(err, fosite.ErrNotFound) && !errors.Is(err, fosite.ErrTokenExpired) && !errors.Is(err, fosite.ErrInactiveToken) {
			s.log.DebugContext(ctx, "introspection: token inactive", "reason", fosite.ErrorToRFC6749Error(err).GetDescription())
		}
		_, _ = w.Write([]byte(`{"active":false}` + "\n"))
		return
	}
	if !caller.ResourceServer && ar.GetClient().GetID() != caller.ID {
		// Only resource servers may look into other clients' tokens: an
		// ordinary client must not become an oracle for every token and
		// its user's claims (RFC 7662 §4).
		setSpanAttributes(ctx, tracing.AttrActive.Bool(false))
		_, _ = w.Write([]byte(`{"active":false}` + "\n"))
		return
	}
	setSpanAttributes(ctx, tracing.AttrActive.Bool(true))
	out := s.introspection(use, ar)
	out["jti"] = tokenID(token, use)
	_ = json.NewEncoder(w).Encode(out)
}

// tokenID is the token identifier introspection reports as jti: a JWT
// access token's own jti claim, else a digest of the token's signature,
// stable for the token and revealing nothing of it. The token has been
// validated already.
func tokenID(token string, use fosite.TokenUse) string {
	parts := strings.Split(token, ".")
	if use != fosite.RefreshToken && len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				JTI string `json:"jti"`
			}
			if json.Unmarshal(payload, &c) == nil && c.JTI != "" {
				return c.JTI
			}
		}
	}
	sum := sha256.Sum256([]byte("postern jti\x00" + parts[len(parts)-1]))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// introspection builds the RFC 7662 §2.2 member set. The expiry is that of
// the token introspected (fosite's writer reports the access token's expiry
// for refresh tokens too).
func (s *Server) introspection(use fosite.TokenUse, ar fosite.AccessRequester) map[string]any {
	sess, _ := ar.GetSession().(*Session)
	out := map[string]any{}
	if sess != nil {
		for k, v := range sess.Claims {
			out[k] = v
		}
	}
	out["active"] = true
	out["iss"] = s.cfg.Issuer
	out["client_id"] = ar.GetClient().GetID()
	// The grant the token belongs to, as the revocation feed names it; a
	// cache drops the token when the feed says its grant was revoked.
	out["grant_id"] = ar.GetID()
	if scopes := ar.GetGrantedScopes(); len(scopes) > 0 {
		out["scope"] = strings.Join(scopes, " ")
	}
	// The client was looked up as the token was read, so a subscription
	// changed since issue shows here at once. A user claim of that name
	// must not pass for it: the gateway rate-limits by it.
	delete(out, claimTier)
	if tier := clientTier(ar.GetClient()); tier != "" {
		out[claimTier] = tier
	}
	if !ar.GetRequestedAt().IsZero() {
		out["iat"] = ar.GetRequestedAt().Unix()
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = []string(aud)
	}
	tt := fosite.AccessToken
	if use == fosite.RefreshToken {
		tt = fosite.RefreshToken
		out["token_type"] = "refresh_token"
	} else {
		out["token_type"] = "Bearer"
	}
	if sess != nil {
		if exp := sess.GetExpiresAt(tt); !exp.IsZero() {
			out["exp"] = exp.Unix()
		}
		if sess.Subject != "" {
			out["sub"] = sess.Subject
		}
		if sess.Username != "" {
			out["username"] = sess.Username
		}
	}
	return out
}

// tokenRequest reads what introspection and revocation have in common: a
// form POST from an authenticated client naming a token. Public clients may
// only revoke (RFC 7009 §2.1 lets them, identified by client_id, so an SPA
// can end its refresh token at sign-out). On failure it has answered.
func (s *Server) tokenRequest(w http.ResponseWriter, r *http.Request, allowPublic bool) (*clients.Client, string, bool) {
	if e := readForm(w, r); e != nil {
		writeOAuthError(w, r, e)
		return nil, "", false
	}
	c, e := s.authenticateClient(r.Context(), r, allowPublic)
	if e != nil {
		writeOAuthError(w, r, e)
		return nil, "", false
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeOAuthError(w, r, errInvalidRequest("Parameter \"token\" is missing."))
		return nil, "", false
	}
	return c, token, true
}
