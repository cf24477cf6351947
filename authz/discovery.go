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
	doc := map[string]any{
		"issuer":                                                   iss,
		"authorization_endpoint":                                   iss + pathAuthorize,
		"token_endpoint":                                           iss + pathToken,
		"introspection_endpoint":                                   iss + pathIntrospect,
		"revocation_endpoint":                                      iss + pathRevoke,
		"jwks_uri":                                                 iss + pathJWKS,
		"grant_types_supported":                                    grants,
		"response_types_supported":                                 []string{"code", "token"},
		"response_modes_supported":                                 []string{"query", "fragment"},
		"code_challenge_methods_supported":                         []string{"S256"},
		"scopes_supported":                                         s.scopes,
		"token_endpoint_auth_methods_supported":                    append(authMethods, "none"),
		"token_endpoint_auth_signing_alg_values_supported":         clients.ClientAssertionAlgs,
		"introspection_endpoint_auth_methods_supported":            authMethods,
		"introspection_endpoint_auth_signing_alg_values_supported": clients.ClientAssertionAlgs,
		"revocation_endpoint_auth_signing_alg_values_supported":    clients.ClientAssertionAlgs,
		"revocation_endpoint_auth_methods_supported":               authMethods,
		// Postern's own (RFC 8414 §2 allows extra members): the revocation
		// feed, Server-Sent Events for resource_server clients.
		"postern_revocation_feed_endpoint": iss + pathRevocationFeed,
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
