package authz

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/postern-auth/postern/clients"
)

// Browser apps (public clients: a single-page app has no secret to keep)
// call the token, userinfo, revocation, discovery and JWKS endpoints with
// fetch from their own origin, so those endpoints answer CORS. Only the
// origins of public clients' redirect URIs (configured or registered at
// runtime) are allowed: those are the pages the server already sends codes
// to. Credentials are never allowed: these endpoints authenticate by form
// parameters and bearer tokens, never by the session cookie, and a
// response readable with cookies would let any allowed page act on the
// user's sign-in session.

// corsOrigins is the set of origins (scheme://host[:port]) of the public
// clients' redirect URIs in the configuration; registered clients' are in
// cors_registered.go.
func corsOrigins(cs map[string]*clients.Client) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		if c.IsPublic() {
			addWebOrigins(out, c.RedirectURIs)
		}
	}
	return out
}

// addWebOrigins adds the origins of the http(s) redirect URIs to set.
func addWebOrigins(set map[string]bool, redirectURIs []string) {
	for _, raw := range redirectURIs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			continue // a native app's custom scheme has no web origin
		}
		set[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
}

// withCORS wraps an endpoint a browser app calls cross-origin. A preflight
// (OPTIONS with Access-Control-Request-Method) is answered here and never
// reaches the endpoint: 204 for an allowed origin, 403 without CORS headers
// otherwise. Other requests are served as usual; an allowed origin's answer
// carries Access-Control-Allow-Origin so the page may read it.
func (s *Server) withCORS(methods string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			h(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		lower := strings.ToLower(origin)
		allowed := s.corsOrigins[lower] || s.regOrigins.allowed(r.Context(), lower)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if !allowed {
				writeJSONError(w, http.StatusForbidden, "invalid_request", "Origin not allowed.")
				return
			}
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", methods)
			// Authorization for userinfo's bearer token; Content-Type for
			// the form posts (a browser preflights it only when not a
			// simple type, but libraries set it explicitly).
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			// The page needs WWW-Authenticate to tell an expired token
			// from other userinfo errors.
			w.Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate")
		}
		h(w, r)
	}
}
