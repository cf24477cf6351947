package authz

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/storage"
)

// readPageForm parses a POSTed HTML form (bounded by ServeHTTP).
func readPageForm(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return false
	}
	return r.ParseForm() == nil
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, c *clients.Client, auth, username, msg string) {
	d := pageData{Title: "Sign in", CSRF: s.jar.csrfToken(w, r), Auth: auth, Username: username, Error: msg, Then: loginThen(r), Providers: s.samlLinks(auth, slices.Contains(strings.Fields(r.URL.Query().Get("prompt")), "login"))}
	var targets []string
	if c != nil {
		d.ClientName = clientName(c)
		for _, u := range c.RedirectURIs {
			targets = append(targets, originOf(u))
		}
	}
	s.render(w, status, "login", d, targets...)
}

func clientName(c *clients.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// clientOfAuth finds the client a pending authorization request names.
func (s *Server) clientOfAuth(ctx context.Context, auth string) (*clients.Client, url.Values, bool) {
	if auth == "" {
		return nil, nil, true
	}
	q, err := url.ParseQuery(auth)
	if err != nil {
		return nil, nil, false
	}
	c, ok := s.directory.find(ctx, q.Get("client_id"))
	return c, q, ok
}

// handleLogin shows and checks the login form. After a good login the
// browser goes to this server's authorization endpoint (resuming the
// request) or to the account page: the target is never taken from the
// request, so the form cannot be used as an open redirect.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		c, _, ok := s.clientOfAuth(r.Context(), r.URL.Query().Get("auth"))
		if !ok {
			s.renderError(w, http.StatusBadRequest, "Invalid request", "The sign-in link is malformed.")
			return
		}
		s.renderLogin(w, r, http.StatusOK, c, r.URL.Query().Get("auth"), "", "")
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use the sign-in form.")
		return
	}
	if !readPageForm(r) {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The form could not be read.")
		return
	}
	auth := r.PostForm.Get("auth")
	c, q, ok := s.clientOfAuth(r.Context(), auth)
	if !ok {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The sign-in form refers to an unknown application.")
		return
	}
	username := r.PostForm.Get("username")
	if !s.jar.checkCSRF(r) {
		s.renderLogin(w, r, http.StatusForbidden, c, auth, username, "Your sign-in form expired. Please try again.")
		return
	}
	ctx := r.Context()
	u, err := s.users.Authenticate(ctx, username, r.PostForm.Get("password"), clientIP(r))
	var throttled *identity.ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Round(time.Second)/time.Second)+1))
		msg := "Too many failed attempts. Wait a moment before trying again."
		if throttled.Busy {
			msg = "Another sign-in for this account is in progress. Try again in a moment."
		}
		s.renderLogin(w, r, http.StatusTooManyRequests, c, auth, username, msg)
		return
	case err != nil:
		s.audit(r, "login_failed", username, clientIDOf(c), "")
		s.renderLogin(w, r, http.StatusOK, c, auth, username, "Invalid username or password.")
		return
	}
	fp, _ := s.users.Fingerprint(u.Username)
	if err := s.jar.startSession(w, loginSession{Subject: u.Username, Username: u.Username, Claims: u.Claims, CredFP: fp, AMR: amrPassword}); err != nil {
		s.log.Error("start login session", "error", err)
		s.renderError(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	s.audit(r, "login", u.Username, clientIDOf(c), "")
	target := pathAccount
	if loginThen(r) == "portal" {
		target = pathPortal
	}
	if q != nil {
		target = pathAuthorize + "?" + pendingAuth(q)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// loginThen is where a sign-in without a pending authorization goes: the
// portal when it sent the user, else the account page. Only fixed values
// pass, so the parameter cannot make the form an open redirect.
func loginThen(r *http.Request) string {
	then := r.URL.Query().Get("then")
	if r.Method == http.MethodPost {
		then = r.PostForm.Get("then")
	}
	if then == "portal" {
		return then
	}
	return ""
}

func clientIDOf(c *clients.Client) string {
	if c == nil {
		return ""
	}
	return c.ID
}

// handleLogout ends the login session (POST with CSRF: a cross-site image
// must not sign a user out). The store remembers the session ID until the
// session would have expired, so a copy of the cookie is worth nothing
// either, on every replica.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !readPageForm(r) {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Sign out with the button on your account page.")
		return
	}
	if !s.jar.checkCSRF(r) {
		s.renderError(w, http.StatusForbidden, "Invalid request", "The form expired. Go back, reload and try again.")
		return
	}
	if !s.signOut(w, r, "logout", "") {
		return
	}
	http.Redirect(w, r, pathLogin, http.StatusSeeOther)
}

// audit records a security event for a user; only known users get events,
// so a spray of invented names cannot grow the log.
func (s *Server) audit(r *http.Request, typ, subject, clientID, detail string) {
	if subject == "" {
		return
	}
	if _, known := s.users.Lookup(subject); !known && typ == "login_failed" {
		return
	}
	ev := storage.Event{Time: s.cfg.Now().UTC(), Type: typ, Subject: subject, ClientID: clientID, IP: clientIP(r), UserAgent: r.UserAgent(), Detail: detail}
	if err := s.store.AppendEvent(r.Context(), ev); err != nil {
		s.log.Error("record audit event", "type", typ, "error", err)
	}
}

// session returns the signed-in user while their account still stands: a
// user removed from the configuration, a changed password or a removed SAML
// provider ends every session at once, not when the cookie expires; so do
// a sign-out (the session ID is revoked in the store) and "sign out
// everywhere" (the subject's sessions that started at or before an
// instant are void).
func (s *Server) session(r *http.Request) *loginSession {
	u := s.jar.session(r)
	if u == nil || !s.subjectActive(u.Subject, u.CredFP) || !s.sessionNotEnded(r.Context(), u) {
		return nil
	}
	return u
}

// sessionNotEnded asks the store whether u was signed out, on this replica
// or another. That is two lookups by primary key, one round trip each on
// PostgreSQL: page requests are paced by people, not the token endpoint's
// hot path, so the contract keeps two plain methods rather than a combined
// one. A store error fails closed: the user is treated as signed out and
// can sign in again, which beats honouring a session that may have been
// revoked.
func (s *Server) sessionNotEnded(ctx context.Context, u *loginSession) bool {
	if u.SID == "" {
		// A cookie from before session IDs cannot be revoked, so it is not
		// honoured: its user signs in once more.
		return false
	}
	revoked, err := s.store.SessionRevoked(ctx, u.SID)
	if err == nil && revoked {
		return false
	}
	var endedAt time.Time
	if err == nil {
		endedAt, err = s.store.SubjectSessionsEndedAt(ctx, u.Subject)
	}
	if err != nil {
		s.log.Warn("checking the login session failed; treating it as signed out", "subject", u.Subject, "error", err)
		return false
	}
	return endedAt.IsZero() || time.Unix(0, u.AuthTime).After(endedAt)
}

// subjectActive says whether a subject may still use what it was given:
// a local user with the same credential, or a user of a SAML provider that
// is still configured.
func (s *Server) subjectActive(subject, credFP string) bool {
	if strings.Contains(subject, ":") {
		for _, p := range s.samlOrder {
			if strings.HasPrefix(subject, p.SubjectPrefix()+":") {
				return true
			}
		}
		return false
	}
	fp, ok := s.users.Fingerprint(subject)
	return ok && fp == credFP
}
