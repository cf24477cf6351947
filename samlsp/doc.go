// Package samlsp owns Postern's side of the SAML bridge: Postern as a SAML
// 2.0 service provider (crewjam/saml) for one configured identity provider
// each, with strict metadata parsing, signed requests, assertion checks
// (audience, times, replay, NameID, no SHA-1) and attribute mapping to
// claims. It knows nothing of HTTP routing, sessions or OAuth.
package samlsp
