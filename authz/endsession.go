package authz

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/postern-auth/postern/clients"
)

const pathEndSession = "/oauth2/logout"

// logoutRequest is an RP-Initiated Logout 1.0 request once checked: the
// client it names (if any) and where the browser may go afterwards.
type logoutRequest struct {
	client   *clients.Client
	redirect string // registered post_logout_redirect_uri with state, or ""
	hint     *idTokenClaims
}

// handleEndSession is the end_session_endpoint (OpenID Connect
// RP-Initiated Logout 1.0). The browser is sent back only to a
// post_logout_redirect_uri registered, exactly, for the client that the
// id_token_hint or client_id names: anything else ends on this server's
// page, never on an unchecked URL. With a valid hint for the signed-in
// user the sign-out happens at once; otherwise the user confirms it on a
// page with a CSRF-protected form, so a link cannot sign anyone out.
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	var params url.Values
	switch r.Method {
	case http.MethodGet:
		params = r.URL.Query()
	case http.MethodPost:
		if !readPageForm(r) {
			s.renderError(w, http.StatusBadRequest, "Invalid request", "The sign-out request could not be read.")
			return
		}
		params = r.PostForm
		if params.Get("decision") != "" {
			s.confirmEndSession(w, r)
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "The sign-out endpoint accepts GET and POST.")
		return
	}
	lr, msg := s.checkLogout(r, params)
	if msg != "" {
		s.renderError(w, http.StatusBadRequest, "Invalid sign-out request", msg)
		return
	}
	user := s.session(r)
	switch {
	case user == nil:
		// Nothing to end here; the client still gets its user back.
		s.loggedOut(w, r, lr)
	case lr.hint != nil && lr.hint.Subject == user.Subject:
		if s.signOut(w, r, "rp_logout", clientIDOf(lr.client)) {
			s.loggedOut(w, r, lr)
		}
	default:
		d := pageData{Title: "Sign out", CSRF: s.jar.csrfToken(w, r), Auth: logoutParams(params).Encode(), Username: user.Username}
		if lr.client != nil {
			d.ClientName = clientName(lr.client)
		}
		var targets []string
		if lr.redirect != "" {
			// CSP form-action governs where the confirmed form may lead.
			targets = append(targets, originOf(lr.redirect))
		}
		s.render(w, http.StatusOK, "logout", d, targets...)
	}
}

// confirmEndSession is the confirmation form's POST.
func (s *Server) confirmEndSession(w http.ResponseWriter, r *http.Request) {
	if !s.jar.checkCSRF(r) {
		s.renderError(w, http.StatusForbidden, "Invalid request", "The form expired. Go back, reload and try again.")
		return
	}
	params, err := url.ParseQuery(r.PostForm.Get("auth"))
	if err != nil {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The sign-out form is malformed.")
		return
	}
	lr, msg := s.checkLogout(r, params)
	if msg != "" {
		s.renderError(w, http.StatusBadRequest, "Invalid sign-out request", msg)
		return
	}
	if s.jar.session(r) == nil || s.signOut(w, r, "rp_logout", clientIDOf(lr.client)) {
		s.loggedOut(w, r, lr)
	}
}

// logoutParams are the parameters the confirmation form carries back.
func logoutParams(p url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state"} {
		if v := p.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// checkLogout validates the request; msg says why it cannot be honoured.
func (s *Server) checkLogout(r *http.Request, p url.Values) (logoutRequest, string) {
	for k, v := range p {
		if len(v) > 1 {
			return logoutRequest{}, "Parameter \"" + k + "\" is included more than once."
		}
	}
	var lr logoutRequest
	if raw := p.Get("id_token_hint"); raw != "" {
		h, err := idTokenSigner{keys: s.keys, now: s.cfg.Now}.readHint(r.Context(), raw)
		if err != nil {
			s.log.Debug("end session: id_token_hint refused", "error", err)
			return lr, "The request carries an ID token this server did not issue."
		}
		lr.hint = &h
	}
	clientID := p.Get("client_id")
	switch {
	case clientID != "" && lr.hint != nil && !slices.Contains(lr.hint.Audience, clientID):
		return lr, "The ID token in the request was issued to another application."
	case clientID == "" && lr.hint != nil && len(lr.hint.Audience) == 1:
		clientID = lr.hint.Audience[0]
	}
	if clientID != "" {
		c, ok := s.directory.find(r.Context(), clientID)
		if !ok {
			return lr, "The application that sent you here is not registered with this server."
		}
		lr.client = c
	}
	if u := p.Get("post_logout_redirect_uri"); u != "" {
		if lr.client == nil || !slices.Contains(lr.client.PostLogoutRedirectURIs, u) {
			return lr, "The return address in the request is not registered for this application, so you will not be sent there."
		}
		if st := p.Get("state"); st != "" {
			v, _ := url.Parse(u)
			q := v.Query()
			q.Set("state", st)
			v.RawQuery = q.Encode()
			u = v.String()
		}
		lr.redirect = u
	}
	return lr, ""
}

// loggedOut sends the browser back to the client, or shows that the user is
// signed out.
func (s *Server) loggedOut(w http.ResponseWriter, r *http.Request, lr logoutRequest) {
	if lr.redirect != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, lr.redirect, http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "loggedout", pageData{Title: "Signed out", Notice: "You are signed out."})
}

// signOut ends this browser's login session (the store remembers its ID,
// so no copy of the cookie outlives it), audits it and tells the clients
// of the user's grants over the back channel. The delivery runs on its
// own: a slow or dead client never holds up the user. It reports false,
// having answered, when the sign-out could not be recorded.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request, event, clientID string) bool {
	live := s.session(r)
	c := s.jar.session(r)
	if c != nil && c.SID != "" {
		if err := s.store.RevokeSession(r.Context(), c.SID, time.Unix(c.Expires, 0)); err != nil {
			s.log.Error("revoke login session", "subject", c.Subject, "error", err)
			s.jar.endSession(w)
			s.renderError(w, http.StatusServiceUnavailable, "Sign-out incomplete",
				"This browser is signed out, but the server could not record it just now. If someone else may have a copy of your session, sign in again later and use \"Sign out everywhere\" on your account page.")
			return false
		}
	}
	if live != nil {
		s.audit(r, event, live.Subject, clientID, "")
		s.backchannel.notify(r, live.Subject, sidOf(live.SID))
	}
	s.jar.endSession(w)
	return true
}
