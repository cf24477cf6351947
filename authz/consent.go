package authz

import (
	"net/http"
	"net/url"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, c *clients.Client, user *loginSession, auth string, scopes []string) {
	var targets []string
	for _, u := range c.RedirectURIs {
		targets = append(targets, originOf(u))
	}
	s.render(w, http.StatusOK, "consent", pageData{
		Title: "Allow access", CSRF: s.jar.csrfToken(w, r), Auth: auth,
		ClientName: clientName(c), Username: user.Username, Scopes: s.describeScopes(scopes),
	}, targets...)
}

// scopeView is a scope as a page shows it: what it allows, in the words of
// the API catalogue, and its name for developers; Description is empty for
// a scope no API describes.
type scopeView struct {
	Name, Description string
}

// describeScopes looks each scope up in the API catalogue, whichever
// client asks: the user decides on what the scope allows, not on the name
// a developer gave it.
func (s *Server) describeScopes(scopes []string) []scopeView {
	out := make([]scopeView, 0, len(scopes))
	for _, sc := range scopes {
		d, _ := s.cfg.Catalog.ScopeDescription(sc)
		out = append(out, scopeView{Name: sc, Description: d})
	}
	return out
}

// handleConsent takes the user's decision. The pending request is parsed
// and validated again by fosite, so a tampered form can only produce a
// request the user could have made directly.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	if !readPageForm(r) {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The consent form could not be read.")
		return
	}
	auth := r.PostForm.Get("auth")
	q, err := url.ParseQuery(auth)
	if err != nil {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The consent form is malformed.")
		return
	}
	client, ok := s.checkAuthorizeTarget(r.Context(), w, q)
	if !ok {
		return
	}
	user := s.session(r)
	if user == nil {
		s.renderLogin(w, r, http.StatusOK, client, auth, "", "Your session ended. Please sign in again.")
		return
	}
	if !s.jar.checkCSRF(r) {
		s.renderError(w, http.StatusForbidden, "Invalid request", "The consent form expired. Go back to the application and start again.")
		return
	}
	// Rebuild the authorization request as the GET it started as.
	ar2 := r.Clone(r.Context())
	ar2.Method = http.MethodGet
	ar2.URL.RawQuery = auth
	ar2.Form, ar2.PostForm, ar2.Body = nil, nil, http.NoBody
	ar2.Header.Del("Content-Type")
	ctx := r.Context()
	ar, err := s.provider.NewAuthorizeRequest(ctx, ar2)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if err := authorizePolicy(ar, client); err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	scopes := effectiveScopes(ar, client)
	switch r.PostForm.Get("decision") {
	case "allow":
	case "deny":
		s.audit(r, "consent_denied", user.Subject, client.ID, "")
		s.authorizeError(w, r, ar, errAccessDenied)
		return
	default:
		s.renderConsent(w, r, client, user, auth, scopes)
		return
	}
	if r.PostForm.Get("remember") == "yes" {
		err := s.store.PutConsent(ctx, storage.Consent{Subject: user.Subject, ClientID: client.ID, Scopes: scopes, GrantedAt: s.cfg.Now().UTC()})
		if err != nil {
			s.log.Error("remember consent", "error", err)
		}
	}
	s.issueAuthorization(w, r, ar, client, user, scopes)
}
