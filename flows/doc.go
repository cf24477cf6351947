// Package flows owns grant policy and user authentication: which client may
// use which grant, token lifetimes, refresh families, client-secret and
// password checks, and SAML login (Postern as a SAML service provider,
// with crewjam/saml). It knows nothing of HTTP routing.
package flows
