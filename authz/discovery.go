package authz

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/postern-auth/postern/clients"
)

// handleDiscovery serves RFC 8414 metadata; the same document answers at the
// OpenID Connect discovery path for clients that only look there.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET.")
		return
	}
	iss := s.cfg.Issuer
	grants := []string{clients.GrantImplicit}
	for g := range grantsServed {
		grants = append(grants, g)
	}
	slices.Sort(grants)
	authMethods := []string{"client_secret_basic", "client_secret_post", clients.AuthPrivateKeyJWT}
	// A public client names itself and revokes its own tokens (RFC 7009
	// §2.1, tokenRequest); introspection wants a confidential one.
	withNone := append(slices.Clip(authMethods), "none")
	doc := map[string]any{
		"issuer":                                                   iss,
		"authorization_endpoint":                                   iss + pathAuthorize,
		"token_endpoint":                                           iss + pathToken,
		"introspection_endpoint":                                   iss + pathIntrospect,
		"revocation_endpoint":                                      iss + pathRevoke,
		"jwks_uri":                                                 iss + pathJWKS,
		"grant_types_supported":                                    grants,
		"response_types_supported":                                 []string{"code", "token", "id_token token", "id_token"},
		"response_modes_supported":                                 []string{"query", "fragment"},
		"code_challenge_methods_supported":                         []string{"S256"},
		"scopes_supported":                                         scopesSupported(s.scopes),
		"token_endpoint_auth_methods_supported":                    withNone,
		"token_endpoint_auth_signing_alg_values_supported":         clients.ClientAssertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": clients.ClientAssertionAlgs,
		"revocation_endpoint_auth_signing_alg_values_supported":    clients.ClientAssertionAlgs,
		"revocation_endpoint_auth_methods_supported":               withNone,
		// Postern's own (RFC 8414 §2 allows extra members): the revocation
		// feed, Server-Sent Events for resource_server clients.
		"postern_revocation_feed_endpoint": iss + pathRevocationFeed,
	}
	if s.registrationOn() {
		doc["registration_endpoint"] = iss + pathRegister
	}
	// OpenID Provider Metadata (OpenID Connect Discovery 1.0 §3), in the
	// same document: RFC 8414 §2 names its members as extensions.
	for k, v := range map[string]any{
		"userinfo_endpoint":                     iss + pathUserinfo,
		"end_session_endpoint":                  iss + pathEndSession,
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": s.signingAlgs(),
		"userinfo_signing_alg_values_supported": []string{"none"},
		"claims_supported":                      claimsSupported(),
		"prompt_values_supported":               []string{"none", "login", "consent"},
		"claims_parameter_supported":            false,
		"request_parameter_supported":           false,
		"request_uri_parameter_supported":       false,
	} {
		doc[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(doc)
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET.")
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	// Short cache: a rotated key must reach verifiers within the overlap.
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.keys.JWKSJSON())
}

// scopesSupported are the clients' scopes and the OpenID Connect scopes
// this server releases claims for.
func scopesSupported(registered []string) []string {
	out := slices.Clone(registered)
	for _, sc := range []string{scopeOpenID, scopeProfile, scopeEmail} {
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	slices.Sort(out)
	return out
}

// claimsSupported are the claims an ID token or the userinfo endpoint may
// carry: the protocol's and the standard ones configured claims map to.
func claimsSupported() []string {
	out := []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "c_hash", "amr", "sid"}
	for k := range claimScope {
		out = append(out, k)
	}
	slices.Sort(out[11:])
	return out
}

// signingAlgs are the algorithms of the published keys: an ID token is
// signed by the active one, and during a rotation's overlap by either.
func (s *Server) signingAlgs() []string {
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	_ = json.Unmarshal(s.keys.JWKSJSON(), &set)
	var algs []string
	for _, k := range set.Keys {
		if k.Alg != "" && !slices.Contains(algs, k.Alg) {
			algs = append(algs, k.Alg)
		}
	}
	if len(algs) == 0 {
		algs = []string{"ES256"}
	}
	slices.Sort(algs)
	return algs
}
