package authz

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/clients"
)

const (
	pathAuthorize = "/oauth2/authorize"
	pathLogin     = "/login"
	pathConsent   = "/consent"
	pathLogout    = "/logout"
	pathAccount   = "/account"
)

var errAccessDenied = fosite.ErrAccessDenied.WithHint("The user denied the request.")

// handleAuthorize is the authorization endpoint (RFC 6749 §3.1). Postern
// checks the client and redirect URI itself before fosite sees the request:
// an unknown client or an unregistered redirect URI gets an error page and
// never a redirect (RFC 6749 §4.1.2.1), and redirect URIs match exactly,
// including the loopback port that fosite would let vary.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "The authorization endpoint accepts GET and POST.")
		return
	}
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The request parameters could not be read.")
		return
	}
	client, ok := s.checkAuthorizeTarget(r.Context(), w, r.Form)
	if !ok {
		return
	}
	ctx := r.Context()
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if err := authorizePolicy(ar, client); err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	auth := pendingAuth(r.Form)
	prompt := strings.Fields(r.Form.Get("prompt"))
	user := s.session(r)
	if user == nil || slices.Contains(prompt, "login") || s.tooOld(user, r.Form.Get("max_age")) {
		if slices.Contains(prompt, "none") {
			s.authorizeError(w, r, ar, fosite.ErrLoginRequired)
			return
		}
		// login_hint (OIDC Core §3.1.2.1) fills in the username field.
		s.renderLogin(w, r, http.StatusOK, client, auth, r.Form.Get("login_hint"), "")
		return
	}
	scopes := effectiveScopes(ar, client)
	if slices.Contains(prompt, "consent") || (!client.Trusted && !s.consented(ctx, user.Subject, client.ID, scopes)) {
		if slices.Contains(prompt, "none") {
			s.authorizeError(w, r, ar, fosite.ErrConsentRequired)
			return
		}
		s.renderConsent(w, r, client, user, auth, scopes)
		return
	}
	s.issueAuthorization(w, r, ar, client, user, scopes)
}

// checkAuthorizeTarget renders the error page for requests that cannot be
// answered with a redirect. Parameters must not repeat (RFC 6749 §3.1).
func (s *Server) checkAuthorizeTarget(ctx context.Context, w http.ResponseWriter, form url.Values) (*clients.Client, bool) {
	for k, v := range form {
		if len(v) > 1 {
			s.renderError(w, http.StatusBadRequest, "Invalid request", "Parameter \""+k+"\" is included more than once.")
			return nil, false
		}
	}
	id := form.Get("client_id")
	client, ok := s.directory.find(ctx, id)
	if !ok {
		s.renderError(w, http.StatusBadRequest, "Unknown application", "The application that sent you here is not registered with this server.")
		return nil, false
	}
	ru := form.Get("redirect_uri")
	switch {
	case ru == "" && len(client.RedirectURIs) != 1:
		s.renderError(w, http.StatusBadRequest, "Invalid request", "The request does not say where to return to (redirect_uri is missing).")
		return nil, false
	case ru != "" && !slices.Contains(client.RedirectURIs, ru):
		s.renderError(w, http.StatusBadRequest, "Invalid redirect", "The return address in the request is not registered for this application, so you will not be sent there.")
		return nil, false
	}
	return client, true
}

// authorizePolicy adds Postern's rules to fosite's checks, before the user
// is asked anything: public clients must use PKCE with S256, plain PKCE is
// refused for everyone, and only clients registered for the implicit grant
// may ask for tokens in the fragment.
func authorizePolicy(ar fosite.AuthorizeRequester, c *clients.Client) error {
	rts := ar.GetResponseTypes()
	form := ar.GetRequestForm()
	if rts.Has("code") {
		method := form.Get("code_challenge_method")
		challenge := form.Get("code_challenge")
		switch {
		case c.IsPublic() && challenge == "":
			return fosite.ErrInvalidRequest.WithHint("Clients without a secret must use PKCE (code_challenge with code_challenge_method=S256).")
		case challenge != "" && method != "S256":
			return fosite.ErrInvalidRequest.WithHint("code_challenge_method must be S256; plain is not accepted.")
		}
	}
	if (rts.Has("token") || rts.Has("id_token")) && !c.HasGrant(clients.GrantImplicit) {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not registered for the implicit grant.")
	}
	return nil
}

// authorizeError redirects the error to the client when fosite vouches for
// the redirect URI, and renders the error page otherwise.
func (s *Server) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	defer func() { noteOutcome(w, fosite.ErrorToRFC6749Error(err).ErrorField) }()
	if ar == nil || !ar.IsRedirectURIValid() {
		rfc := fosite.ErrorToRFC6749Error(err)
		s.renderError(w, rfc.CodeField, "Invalid request", rfc.GetDescription())
		return
	}
	// fosite fills in the response types only once they matched the
	// client; read them from the request itself.
	rts := fosite.Arguments(fosite.RemoveEmpty(strings.Split(ar.GetRequestForm().Get("response_type"), " ")))
	if errors.Is(err, fosite.ErrInvalidState) {
		// fosite's invalid_state is no RFC 6749 §4.1.2.1 code; with any
		// non-empty state accepted (see newProvider), only a missing one
		// gets here.
		err = fosite.ErrInvalidRequest.WithHint("The state parameter is required.")
	}
	if errors.Is(err, fosite.ErrUnsupportedResponseType) {
		// A response type the server knows but the client is not
		// registered for is the client's fault (RFC 6749 §4.1.2.1,
		// §4.2.2.1: unauthorized_client).
		if c, ok := ar.GetClient().(*clients.Client); ok {
			if (rts.ExactOne("code") && !c.HasGrant(clients.GrantAuthorizationCode)) || (rts.ExactOne("token") && !c.HasGrant(clients.GrantImplicit)) {
				err = fosite.ErrUnauthorizedClient.WithHint("The client is not registered for this response type.")
			}
		}
	}
	// An implicit request hears its error in the fragment (RFC 6749
	// §4.2.2.1), even when fosite rejected it before choosing a mode.
	if req, ok := ar.(*fosite.AuthorizeRequest); ok && req.ResponseMode == fosite.ResponseModeDefault {
		if rts.ExactOne("code") || len(rts) == 0 {
			req.SetDefaultResponseMode(fosite.ResponseModeQuery)
		} else {
			req.SetDefaultResponseMode(fosite.ResponseModeFragment)
		}
	}
	s.provider.WriteAuthorizeError(r.Context(), w, ar, err)
}

// pendingAuth serializes the authorization request for the login and
// consent forms. It only ever returns to this server's authorization
// endpoint, so it cannot become an open redirect; prompt is dropped so a
// prompt=login request does not loop back to the login page, and so is
// max_age, which the sign-in that comes first has just satisfied.
func pendingAuth(form url.Values) string {
	v := url.Values{}
	for k, vals := range form {
		switch k {
		case "prompt", "max_age", csrfField, "username", "password", "decision", "remember", "auth":
			continue
		}
		v[k] = vals
	}
	return v.Encode()
}

// effectiveScopes are the requested scopes, or every scope the client is
// registered for when it asked for none (RFC 6749 §3.3 default).
func effectiveScopes(ar fosite.Requester, c *clients.Client) []string {
	if s := ar.GetRequestedScopes(); len(s) > 0 {
		return s
	}
	return c.Scopes
}

func (s *Server) consented(ctx context.Context, subject, clientID string, scopes []string) bool {
	c, err := s.store.GetConsent(ctx, subject, clientID)
	if err != nil {
		return false
	}
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			return false
		}
	}
	return true
}

// issueAuthorization lets fosite mint the code (or implicit token) for the
// signed-in user and redirect back to the client.
func (s *Server) issueAuthorization(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *clients.Client, user *loginSession, scopes []string) {
	for _, sc := range scopes {
		ar.GrantScope(sc)
	}
	for _, aud := range ar.GetRequestedAudience() {
		ar.GrantAudience(aud)
	}
	sess := &Session{
		Subject:    user.Subject,
		Username:   user.Username,
		GrantType:  clients.GrantAuthorizationCode,
		GrantStart: s.cfg.Now().UTC(),
		CredFP:     user.CredFP,
		IP:         clientIP(r),
		UserAgent:  r.UserAgent(),
	}
	if len(user.Claims) > 0 {
		sess.Claims = make(map[string]any, len(user.Claims))
		for k, v := range user.Claims {
			sess.Claims[k] = v
		}
	}
	if slices.Contains(scopes, scopeOpenID) {
		requestedAt := ar.GetRequestedAt()
		if requestedAt.IsZero() {
			requestedAt = s.cfg.Now().UTC()
		}
		sess.ID = idClaims(user, scopes, requestedAt)
	}
	implicit := !ar.GetResponseTypes().Has("code")
	if implicit {
		sess.GrantType = clients.GrantImplicit
	}
	ctx := r.Context()
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if implicit {
		s.metrics.issued.WithLabelValues(clients.GrantImplicit).Inc()
	}
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// tooOld says whether the user's sign-in is older than max_age seconds
// (OIDC Core §3.1.2.1): then the user signs in again. A max_age that is
// not a number is ignored, as fosite ignores it.
func (s *Server) tooOld(user *loginSession, maxAge string) bool {
	if maxAge == "" {
		return false
	}
	secs, err := strconv.ParseInt(maxAge, 10, 64)
	if err != nil || secs < 0 {
		return false
	}
	authTime := time.Unix(0, user.AuthTime).Truncate(time.Second)
	return authTime.Add(time.Duration(secs) * time.Second).Before(s.cfg.Now())
}
