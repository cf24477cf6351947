package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/postern-auth/postern/catalog"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// The developer portal: the API catalogue and the developer's own apps
// (runtime clients in the store), with the account page's sign-in, CSRF,
// no-JavaScript pages and look. Who may use it is the portal block's
// choice; everyone else gets a 403 page, and another developer's app is a
// 404 like one that does not exist.

const pathPortal = "/portal"

// portalView is what the portal pages show.
type portalView struct {
	Username string
	APIs     []*catalog.API
	API      *catalog.API
	Apps     []appView
	App      *appView
	// Secret is a client secret shown once, right after it was made.
	Secret string
	// Form: the create form as sent, with its error.
	FormName, FormKind, FormRedirects string
	MaxApps                           int
}

// appView is one of the developer's apps.
type appView struct {
	ID, Name, Kind, KindText string
	RedirectURIs             []string
	Created, CreatedISO      string
	Public                   bool
	Tier                     string
	Subscribed               []*catalog.API
	Available                []*catalog.API
	// PreviousUntil is when a rotated-out secret stops working.
	PreviousUntil, PreviousUntilISO string
}

var kindText = map[string]string{
	clients.KindService: "Service (client credentials)",
	clients.KindWeb:     "Web app (authorization code with a secret)",
	clients.KindSPA:     "SPA or mobile app (public, authorization code with PKCE)",
}

// portalNotices are fixed texts chosen by the query, like the account's.
var portalNotices = map[string]string{
	"deleted":      "App deleted. Its tokens no longer work anywhere.",
	"subscribed":   "Subscribed. The app may now request the API's scopes.",
	"unsubscribed": "Unsubscribed. The app's tokens carrying the API's scopes were revoked.",
}

func (s *Server) portalRoutes(handle func(path, name string, h http.HandlerFunc)) {
	handle(pathPortal, "portal", s.handlePortal)
	handle(pathPortal+"/apis/{id}", "portal", s.handlePortalAPI)
	handle(pathPortal+"/apis/{id}/openapi", "portal", s.handlePortalOpenAPI)
	handle(pathPortal+"/apps", "portal", s.handlePortalCreateApp)
	handle(pathPortal+"/apps/{id}", "portal", s.handlePortalApp)
	handle(pathPortal+"/apps/{id}/rotate", "portal", s.handlePortalRotate)
	handle(pathPortal+"/apps/{id}/delete", "portal", s.handlePortalDelete)
	handle(pathPortal+"/apps/{id}/subscribe", "portal", s.handlePortalSubscribe)
	handle(pathPortal+"/apps/{id}/unsubscribe", "portal", s.handlePortalSubscribe)
}

// developer returns the signed-in developer, or answers for itself: the
// portal off is a 404, no session goes to the login page (which comes
// back here), a user who is no developer gets 403.
func (s *Server) developer(w http.ResponseWriter, r *http.Request) *loginSession {
	if !s.cfg.Portal.On {
		s.renderError(w, http.StatusNotFound, "Not found", "There is no developer portal on this server.")
		return nil
	}
	user := s.session(r)
	if user == nil {
		http.Redirect(w, r, pathLogin+"?then=portal", http.StatusSeeOther)
		return nil
	}
	if !s.isDeveloper(user) {
		s.renderError(w, http.StatusForbidden, "Not a developer", "Your account may not use the developer portal. Ask the API team to add you.")
		return nil
	}
	return user
}

// isDeveloper reports whether the portal is on and user may use it.
func (s *Server) isDeveloper(user *loginSession) bool {
	return s.cfg.Portal.On && (s.cfg.Portal.AllUsers || s.cfg.Portal.Developers[user.Username])
}

// portalGet checks the method of a page and the developer.
func (s *Server) portalGet(w http.ResponseWriter, r *http.Request) *loginSession {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use the links and buttons of the portal.")
		return nil
	}
	return s.developer(w, r)
}

// portalPost checks what every portal form needs: POST, CSRF, a developer.
func (s *Server) portalPost(w http.ResponseWriter, r *http.Request) *loginSession {
	if !readPageForm(r) {
		w.Header().Set("Allow", "POST")
		s.renderError(w, http.StatusMethodNotAllowed, "Invalid request", "Use the buttons of the portal.")
		return nil
	}
	user := s.developer(w, r)
	if user == nil {
		return nil
	}
	if !s.jar.checkCSRF(r) {
		s.renderError(w, http.StatusForbidden, "Invalid request", "The form expired. Go back, reload the page and try again.")
		return nil
	}
	return user
}

func (s *Server) renderPortal(w http.ResponseWriter, r *http.Request, status int, page, title string, v *portalView, errMsg string) {
	s.render(w, status, page, pageData{
		Title: title, Wide: true, CSRF: s.jar.csrfToken(w, r), Portal: v, Error: errMsg,
		Notice: portalNotices[r.URL.Query().Get("done")],
	})
}

func (s *Server) portalFailure(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "developer portal", "error", err)
	s.renderError(w, http.StatusServiceUnavailable, "Try again later", "The developer portal could not do that just now.")
}

// handlePortal is the portal's front page: the catalogue and the
// developer's apps, with the form that creates one.
func (s *Server) handlePortal(w http.ResponseWriter, r *http.Request) {
	user := s.portalGet(w, r)
	if user == nil {
		return
	}
	v, err := s.portalHome(r.Context(), user)
	if err != nil {
		s.portalFailure(w, r, err)
		return
	}
	v.FormKind = clients.KindService
	s.renderPortal(w, r, http.StatusOK, "portal", "Developer portal", v, "")
}

func (s *Server) portalHome(ctx context.Context, user *loginSession) (*portalView, error) {
	v := &portalView{Username: user.Username, APIs: s.cfg.Catalog.APIs(), MaxApps: s.cfg.Portal.MaxAppsPerDeveloper}
	recs, err := s.store.ListClients(ctx, user.Subject)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		a, err := s.appView(rec)
		if err != nil {
			return nil, err
		}
		v.Apps = append(v.Apps, *a)
	}
	return v, nil
}

func (s *Server) handlePortalAPI(w http.ResponseWriter, r *http.Request) {
	user := s.portalGet(w, r)
	if user == nil {
		return
	}
	api, ok := s.cfg.Catalog.API(mux.Vars(r)["id"])
	if !ok {
		s.renderError(w, http.StatusNotFound, "Not found", "There is no such API in the catalogue.")
		return
	}
	v, err := s.portalHome(r.Context(), user)
	if err != nil {
		s.portalFailure(w, r, err)
		return
	}
	v.API = api
	s.renderPortal(w, r, http.StatusOK, "portal_api", api.Name, v, "")
}

// handlePortalOpenAPI serves an API's document as written, as a download:
// never rendered by the browser in the portal's origin.
func (s *Server) handlePortalOpenAPI(w http.ResponseWriter, r *http.Request) {
	if s.portalGet(w, r) == nil {
		return
	}
	api, ok := s.cfg.Catalog.API(mux.Vars(r)["id"])
	if !ok || api.OpenAPI == nil {
		s.renderError(w, http.StatusNotFound, "Not found", "That API has no OpenAPI document.")
		return
	}
	ext := ".json"
	if api.OpenAPI.ContentType == catalog.ContentTypeYAML {
		ext = ".yaml"
	}
	h := w.Header()
	h.Set("Content-Type", api.OpenAPI.ContentType)
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", api.ID+"-openapi"+ext))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(api.OpenAPI.Raw)
}

// handlePortalCreateApp makes an app and shows its secret, once.
func (s *Server) handlePortalCreateApp(w http.ResponseWriter, r *http.Request) {
	user := s.portalPost(w, r)
	if user == nil {
		return
	}
	ctx := r.Context()
	name := strings.TrimSpace(r.PostForm.Get("name"))
	kind := r.PostForm.Get("kind")
	redirects := r.PostForm.Get("redirect_uris")
	again := func(status int, msg string) {
		v, err := s.portalHome(ctx, user)
		if err != nil {
			s.portalFailure(w, r, err)
			return
		}
		v.FormName, v.FormKind, v.FormRedirects = name, kind, redirects
		s.renderPortal(w, r, status, "portal", "Developer portal", v, msg)
	}
	if len(redirects) > clients.MaxRedirectURIs*(clients.MaxRedirectURILen+2) {
		again(http.StatusBadRequest, "Too many or too long redirect URIs.")
		return
	}
	reg := clients.Registration{Name: name, Kind: kind, RedirectURIs: strings.Fields(redirects)}
	switch kind {
	case clients.KindService:
		reg.AuthMethod, reg.GrantTypes = clients.AuthSecretBasic, []string{clients.GrantClientCredentials}
	case clients.KindWeb:
		reg.AuthMethod = clients.AuthSecretBasic
	case clients.KindSPA:
		reg.AuthMethod = clients.AuthNone
	default:
		again(http.StatusBadRequest, "Choose what kind of app it is.")
		return
	}
	if kind != clients.KindService {
		reg.GrantTypes = []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}
		reg.ResponseTypes = []string{"code"}
		reg.Scope = slices.Clone(clients.OpenIDScopes)
	}
	if kind == clients.KindService && len(reg.RedirectURIs) > 0 {
		again(http.StatusBadRequest, "A service app signs nobody in, so it has no redirect URIs.")
		return
	}
	if kind != clients.KindService && len(reg.RedirectURIs) == 0 {
		again(http.StatusBadRequest, "Give at least one redirect URI: where users come back to after signing in.")
		return
	}
	var secret string
	var err error
	if reg.AuthMethod != clients.AuthNone {
		if secret, reg.SecretHash, err = newHashedSecret(); err != nil {
			s.portalFailure(w, r, err)
			return
		}
	}
	if err := reg.Validate(s.scopeOffered); err != nil {
		var me *clients.MetadataError
		if errors.As(err, &me) {
			again(http.StatusBadRequest, portalFieldText(me))
			return
		}
		s.portalFailure(w, r, err)
		return
	}
	// The limit is checked before the write; two creations racing past it
	// cost one app at most, which the next check counts.
	apps, err := s.store.ListClients(ctx, user.Subject)
	if err != nil {
		s.portalFailure(w, r, err)
		return
	}
	if len(apps) >= s.cfg.Portal.MaxAppsPerDeveloper {
		again(http.StatusConflict, fmt.Sprintf("You have %d apps, the most a developer may have. Delete one first.", len(apps)))
		return
	}
	rec, err := s.createRegisteredClient(ctx, user.Subject, nil, reg)
	if err != nil {
		s.portalFailure(w, r, err)
		return
	}
	s.audit(r, "app_created", user.Subject, rec.ID, reg.Name)
	s.log.InfoContext(ctx, "app created in the developer portal", "client_id", rec.ID, "kind", kind, "developer", user.Subject)
	s.showApp(w, r, user, rec, secret, http.StatusCreated)
}

// portalFieldText words a metadata error for the create form.
func portalFieldText(me *clients.MetadataError) string {
	field := me.Field
	switch {
	case field == "client_name":
		field = "Name"
	case strings.HasPrefix(field, "redirect_uris"):
		field = "Redirect URI"
	}
	return field + ": " + me.Msg
}

// loadApp finds one of the developer's apps: anything else, another
// developer's app included, is not found.
func (s *Server) loadApp(ctx context.Context, user *loginSession, id string) (storage.Client, error) {
	if _, configured := s.clients[id]; configured {
		return storage.Client{}, storage.ErrNotFound
	}
	rec, err := s.store.GetClient(ctx, id)
	if err != nil {
		return rec, err
	}
	if rec.Owner != user.Subject {
		return storage.Client{}, storage.ErrNotFound
	}
	return rec, nil
}

// updateApp changes one of the developer's apps in one store transaction,
// ownership checked on the record it changes; anything else is not found,
// as for loadApp.
func (s *Server) updateApp(ctx context.Context, user *loginSession, id string, change func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	if _, configured := s.clients[id]; configured {
		return storage.Client{}, storage.ErrNotFound
	}
	return s.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
		if c.Owner != user.Subject {
			return c, storage.ErrNotFound
		}
		return change(c)
	})
}

func (s *Server) appNotFound(w http.ResponseWriter) {
	s.renderError(w, http.StatusNotFound, "Not found", "You have no such app.")
}

// appError answers a failed operation on an app: gone (or never the
// developer's) is a 404, anything else the store's failure.
func (s *Server) appError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrNotFound) {
		s.appNotFound(w)
		return
	}
	s.portalFailure(w, r, err)
}

func (s *Server) handlePortalApp(w http.ResponseWriter, r *http.Request) {
	user := s.portalGet(w, r)
	if user == nil {
		return
	}
	rec, err := s.loadApp(r.Context(), user, mux.Vars(r)["id"])
	if err != nil {
		s.appError(w, r, err)
		return
	}
	s.showApp(w, r, user, rec, "", http.StatusOK)
}

func (s *Server) showApp(w http.ResponseWriter, r *http.Request, user *loginSession, rec storage.Client, secret string, status int) {
	a, err := s.appView(rec)
	if err != nil {
		s.portalFailure(w, r, err)
		return
	}
	v := &portalView{Username: user.Username, App: a, Secret: secret}
	s.renderPortal(w, r, status, "portal_app", a.Name, v, "")
}

func (s *Server) appView(rec storage.Client) (*appView, error) {
	reg, err := clients.DecodeRegistration(rec.Data)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", rec.ID, err)
	}
	a := &appView{ID: rec.ID, Name: reg.Name, Kind: reg.Kind, KindText: kindText[reg.Kind], RedirectURIs: reg.RedirectURIs, Public: reg.AuthMethod == clients.AuthNone}
	if a.KindText == "" {
		a.KindText = "Registered through the API (RFC 7591)"
	}
	a.Created, a.CreatedISO = showTime(rec.CreatedAt)
	if reg.PreviousSecretHash != "" && s.cfg.Now().Before(reg.PreviousUntil) {
		a.PreviousUntil, a.PreviousUntilISO = showTime(reg.PreviousUntil)
	}
	for _, api := range s.cfg.Catalog.APIs() {
		if slices.Contains(rec.APIs, api.ID) {
			a.Subscribed = append(a.Subscribed, api)
		} else {
			a.Available = append(a.Available, api)
		}
	}
	// The tier the app's tokens carry, by the directory's rule.
	_, a.Tier = catalogGrants{s.cfg.Catalog}.Grants(rec.APIs)
	return a, nil
}

// handlePortalRotate gives a confidential app a new secret; the old one
// works on for the configured grace, so the app can be redeployed.
func (s *Server) handlePortalRotate(w http.ResponseWriter, r *http.Request) {
	user := s.portalPost(w, r)
	if user == nil {
		return
	}
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	secret, hash, err := newHashedSecret()
	if err != nil {
		s.portalFailure(w, r, err)
		return
	}
	now := s.cfg.Now().UTC()
	rec, err := s.updateApp(ctx, user, id, func(c storage.Client) (storage.Client, error) {
		reg, err := clients.DecodeRegistration(c.Data)
		if err != nil {
			return c, err
		}
		if reg.AuthMethod == clients.AuthNone {
			return c, errPublicApp
		}
		reg.PreviousSecretHash, reg.PreviousUntil, reg.SecretHash = reg.SecretHash, now.Add(s.cfg.Portal.SecretRotationGrace), hash
		if c.Data, err = clients.EncodeRegistration(reg); err != nil {
			return c, err
		}
		c.UpdatedAt = now
		return c, nil
	})
	if errors.Is(err, errPublicApp) {
		s.renderError(w, http.StatusBadRequest, "No secret", "A SPA or mobile app is public: it has no secret to rotate.")
		return
	}
	if err != nil {
		s.appError(w, r, err)
		return
	}
	s.audit(r, "app_secret_rotated", user.Subject, id, "")
	s.log.InfoContext(ctx, "app secret rotated", "client_id", id, "developer", user.Subject, "previous_valid_until", now.Add(s.cfg.Portal.SecretRotationGrace))
	s.showApp(w, r, user, rec, secret, http.StatusOK)
}

var errPublicApp = errors.New("a public app has no secret")

// handlePortalDelete deletes an app: the store removes its tokens and
// records the revocation in one transaction, and the feed tells the
// gateways at once.
func (s *Server) handlePortalDelete(w http.ResponseWriter, r *http.Request) {
	user := s.portalPost(w, r)
	if user == nil {
		return
	}
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	rec, err := s.loadApp(ctx, user, id)
	if err == nil {
		var n int
		n, err = s.store.DeleteClient(ctx, id)
		s.regOrigins.changed()
		if err == nil {
			reg, _ := clients.DecodeRegistration(rec.Data)
			s.audit(r, "app_deleted", user.Subject, id, reg.Name)
			s.log.InfoContext(ctx, "app deleted in the developer portal", "client_id", id, "developer", user.Subject, "tokens_revoked", n)
		}
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		s.appNotFound(w)
	case err != nil:
		s.portalFailure(w, r, err)
	default:
		http.Redirect(w, r, pathPortal+"?done=deleted", http.StatusSeeOther)
	}
}

// handlePortalSubscribe subscribes an app to an API or unsubscribes it;
// unsubscribing revokes the app's grants that carry one of the API's
// scopes, so a token cannot outlive the subscription that allowed it.
func (s *Server) handlePortalSubscribe(w http.ResponseWriter, r *http.Request) {
	user := s.portalPost(w, r)
	if user == nil {
		return
	}
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	subscribe := strings.HasSuffix(r.URL.Path, "/subscribe")
	api, ok := s.cfg.Catalog.API(r.PostForm.Get("api"))
	if !ok {
		s.renderError(w, http.StatusBadRequest, "Invalid request", "There is no such API in the catalogue.")
		return
	}
	_, err := s.updateApp(ctx, user, id, func(c storage.Client) (storage.Client, error) {
		has := slices.Contains(c.APIs, api.ID)
		switch {
		case subscribe && !has:
			c.APIs = append(c.APIs, api.ID)
		case !subscribe && has:
			c.APIs = slices.DeleteFunc(slices.Clone(c.APIs), func(a string) bool { return a == api.ID })
		}
		c.UpdatedAt = s.cfg.Now().UTC()
		return c, nil
	})
	if err == nil && !subscribe {
		err = s.revokeScopes(ctx, id, api)
	}
	if err != nil {
		s.appError(w, r, err)
		return
	}
	typ, done := "app_subscribed", "subscribed"
	if !subscribe {
		typ, done = "app_unsubscribed", "unsubscribed"
	}
	s.audit(r, typ, user.Subject, id, api.ID)
	s.log.InfoContext(ctx, "app subscription changed", "client_id", id, "api", api.ID, "subscribed", subscribe, "developer", user.Subject)
	http.Redirect(w, r, pathPortal+"/apps/"+id+"?done="+done, http.StatusSeeOther)
}

// revokeScopes revokes every grant of the client whose tokens carry one of
// api's scopes (each revocation goes to the feed).
func (s *Server) revokeScopes(ctx context.Context, clientID string, api *catalog.API) error {
	toks, err := s.store.ClientTokens(ctx, clientID)
	if err != nil {
		return err
	}
	offered := map[string]bool{}
	for _, sc := range api.Scopes {
		offered[sc.Name] = true
	}
	done := map[string]bool{}
	for _, t := range toks {
		if done[t.RequestID] {
			continue
		}
		var sr storedRequest
		if err := json.Unmarshal(t.Data, &sr); err != nil {
			return fmt.Errorf("decode token of %s: %w", clientID, err)
		}
		if !slices.ContainsFunc(sr.GrantedScope, func(sc string) bool { return offered[sc] }) {
			continue
		}
		done[t.RequestID] = true
		if _, err := s.store.RevokeGrant(ctx, t.RequestID); err != nil {
			return err
		}
	}
	return nil
}
