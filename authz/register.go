package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// RFC 7591 dynamic client registration and RFC 7592 management, for
// pipelines that create API clients without a person in the portal. The
// endpoint exists only when the configuration holds the hash of an initial
// access token (registration.initial_access_token_hash): open registration
// would let anyone mint clients.
//
// A registered client gets a registration access token (RFC 7592), one per
// client and kept as a hash, with which it reads, replaces and deletes its
// registration at registration_client_uri.

const (
	pathRegister = "/oauth2/register"
	// maxRegistrationBody bounds a registration document; real ones are a
	// few hundred bytes.
	maxRegistrationBody = 64 << 10
)

// registrationRequest is the client metadata a registration may carry
// (RFC 7591 §2). Members the server does not know are ignored, as §2 asks.
type registrationRequest struct {
	ClientID string `json:"client_id"`
	// ClientSecret may come with an RFC 7592 update; it must then be the
	// current secret (§2.2). It is never stored from here.
	ClientSecret            string   `json:"client_secret"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Scope                   string   `json:"scope"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris"`
}

// registrationResponse is the client information response (RFC 7591
// §3.2.1, RFC 7592 §3).
type registrationResponse struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RegistrationAccessToken string   `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string   `json:"registration_client_uri"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
}

// registrationOn reports whether RFC 7591 registration is configured.
func (s *Server) registrationOn() bool { return len(s.cfg.RegistrationTokenHash) > 0 }

// handleRegister is POST /oauth2/register (RFC 7591 §3).
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	if !s.registrationOn() {
		s.notFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use POST.")
		return
	}
	token, ok := authorizationBearer(r)
	if !ok || s.cfg.SecretHasher.Compare(r.Context(), s.cfg.RegistrationTokenHash, []byte(token)) != nil {
		s.log.InfoContext(r.Context(), "client registration refused: no valid initial access token", "ip", clientIP(r))
		registrationUnauthorized(w, ok)
		return
	}
	req, ok := s.readRegistration(w, r)
	if !ok {
		return
	}
	if req.ClientID != "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "client_id is assigned by the server.")
		return
	}
	reg, errCode, msg := s.registrationOf(req)
	if errCode != "" {
		writeJSONError(w, http.StatusBadRequest, errCode, msg)
		return
	}
	secret, regToken, err := s.issueRegistrationSecrets(&reg)
	if err != nil {
		s.registrationFailure(w, r, err)
		return
	}
	rec, err := s.createRegisteredClient(r.Context(), "", nil, reg)
	if err != nil {
		s.registrationFailure(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "client registered", "client_id", rec.ID, "via", "RFC 7591", "ip", clientIP(r))
	resp := s.registrationAnswer(rec.ID, rec.CreatedAt, reg)
	resp.ClientSecret = secret
	resp.RegistrationAccessToken = regToken
	writeRegistration(w, http.StatusCreated, resp)
}

// handleRegisteredClient is RFC 7592's GET, PUT and DELETE on
// registration_client_uri.
func (s *Server) handleRegisteredClient(w http.ResponseWriter, r *http.Request) {
	if !s.registrationOn() {
		s.notFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, PUT, DELETE")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET, PUT or DELETE.")
		return
	}
	ctx := r.Context()
	id := mux.Vars(r)["id"]
	token, hasToken := authorizationBearer(r)
	rec, reg, err := s.loadRegistration(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// RFC 7592 §2: an unknown client is told apart from a bad token
		// by nobody: both are 401.
		registrationUnauthorized(w, hasToken)
		return
	case err != nil:
		s.registrationFailure(w, r, err)
		return
	}
	if !hasToken || reg.RegistrationTokenHash == "" || s.cfg.SecretHasher.Compare(ctx, []byte(reg.RegistrationTokenHash), []byte(token)) != nil {
		s.log.InfoContext(ctx, "client registration access refused: bad registration access token", "client_id", id, "ip", clientIP(r))
		registrationUnauthorized(w, hasToken)
		return
	}
	switch r.Method {
	case http.MethodGet:
		resp := s.registrationAnswer(rec.ID, rec.CreatedAt, reg)
		// RFC 7592 §3 wants the token in every answer; only its hash is
		// kept, so the answer carries the one the client just proved.
		resp.RegistrationAccessToken = token
		writeRegistration(w, http.StatusOK, resp)
	case http.MethodDelete:
		n, err := s.store.DeleteClient(ctx, id)
		s.regOrigins.changed()
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.registrationFailure(w, r, err)
			return
		}
		s.log.InfoContext(ctx, "client deleted", "client_id", id, "via", "RFC 7592", "tokens_revoked", n)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		req, ok := s.readRegistration(w, r)
		if !ok {
			return
		}
		if req.ClientID != id {
			writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "client_id must be the registered client's.")
			return
		}
		next, errCode, msg := s.registrationOf(req)
		if errCode != "" {
			writeJSONError(w, http.StatusBadRequest, errCode, msg)
			return
		}
		if req.ClientSecret != "" && (reg.SecretHash == "" || s.cfg.SecretHasher.Compare(ctx, []byte(reg.SecretHash), []byte(req.ClientSecret)) != nil) {
			writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "client_secret is not the client's current secret; leave it out to keep the secret.")
			return
		}
		if (next.AuthMethod == clients.AuthNone) != (reg.AuthMethod == clients.AuthNone) {
			writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "A client cannot change between public and confidential; register a new one.")
			return
		}
		var saved clients.Registration
		_, err := s.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
			cur, err := clients.DecodeRegistration(c.Data)
			if err != nil {
				return c, err
			}
			// The secrets stay: a metadata update is not a rotation.
			next.SecretHash, next.PreviousSecretHash, next.PreviousUntil = cur.SecretHash, cur.PreviousSecretHash, cur.PreviousUntil
			next.RegistrationTokenHash, next.Kind = cur.RegistrationTokenHash, cur.Kind
			if c.Data, err = clients.EncodeRegistration(next); err != nil {
				return c, err
			}
			c.UpdatedAt = s.cfg.Now().UTC()
			saved = next
			return c, nil
		})
		s.regOrigins.changed() // the redirect URIs may have changed
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Deleted since it was read (a DELETE racing this PUT): the
			// client and its token are gone, as RFC 7592 §2 answers that.
			registrationUnauthorized(w, true)
			return
		case err != nil:
			s.registrationFailure(w, r, err)
			return
		}
		s.log.InfoContext(ctx, "client registration updated", "client_id", id, "via", "RFC 7592")
		resp := s.registrationAnswer(rec.ID, rec.CreatedAt, saved)
		resp.RegistrationAccessToken = token
		writeRegistration(w, http.StatusOK, resp)
	}
}

// readRegistration reads a bounded JSON registration document.
func (s *Server) readRegistration(w http.ResponseWriter, r *http.Request) (registrationRequest, bool) {
	var req registrationRequest
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0]))
	if ct != "application/json" {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "The registration must be a JSON document (Content-Type: application/json).")
		return req, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegistrationBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSONError(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("The registration is larger than %d bytes.", tooBig.Limit))
		return req, false
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The request body could not be read.")
		return req, false
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "The registration is not a JSON object of client metadata: "+jsonProblem(err))
		return req, false
	}
	return req, true
}

// jsonProblem says what is wrong with a registration document without
// echoing it. Its members are all strings or arrays of strings.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	switch {
	case !errors.As(err, &typeErr):
		return "malformed JSON."
	case typeErr.Field == "":
		return "a JSON " + typeErr.Value + " instead."
	case typeErr.Type.Kind() == reflect.Slice:
		return typeErr.Field + " must be an array of strings."
	default: // a member or an array's element
		return typeErr.Field + " must hold strings, not a JSON " + typeErr.Value + "."
	}
}

// registrationOf turns a request into a registration with RFC 7591's
// defaults, or an RFC 7591 §3.2.2 error code and description.
func (s *Server) registrationOf(req registrationRequest) (clients.Registration, string, string) {
	reg := clients.Registration{
		Name:                   req.ClientName,
		AuthMethod:             req.TokenEndpointAuthMethod,
		GrantTypes:             req.GrantTypes,
		ResponseTypes:          req.ResponseTypes,
		RedirectURIs:           req.RedirectURIs,
		PostLogoutRedirectURIs: req.PostLogoutRedirectURIs,
		Scope:                  strings.Fields(req.Scope),
	}
	if reg.AuthMethod == "" {
		reg.AuthMethod = clients.AuthSecretBasic // RFC 7591 §2
	}
	if len(reg.GrantTypes) == 0 {
		reg.GrantTypes = []string{clients.GrantAuthorizationCode} // RFC 7591 §2
	}
	if len(reg.ResponseTypes) == 0 && slices.Contains(reg.GrantTypes, clients.GrantAuthorizationCode) {
		reg.ResponseTypes = []string{"code"}
	}
	if reg.Name == "" {
		reg.Name = "Registered client"
	}
	if reg.AuthMethod != clients.AuthNone {
		// Validation wants the hash a confidential client will have; the
		// real one replaces it once the registration is accepted.
		reg.SecretHash = placeholderSecretHash
	}
	err := reg.Validate(s.scopeOffered)
	reg.SecretHash = ""
	if err != nil {
		var me *clients.MetadataError
		if errors.As(err, &me) {
			code := "invalid_client_metadata"
			if me.RedirectURI {
				code = "invalid_redirect_uri"
			}
			return reg, code, me.Error()
		}
		return reg, "invalid_client_metadata", err.Error()
	}
	return reg, "", ""
}

// placeholderSecretHash is a well-formed hash that matches no secret.
const placeholderSecretHash = "$hmac-sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// scopeOffered says whether a registered client may be given a scope:
// the catalogue's APIs offer it, or it is OpenID Connect's.
func (s *Server) scopeOffered(scope string) bool {
	if slices.Contains(clients.OpenIDScopes, scope) {
		return true
	}
	_, ok := s.cfg.Catalog.APIOfScope(scope)
	return ok
}

// issueRegistrationSecrets makes the client secret (confidential clients)
// and the registration access token, and keeps only their hashes.
func (s *Server) issueRegistrationSecrets(reg *clients.Registration) (secret, regToken string, err error) {
	if reg.AuthMethod != clients.AuthNone {
		if secret, reg.SecretHash, err = newHashedSecret(); err != nil {
			return "", "", err
		}
	}
	regToken, reg.RegistrationTokenHash, err = newHashedSecret()
	return secret, regToken, err
}

func newHashedSecret() (secret, hash string, err error) {
	if secret, err = clients.GenerateClientSecret(); err != nil {
		return "", "", err
	}
	if hash, err = clients.HashClientSecret(secret); err != nil {
		return "", "", err
	}
	return secret, hash, nil
}

// createRegisteredClient stores a new runtime client under a fresh ID.
func (s *Server) createRegisteredClient(ctx context.Context, owner string, apis []string, reg clients.Registration) (storage.Client, error) {
	data, err := clients.EncodeRegistration(reg)
	if err != nil {
		return storage.Client{}, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	for range 3 {
		id, err := clients.NewClientID()
		if err != nil {
			return storage.Client{}, err
		}
		if _, configured := s.clients[id]; configured {
			continue
		}
		rec := storage.Client{ID: id, Owner: owner, CreatedAt: now, UpdatedAt: now, APIs: apis, Data: data}
		err = s.store.CreateClient(ctx, rec)
		if errors.Is(err, storage.ErrAlreadyExists) {
			continue // 128 random bits: never, but never is cheap to handle
		}
		if err != nil {
			return storage.Client{}, fmt.Errorf("store client: %w", err)
		}
		s.regOrigins.changed()
		return rec, nil
	}
	return storage.Client{}, errors.New("store client: no free client ID")
}

// loadRegistration reads a runtime client; a configured client of that ID
// hides it (the configuration wins on a clash) and counts as not found.
func (s *Server) loadRegistration(ctx context.Context, id string) (storage.Client, clients.Registration, error) {
	if _, configured := s.clients[id]; configured {
		return storage.Client{}, clients.Registration{}, storage.ErrNotFound
	}
	rec, err := s.store.GetClient(ctx, id)
	if err != nil {
		return rec, clients.Registration{}, err
	}
	reg, err := clients.DecodeRegistration(rec.Data)
	return rec, reg, err
}

func (s *Server) registrationAnswer(id string, created time.Time, reg clients.Registration) registrationResponse {
	resp := registrationResponse{
		ClientID:                id,
		ClientIDIssuedAt:        created.Unix(),
		RegistrationClientURI:   s.cfg.Issuer + pathRegister + "/" + id,
		ClientName:              reg.Name,
		RedirectURIs:            reg.RedirectURIs,
		TokenEndpointAuthMethod: reg.AuthMethod,
		GrantTypes:              reg.GrantTypes,
		ResponseTypes:           reg.ResponseTypes,
		Scope:                   strings.Join(reg.Scope, " "),
		PostLogoutRedirectURIs:  reg.PostLogoutRedirectURIs,
	}
	if reg.AuthMethod != clients.AuthNone {
		never := int64(0) // RFC 7591 §3.2.1: 0 means the secret does not expire
		resp.ClientSecretExpiresAt = &never
	}
	return resp
}

func writeRegistration(w http.ResponseWriter, status int, resp registrationResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}

// registrationUnauthorized is RFC 6750's answer to a missing or bad token.
func registrationUnauthorized(w http.ResponseWriter, hadToken bool) {
	if hadToken {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The access token is missing, invalid or not for this client.")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer`)
	writeJSONError(w, http.StatusUnauthorized, "invalid_token", "This endpoint needs a bearer token.")
}

func (s *Server) registrationFailure(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrUnavailable) {
		s.log.WarnContext(r.Context(), "client registration: store unavailable", "error", err)
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The server cannot store the registration just now; retry shortly.")
		return
	}
	s.log.ErrorContext(r.Context(), "client registration failed", "error", err)
	writeJSONError(w, http.StatusInternalServerError, "server_error", "The registration could not be completed.")
}

// authorizationBearer reads an RFC 6750 §2.1 Authorization header, the
// only place registration endpoints take their tokens from (§2.2's form
// parameter does not fit a JSON body).
func authorizationBearer(r *http.Request) (string, bool) {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	return cred, strings.EqualFold(scheme, "Bearer") && cred != ""
}
