package authz

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/storage"
)

const pathUserinfo = "/oauth2/userinfo"

// handleUserinfo is the OpenID Connect UserInfo endpoint (OIDC Core §5.3):
// GET or POST with an access token granted the openid scope; the claims
// are those its scopes release (claims.go). Errors are RFC 6750's: 401
// with a bare challenge without a token, error="invalid_token" for a token
// that is unknown, expired or revoked, 403 insufficient_scope without
// openid.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET or POST.")
		return
	}
	token, desc := bearerToken(r)
	switch {
	case desc != "":
		s.bearerError(w, http.StatusBadRequest, "invalid_request", desc)
		return
	case token == "":
		s.bearerError(w, http.StatusUnauthorized, "", "")
		return
	}
	ctx := r.Context()
	_, ar, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, newSession())
	switch {
	case errors.Is(err, storage.ErrUnavailable):
		s.alarm.report("userinfo", err)
		writeOAuthError(w, r, fromFosite(err))
		return
	case err != nil:
		s.bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.")
		return
	}
	sess, _ := ar.GetSession().(*Session)
	if sess == nil || sess.Subject == "" || !ar.GetGrantedScopes().Has(scopeOpenID) {
		s.bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	out := userClaims(ar.GetGrantedScopes(), sess.Username, sess.Claims)
	out["sub"] = sess.Subject
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// bearerToken finds the access token in the Authorization header or, for
// a form POST, the access_token body parameter (RFC 6750 §2.1, §2.2); a
// token in more than one place, or in the query, is a malformed request.
func bearerToken(r *http.Request) (token, problem string) {
	if r.URL.Query().Has("access_token") {
		return "", "Send the access token in the Authorization header, not in the URL."
	}
	var found []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
			return "", "The Authorization header is not a Bearer token."
		}
		found = append(found, strings.TrimSpace(cred))
	}
	if r.Method == http.MethodPost {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/x-www-form-urlencoded" {
			if err := r.ParseForm(); err != nil {
				return "", "The request body could not be read."
			}
			if v, ok := r.PostForm["access_token"]; ok {
				found = append(found, v...)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", ""
	case 1:
		return found[0], ""
	}
	return "", "The access token is included more than once."
}

// bearerError answers per RFC 6750 §3: a bare challenge when no token came,
// the error and its description otherwise.
func (s *Server) bearerError(w http.ResponseWriter, status int, code, desc string) {
	challenge := `Bearer realm="` + s.cfg.Issuer + `"`
	if code != "" {
		challenge += `, error="` + code + `", error_description="` + desc + `"`
		if code == "insufficient_scope" {
			challenge += `, scope="openid"`
		}
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if code == "" {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		return
	}
	writeJSONError(w, status, code, desc)
}
