package authz

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gorilla/mux"

	"github.com/postern-auth/postern/samlsp"
)

// SAML login: the login page links to GET /saml/{id}/login, which sends
// the browser to the IdP with a signed AuthnRequest; the IdP posts its
// response to POST /saml/{id}/acs, which checks it (samlsp.Provider),
// starts a login session like the login form does and resumes the pending
// authorization request. GET /saml/{id}/metadata is what the IdP is
// configured from.

const (
	samlCookieName = "postern_saml"
	samlCookiePath = "/saml/"
	// samlPendingTTL bounds how long a sign-in at the IdP may take.
	samlPendingTTL = 10 * time.Minute
	// A few sign-ins may be pending at once (several tabs); the cookie
	// stays well under the 4 KiB browsers keep.
	maxSAMLPending     = 4
	maxSAMLCookieBytes = 3600
)

// samlPending binds an AuthnRequest to the browser that started it: the
// ACS accepts a response only to a request ID found in this browser's
// cookie, and resumes the authorization request saved with it. The cookie
// is sealed like the session cookie, so it can be neither read nor forged;
// the RelayState is not used, since anyone can set it.
type samlPending struct {
	RequestID string `json:"id"`
	Provider  string `json:"p"`
	Auth      string `json:"a,omitempty"` // the pending authorization request
	Expires   int64  `json:"exp"`
}

// samlCookie carries the pending sign-ins. The ACS is reached by a
// cross-site POST from the IdP, on which browsers withhold SameSite=Lax
// (and Strict) cookies. Over https the cookie is therefore SameSite=None;
// Secure. Browsers refuse SameSite=None without Secure, so over plain http
// (development) it has no SameSite attribute at all and gets the browser's
// default: Firefox and Safari send it; Chrome treats it as Lax but, for
// two minutes after it was set, still sends it on a top-level cross-site
// POST ("Lax+POST"). An IdP on the same site (localhost, 127.0.0.1 on
// another port) is same-site, where every SameSite value is sent. HttpOnly,
// and scoped to /saml/ so no other endpoint ever receives it.
func (s *Server) samlCookie(value string, maxAge int) *http.Cookie {
	c := &http.Cookie{Name: samlCookieName, Value: value, Path: samlCookiePath, MaxAge: maxAge, HttpOnly: true}
	if s.jar.secure {
		c.Secure = true
		c.SameSite = http.SameSiteNoneMode
	}
	return c
}

// samlPendings returns this browser's unexpired pending sign-ins.
func (s *Server) samlPendings(r *http.Request) []samlPending {
	c, err := r.Cookie(samlCookieName)
	if err != nil {
		return nil
	}
	var all []samlPending
	if err := s.jar.open(samlCookieName, c.Value, &all); err != nil {
		return nil
	}
	now := s.cfg.Now().Unix()
	return slices.DeleteFunc(all, func(p samlPending) bool { return now >= p.Expires })
}

// setSAMLPendings stores pending sign-ins, dropping the oldest to stay
// within bounds; it reports false when even the newest alone is too big.
func (s *Server) setSAMLPendings(w http.ResponseWriter, all []samlPending) bool {
	if len(all) == 0 {
		http.SetCookie(w, s.samlCookie("", -1))
		return true
	}
	if len(all) > maxSAMLPending {
		all = all[len(all)-maxSAMLPending:]
	}
	for len(all) > 0 {
		v, err := s.jar.seal(samlCookieName, all)
		if err == nil && len(v) <= maxSAMLCookieBytes {
			http.SetCookie(w, s.samlCookie(v, int(samlPendingTTL/time.Second)))
			return true
		}
		all = all[1:]
	}
	return false
}

// samlLink is a provider button on the login page.
type samlLink struct {
	Name string
	URL  string
}

func (s *Server) samlLinks(auth string, force bool) []samlLink {
	links := make([]samlLink, 0, len(s.samlOrder))
	for _, p := range s.samlOrder {
		v := url.Values{}
		if auth != "" {
			v.Set("auth", auth)
		}
		if force {
			// prompt=login: the IdP must authenticate the user afresh
			// too, not answer from its own session (ForceAuthn).
			v.Set("force", "1")
		}
		u := "/saml/" + url.PathEscape(p.ID()) + "/login"
		if len(v) > 0 {
			u += "?" + v.Encode()
		}
		links = append(links, samlLink{Name: p.DisplayName(), URL: u})
	}
	return links
}

// samlProvider finds the provider the path names, or renders a 404 page.
func (s *Server) samlProvider(w http.ResponseWriter, r *http.Request) (*samlsp.Provider, bool) {
	p, ok := s.saml[mux.Vars(r)["id"]]
	if !ok {
		s.renderError(w, http.StatusNotFound, "Unknown sign-in provider", "This server has no single sign-on provider of that name.")
	}
	return p, ok
}

// handleSAMLMetadata serves the SP metadata to register at the IdP.
func (s *Server) handleSAMLMetadata(w http.ResponseWriter, r *http.Request) {
	p, ok := s.samlProvider(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use GET.")
		return
	}
	body, err := p.SPMetadata()
	if err != nil {
		s.log.Error("SAML metadata", "provider", p.ID(), "error", err)
		s.renderError(w, http.StatusServiceUnavailable, "Something went wrong", "Please try again.")
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(body)
}

// handleSAMLLogin sends the browser to the IdP, remembering the request
// and the pending authorization request in the SAML cookie.
func (s *Server) handleSAMLLogin(w http.ResponseWriter, r *http.Request) {
	p, ok := s.samlProvider(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use the button on the sign-in page.")
		return
	}
	auth := r.URL.Query().Get("auth")
	_, q, ok := s.clientOfAuth(r.Context(), auth)
	if !ok {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The sign-in link is malformed.")
		return
	}
	if q != nil {
		auth = pendingAuth(q)
	}
	target, requestID, err := p.StartLogin(r.URL.Query().Get("force") == "1")
	if err != nil {
		if !errors.Is(err, samlsp.ErrNotReady) {
			s.log.Error("start SAML login", "provider", p.ID(), "error", err)
		}
		s.renderError(w, http.StatusServiceUnavailable, p.DisplayName()+" is unavailable", "Single sign-on with "+p.DisplayName()+" is not available right now. Try again later, or sign in another way.")
		return
	}
	pending := append(s.samlPendings(r), samlPending{RequestID: requestID, Provider: p.ID(), Auth: auth, Expires: s.cfg.Now().Add(samlPendingTTL).Unix()})
	if !s.setSAMLPendings(w, pending) {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The application's request is too long to sign in with "+p.DisplayName()+".")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// handleSAMLACS is the assertion consumer service (HTTP-POST binding).
func (s *Server) handleSAMLACS(w http.ResponseWriter, r *http.Request) {
	p, ok := s.samlProvider(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "The identity provider must post its response here.")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		s.samlRefused(w, r, p, &samlsp.Error{Reason: samlsp.ReasonMalformed, Err: fmt.Errorf("content type %q", r.Header.Get("Content-Type"))})
		return
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.log.Warn("SAML login refused", "provider", p.ID(), "reason", "body too large", "limit", tooBig.Limit)
			s.renderError(w, http.StatusRequestEntityTooLarge, "Sign-in failed", "The response from "+p.DisplayName()+" is too large.")
			return
		}
		s.samlRefused(w, r, p, &samlsp.Error{Reason: samlsp.ReasonMalformed, Err: err})
		return
	}
	resp := r.PostForm["SAMLResponse"]
	if len(resp) != 1 || resp[0] == "" {
		s.samlRefused(w, r, p, &samlsp.Error{Reason: samlsp.ReasonMalformed, Err: errors.New("no single SAMLResponse field")})
		return
	}
	pending := s.samlPendings(r)
	var ids []string
	for _, pd := range pending {
		if pd.Provider == p.ID() {
			ids = append(ids, pd.RequestID)
		}
	}
	login, err := p.Consume(r.Context(), resp[0], ids)
	var refused *samlsp.Error
	switch {
	case errors.As(err, &refused):
		s.samlRefused(w, r, p, refused)
		return
	case err != nil:
		s.log.Error("SAML login", "provider", p.ID(), "error", err)
		s.renderError(w, http.StatusServiceUnavailable, "Something went wrong", "Please try again.")
		return
	}

	auth := ""
	if i := slices.IndexFunc(pending, func(pd samlPending) bool { return pd.RequestID == login.RequestID && pd.Provider == p.ID() }); i >= 0 && login.RequestID != "" {
		auth = pending[i].Auth
		s.setSAMLPendings(w, slices.Delete(pending, i, i+1))
	}
	c, q, _ := s.clientOfAuth(r.Context(), auth)
	// The username is the prefixed subject too: nothing downstream may
	// confuse corp:alice with the local user alice.
	if err := s.jar.startSession(w, loginSession{Subject: login.Subject, Username: login.Subject, Claims: login.Claims, AMR: amrSAML}); err != nil {
		s.log.Error("start login session", "error", err)
		s.renderError(w, http.StatusServiceUnavailable, "Something went wrong", "Please try again.")
		return
	}
	s.audit(r, "login", login.Subject, clientIDOf(c), "saml:"+p.ID())
	target := pathAccount
	if q != nil {
		target = pathAuthorize + "?" + pendingAuth(q)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// samlRefused answers a refused response: an error page, a warning in the
// log (never the assertion) and, when the assertion named a user, an audit
// event in that user's history.
func (s *Server) samlRefused(w http.ResponseWriter, r *http.Request, p *samlsp.Provider, e *samlsp.Error) {
	status := http.StatusForbidden
	switch e.Reason {
	case samlsp.ReasonMalformed:
		status = http.StatusBadRequest
	case samlsp.ReasonNotReady:
		status = http.StatusServiceUnavailable
	}
	attrs := []any{"provider", p.ID(), "reason", e.Reason, "ip", clientIP(r)}
	if e.Subject != "" {
		attrs = append(attrs, "subject", e.Subject)
	}
	if e.Err != nil {
		attrs = append(attrs, "detail", e.Err.Error())
	}
	s.log.Warn("SAML login refused", attrs...)
	s.audit(r, "saml_login_failed", e.Subject, "", "provider="+p.ID()+" reason="+e.Reason)
	s.renderError(w, status, "Sign-in failed", p.DisplayName()+" could not sign you in: "+e.Reason+". You are not signed in; go back to the application and start again.")
}
