// Package authz is the authorization server's HTTP face: the router, the
// OAuth endpoints (token, introspection, revocation, discovery, JWKS), and
// the one place where fosite is composed (fosite.go). Grant policy and user
// authentication live in package flows, persistence in package storage and
// signing keys in package keys; authz wires them to HTTP and to fosite.
package authz
