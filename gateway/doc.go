// Package gateway is Postern's sidecar: a reverse proxy
// (net/http/httputil.ReverseProxy with Rewrite) that lets a request reach a
// backend only after it has checked the bearer token, the route's scopes and
// the client's rate limit, and that tells the backend who is calling through
// identity headers it sets itself (incoming copies are always removed).
// A route may admit browser pages on other origins (CORS): the gateway then
// answers their preflights itself and owns the route's Access-Control-*
// response headers.
//
// Tokens are validated by RFC 7662 introspection, cached, or, for RFC 9068
// JWT access tokens, locally against the server's JWKS. The gateway talks to
// the authorization server only over HTTP (RFC 8414 discovery, introspection,
// JWKS), so it can run on another machine; it must not import authz or
// storage. Its JSON configuration file is its own (config_file.go), and
// Config.check holds every Config, parsed or hand-built, to one set of rules.
package gateway
