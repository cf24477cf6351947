package authz

import (
	"slices"
	"time"

	"github.com/ory/fosite/token/jwt"
)

// OpenID Connect scopes and the standard claims each releases (OIDC Core
// §5.4). A user's configured claims go out under the scope of their
// standard name; claims with other names go out under their own names
// with profile, the scope for "who the user is".
const (
	scopeOpenID  = "openid"
	scopeProfile = "profile"
	scopeEmail   = "email"
)

var claimScope = map[string]string{
	"name": scopeProfile, "family_name": scopeProfile, "given_name": scopeProfile,
	"middle_name": scopeProfile, "nickname": scopeProfile, "preferred_username": scopeProfile,
	"profile": scopeProfile, "picture": scopeProfile, "website": scopeProfile,
	"gender": scopeProfile, "birthdate": scopeProfile, "zoneinfo": scopeProfile,
	"locale": scopeProfile, "updated_at": scopeProfile,
	"email": scopeEmail, "email_verified": scopeEmail,
	"address": "address", "phone_number": "phone", "phone_number_verified": "phone",
}

// protocolClaims are never taken from a user's configured claims: they are
// the server's to set.
var protocolClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"auth_time": true, "nonce": true, "at_hash": true, "c_hash": true, "amr": true, "acr": true,
	"azp": true, "sid": true, "rat": true, "scope": true, "client_id": true,
}

// userClaims are the claims scopes release for a user: the configured
// claims (or a SAML user's mapped attributes) and preferred_username.
func userClaims(scopes []string, username string, claims map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range claims {
		scope, standard := claimScope[k]
		if !standard {
			scope = scopeProfile
		}
		if protocolClaims[k] || !slices.Contains(scopes, scope) {
			continue
		}
		if k == "email_verified" || k == "phone_number_verified" {
			// Configured claims are strings; the spec's are booleans.
			if s, ok := v.(string); ok {
				v = s == "true"
			}
		}
		out[k] = v
	}
	if _, set := out["preferred_username"]; !set && username != "" && slices.Contains(scopes, scopeProfile) {
		out["preferred_username"] = username
	}
	return out
}

// idClaims starts the ID token claims of a grant: who signed in, when, how,
// in which login session, and what the granted scopes release.
func idClaims(user *loginSession, scopes []string, requestedAt time.Time) *jwt.IDTokenClaims {
	claims := make(map[string]any, len(user.Claims))
	for k, v := range user.Claims {
		claims[k] = v
	}
	extra := userClaims(scopes, user.Username, claims)
	extra["sid"] = sidOf(user.SID)
	return &jwt.IDTokenClaims{
		Subject:     user.Subject,
		RequestedAt: requestedAt,
		// Whole seconds, as the claim carries them; rounding down keeps
		// auth_time at or before the request for fosite's prompt checks.
		AuthTime:                        time.Unix(0, user.AuthTime).UTC().Truncate(time.Second),
		AuthenticationMethodsReferences: user.methods(),
		Extra:                           extra,
	}
}
