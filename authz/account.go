package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/postern-auth/postern/storage"
)

// accountView is what the account page shows a signed-in user.
type accountView struct {
	Username string
	// Developer: the user may use the developer portal (a link to it).
	Developer bool
	Grants    []grantView
	Consents  []consentView
	Events    []eventView
}

// grantView is one row per grant (authorization), not per token: the user
// thinks in apps, and revoking an app ends all of its tokens at once.
type grantView struct {
	ID         string      `json:"id"`
	ClientID   string      `json:"client_id"`
	ClientName string      `json:"client_name"`
	Scopes     []string    `json:"scopes"`
	Access     []scopeView `json:"-"` // Scopes, described for the page
	GrantType  string      `json:"grant_type"`
	How        string      `json:"-"`
	Device     string      `json:"device,omitempty"`
	UserAgent  string      `json:"user_agent,omitempty"`
	IP         string      `json:"ip,omitempty"`

	FirstAt   time.Time `json:"first_issued"`
	LastAt    time.Time `json:"last_used"`
	ExpiresAt time.Time `json:"expires_at"`

	First, FirstISO, Last, LastISO, Expires, ExpiresISO string `json:"-"`
}

type consentView struct {
	ClientID, ClientName string
	Scopes               []scopeView
	Since, SinceISO      string
}

type eventView struct {
	When, WhenISO, What, IP string
}

var grantHow = map[string]string{
	"authorization_code": "Signed in through the app",
	"implicit":           "Signed in through the app (browser token)",
	"password":           "Password given to the app",
}

// showTime formats for people and for <time datetime>. The non-breaking
// spaces keep "30 Nov 2026" and "08:05 UTC" from breaking across lines in a
// narrow table cell.
func showTime(t time.Time) (string, string) {
	t = t.UTC()
	return t.Format("2\u00a0Jan\u00a02006 15:04\u00a0UTC"), t.Format(time.RFC3339)
}

// userGrants lists a subject's live grants from one read of the subject
// index. A grant is live while one of its access or refresh tokens is
// unexpired and unredeemed; codes and used refresh tokens only date it.
func (s *Server) userGrants(ctx context.Context, subject string) ([]grantView, error) {
	toks, err := s.store.SubjectTokens(ctx, subject)
	if err != nil {
		return nil, err
	}
	type acc struct {
		first, last, expires time.Time
		latest               *storage.Token
	}
	byGrant := map[string]*acc{}
	var order []string
	for i := range toks {
		t := &toks[i]
		if t.RequestID == "" || t.Subject != subject {
			continue
		}
		a := byGrant[t.RequestID]
		if a == nil {
			a = &acc{first: t.CreatedAt, last: t.CreatedAt}
			byGrant[t.RequestID] = a
			order = append(order, t.RequestID)
		}
		if t.CreatedAt.Before(a.first) {
			a.first = t.CreatedAt
		}
		if t.CreatedAt.After(a.last) {
			a.last = t.CreatedAt
		}
		live := t.Active && (t.Kind == storage.AccessToken || t.Kind == storage.RefreshToken)
		if !live {
			continue
		}
		if t.ExpiresAt.After(a.expires) {
			a.expires = t.ExpiresAt
		}
		if a.latest == nil || t.CreatedAt.After(a.latest.CreatedAt) {
			a.latest = t
		}
	}
	out := make([]grantView, 0, len(order))
	for _, id := range order {
		a := byGrant[id]
		if a.latest == nil {
			continue
		}
		var sr storedRequest
		if err := json.Unmarshal(a.latest.Data, &sr); err != nil {
			return nil, fmt.Errorf("decode grant %s: %w", id, err)
		}
		var sess Session
		if len(sr.Session) > 0 {
			_ = json.Unmarshal(sr.Session, &sess)
		}
		g := grantView{ID: id, ClientID: sr.ClientID, ClientName: sr.ClientID, Scopes: sr.GrantedScope, GrantType: sess.GrantType,
			How: grantHow[sess.GrantType], Device: describeUA(sess.UserAgent), UserAgent: sess.UserAgent, IP: sess.IP, FirstAt: a.first, LastAt: a.last, ExpiresAt: a.expires}
		if c, ok := s.directory.find(ctx, sr.ClientID); ok {
			g.ClientName = clientName(c)
		}
		g.Access = s.describeScopes(g.Scopes)
		if g.How == "" {
			g.How = sess.GrantType
		}
		g.First, g.FirstISO = showTime(a.first)
		g.Last, g.LastISO = showTime(a.last)
		g.Expires, g.ExpiresISO = showTime(a.expires)
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b grantView) int { return b.LastAt.Compare(a.LastAt) })
	return out, nil
}

var eventText = map[string]string{
	"login":                    "Signed in",
	"login_failed":             "Failed sign-in attempt",
	"logout":                   "Signed out",
	"sessions_ended":           "You signed out on every device",
	"consent_denied":           "You denied access to %s",
	"grant_revoked":            "You revoked the access of %s",
	"consent_revoked":          "You removed the remembered permission of %s",
	"refresh_token_reuse":      "A refresh token of %s was used twice; we signed the app out to be safe",
	"authorization_code_reuse": "A sign-in code of %s was used twice; we revoked the app's access to be safe",
	"refresh_retried":          "%s repeated a refresh it had lost the answer to and was given the same tokens again",
	"saml_login_failed":        "A single sign-on response naming you was refused",
}

func (s *Server) describeEvent(ctx context.Context, e storage.Event) string {
	if text, ok := s.describeAppEvent(ctx, e); ok {
		return text
	}
	text, ok := eventText[e.Type]
	if !ok {
		text = strings.ReplaceAll(e.Type, "_", " ")
	}
	if strings.Contains(text, "%s") {
		name := e.ClientID
		if c, ok := s.directory.find(ctx, e.ClientID); ok {
			name = clientName(c)
		}
		if name == "" {
			name = "an app"
		}
		text = fmt.Sprintf(text, name)
	} else if e.ClientID != "" {
		if c, ok := s.directory.find(ctx, e.ClientID); ok {
			text += " (" + clientName(c) + ")"
		}
	}
	return text
}

// describeAppEvent words the developer portal's events: the app may be
// gone by now, so its name is the one the event recorded.
func (s *Server) describeAppEvent(ctx context.Context, e storage.Event) (string, bool) {
	name := func() string {
		if c, ok := s.directory.find(ctx, e.ClientID); ok {
			return clientName(c)
		}
		return e.ClientID
	}
	api := func() string {
		if a, ok := s.cfg.Catalog.API(e.Detail); ok {
			return a.Name
		}
		return e.Detail
	}
	switch e.Type {
	case "app_created":
		return "You created the app " + e.Detail, true
	case "app_deleted":
		return "You deleted the app " + e.Detail + " and revoked its tokens", true
	case "app_secret_rotated":
		return "You rotated the secret of " + name(), true
	case "app_subscribed":
		return "You subscribed " + name() + " to " + api(), true
	case "app_unsubscribed":
		return "You unsubscribed " + name() + " from " + api() + " and revoked its tokens for it", true
	}
	return "", false
}

// handleAccount renders the self-service page.
func (s *Server) handleAccount(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use the buttons on the account page.")
		return
	}
	user := s.session(r)
	if user == nil {
		http.Redirect(w, r, pathLogin, http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	view := &accountView{Username: user.Username, Developer: s.isDeveloper(user)}
	var err error
	if view.Grants, err = s.userGrants(ctx, user.Subject); err != nil {
		s.accountFailure(w, err)
		return
	}
	consents, err := s.store.ListConsents(ctx, user.Subject)
	if err != nil {
		s.accountFailure(w, err)
		return
	}
	for _, c := range consents {
		cv := consentView{ClientID: c.ClientID, ClientName: c.ClientID, Scopes: s.describeScopes(c.Scopes)}
		if cl, ok := s.directory.find(ctx, c.ClientID); ok {
			cv.ClientName = clientName(cl)
		}
		cv.Since, cv.SinceISO = showTime(c.GrantedAt)
		view.Consents = append(view.Consents, cv)
	}
	events, err := s.store.ListEvents(ctx, user.Subject, 50)
	if err != nil {
		s.accountFailure(w, err)
		return
	}
	for _, e := range events {
		ev := eventView{What: s.describeEvent(ctx, e), IP: e.IP}
		ev.When, ev.WhenISO = showTime(e.Time)
		view.Events = append(view.Events, ev)
	}
	s.render(w, http.StatusOK, "account", pageData{
		Title: "Your account", Wide: true, CSRF: s.jar.csrfToken(w, r), Account: view,
		Notice: accountNotices[r.URL.Query().Get("done")],
	})
}

// accountNotices are fixed texts: the query only picks one, so a crafted
// link cannot put words on the page.
var accountNotices = map[string]string{
	"revoked":     "Access revoked. The app's tokens no longer work, and it must ask you again before it gets new ones.",
	"revoked-all": "All apps were signed out.",
	"forgotten":   "Permission forgotten. The app will ask again.",
}

func (s *Server) accountFailure(w http.ResponseWriter, err error) {
	s.log.Error("account page", "error", err)
	s.renderError(w, http.StatusServiceUnavailable, "Try again later", "Your account could not be loaded just now.")
}

// accountPost checks what every account form needs: POST, CSRF, a session.
func (s *Server) accountPost(w http.ResponseWriter, r *http.Request) *loginSession {
	if !readPageForm(r) {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use the buttons on the account page.")
		return nil
	}
	user := s.session(r)
	if user == nil {
		http.Redirect(w, r, pathLogin, http.StatusSeeOther)
		return nil
	}
	if !s.jar.checkCSRF(r) {
		s.renderError(w, http.StatusForbidden, "Invalid request", "The form expired. Go back, reload the page and try again.")
		return nil
	}
	return user
}

var errNotYours = errors.New("no such grant")

// revokeUserGrant ends one grant after checking that every token in it
// belongs to subject. Anything else, including another user's grant, is
// indistinguishable from a grant that does not exist.
func (s *Server) revokeUserGrant(ctx context.Context, r *http.Request, subject, grantID string) error {
	if grantID == "" {
		return errNotYours
	}
	toks, err := s.store.GrantTokens(ctx, grantID)
	if err != nil {
		return err
	}
	if len(toks) == 0 {
		return errNotYours
	}
	for _, t := range toks {
		if t.Subject != subject {
			return errNotYours
		}
	}
	if _, err := s.store.RevokeGrant(ctx, grantID); err != nil {
		return err
	}
	// An app the user cut off must ask again rather than silently get new
	// tokens through a remembered consent and a live login session.
	if err := s.store.DeleteConsent(ctx, subject, toks[0].ClientID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.Error("forget consent of revoked grant", "error", err)
	}
	ev := storage.Event{Time: s.cfg.Now().UTC(), Type: "grant_revoked", Subject: subject, ClientID: toks[0].ClientID, RequestID: grantID, IP: clientIP(r), UserAgent: r.UserAgent()}
	if err := s.store.AppendEvent(ctx, ev); err != nil {
		s.log.Error("record audit event", "type", ev.Type, "error", err)
	}
	return nil
}

func (s *Server) handleRevokeGrant(w http.ResponseWriter, r *http.Request) {
	user := s.accountPost(w, r)
	if user == nil {
		return
	}
	err := s.revokeUserGrant(r.Context(), r, user.Subject, r.PostForm.Get("grant"))
	switch {
	case errors.Is(err, errNotYours):
		s.renderError(w, http.StatusNotFound, "Not found", "That app access does not exist or was already revoked.")
	case err != nil:
		s.accountFailure(w, err)
	default:
		http.Redirect(w, r, pathAccount+"?done=revoked", http.StatusSeeOther)
	}
}

func (s *Server) handleRevokeAll(w http.ResponseWriter, r *http.Request) {
	user := s.accountPost(w, r)
	if user == nil {
		return
	}
	ctx := r.Context()
	grants, err := s.userGrants(ctx, user.Subject)
	if err != nil {
		s.accountFailure(w, err)
		return
	}
	for _, g := range grants {
		if err := s.revokeUserGrant(ctx, r, user.Subject, g.ID); err != nil && !errors.Is(err, errNotYours) {
			s.accountFailure(w, err)
			return
		}
	}
	http.Redirect(w, r, pathAccount+"?done=revoked-all", http.StatusSeeOther)
}

// handleEndAllSessions signs the user out in every browser and on every
// device, this one included: the store voids every session of the subject
// that started until now, on every replica, for as long as such a session
// could last. Apps keep their tokens; "Revoke all apps" is for those.
func (s *Server) handleEndAllSessions(w http.ResponseWriter, r *http.Request) {
	user := s.accountPost(w, r)
	if user == nil {
		return
	}
	now := s.cfg.Now()
	// A session lasts SessionTTL, so none that started by now outlives the
	// record. (After lowering SessionTTL, sessions issued under the longer
	// one may outlive it by the difference.)
	if err := s.store.EndSubjectSessions(r.Context(), user.Subject, now, now.Add(s.cfg.SessionTTL)); err != nil {
		s.log.Error("end all sessions", "subject", user.Subject, "error", err)
		s.renderError(w, http.StatusServiceUnavailable, "Try again later", "You could not be signed out everywhere just now. You are still signed in.")
		return
	}
	s.audit(r, "sessions_ended", user.Subject, "", "")
	s.backchannel.notify(r, user.Subject, "")
	s.jar.endSession(w)
	http.Redirect(w, r, pathLogin, http.StatusSeeOther)
}

func (s *Server) handleForgetConsent(w http.ResponseWriter, r *http.Request) {
	user := s.accountPost(w, r)
	if user == nil {
		return
	}
	clientID := r.PostForm.Get("client")
	err := s.store.DeleteConsent(r.Context(), user.Subject, clientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.renderError(w, http.StatusNotFound, "Not found", "That permission does not exist or was already removed.")
	case err != nil:
		s.accountFailure(w, err)
	default:
		s.audit(r, "consent_revoked", user.Subject, clientID, "")
		http.Redirect(w, r, pathAccount+"?done=forgotten", http.StatusSeeOther)
	}
}

// --- JSON twin for mobile apps: a bearer token with scope "account".

const accountScope = "account"

// bearerUser authorizes an account API call (RFC 6750): 401 invalid_token
// for a missing or bad token, 403 insufficient_scope without "account".
func (s *Server) bearerUser(w http.ResponseWriter, r *http.Request) (string, bool) {
	challenge := `Bearer realm="postern"`
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSONError(w, http.StatusUnauthorized, "invalid_request", "A bearer token is required.")
		return "", false
	}
	sess := newSession()
	use, ar, err := s.provider.IntrospectToken(r.Context(), token, fosite.AccessToken, sess)
	if err != nil || use != fosite.AccessToken || sess.Subject == "" {
		w.Header().Set("WWW-Authenticate", challenge+`, error="invalid_token"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid, expired or revoked.")
		return "", false
	}
	if !ar.GetGrantedScopes().Has(accountScope) {
		w.Header().Set("WWW-Authenticate", challenge+`, error="insufficient_scope", scope="account"`)
		writeJSONError(w, http.StatusForbidden, "insufficient_scope", "The token lacks the \"account\" scope.")
		return "", false
	}
	return sess.Subject, true
}

func (s *Server) handleAPIGrants(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET.")
		return
	}
	subject, ok := s.bearerUser(w, r)
	if !ok {
		return
	}
	grants, err := s.userGrants(r.Context(), subject)
	if err != nil {
		s.log.Error("account api", "error", err)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"grants": grants})
}

func (s *Server) handleAPIRevokeGrant(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", "DELETE")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use DELETE.")
		return
	}
	subject, ok := s.bearerUser(w, r)
	if !ok {
		return
	}
	err := s.revokeUserGrant(r.Context(), r, subject, mux.Vars(r)["id"])
	switch {
	case errors.Is(err, errNotYours):
		writeJSONError(w, http.StatusNotFound, "not_found", "No such grant.")
	case err != nil:
		s.log.Error("account api revoke", "error", err)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
