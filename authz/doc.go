// Package authz is the authorization server's HTTP face: the router, the
// OAuth endpoints (token, introspection, revocation, discovery, JWKS), and
// the one place where fosite is composed (fosite.go). The client model lives
// in package clients, users and their sign-in checks in identity, the SAML
// service provider in samlsp, persistence in storage and signing keys in
// keys; authz wires them to HTTP and to fosite.
package authz
