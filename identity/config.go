package identity

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"

	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/passhash"
)

// UserFileConfig is one users[] entry as written in the server's file.
type UserFileConfig struct {
	Username     string            `json:"username"`
	PasswordHash string            `json:"password_hash"`
	Password     string            `json:"password"`
	Claims       map[string]string `json:"claims"`
}

// ParseUserConfig decodes and validates the users[] entry raw at path.
func ParseUserConfig(path string, raw json.RawMessage) (User, []string, error) {
	var uc UserFileConfig
	if err := confjson.Decode(raw, &uc, path); err != nil {
		return User{}, nil, err
	}
	return uc.Validate(path)
}

// reservedClaims are set by the token format; user claims (from users[] or
// mapped from SAML attributes) cannot override them.
var reservedClaims = map[string]bool{
	"sub": true, "iss": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"client_id": true, "scope": true, "active": true, "token_type": true, "username": true, "grant_id": true,
}

// ReservedClaim reports whether a claim name belongs to the token format,
// so that neither users[] claims nor mapped SAML attributes may set it.
func ReservedClaim(name string) bool { return reservedClaims[name] }

var usernamePattern = regexp.MustCompile(`^[^\s:]{1,256}$`)

// Validate checks the entry at path ("users[0]") and builds its User;
// warnings name development shortcuts.
func (uc UserFileConfig) Validate(path string) (User, []string, error) {
	u := User{Username: uc.Username, Claims: uc.Claims}
	if uc.Username == "" {
		return u, nil, confjson.Errorf(path+".username", "is required")
	}
	// A colon is reserved: federated subjects are "provider:name".
	if !usernamePattern.MatchString(uc.Username) {
		return u, nil, confjson.Errorf(path+".username", "%q must be 1-256 characters without spaces or colons", uc.Username)
	}
	var warnings []string
	switch {
	case uc.PasswordHash != "" && uc.Password != "":
		return u, nil, confjson.Errorf(path, "set password_hash or password, not both")
	case uc.PasswordHash != "":
		if err := passhash.ValidatePasswordHash(uc.PasswordHash); err != nil {
			return u, nil, confjson.Errorf(path+".password_hash", "%v", err)
		}
		u.PasswordHash = uc.PasswordHash
	case uc.Password != "":
		u.Password = uc.Password
		warnings = append(warnings, fmt.Sprintf("%s (%s) has a plain password: for development only; use `postern users hash` and password_hash", path, uc.Username))
	default:
		return u, nil, confjson.Errorf(path, "password_hash is required (see `postern users hash`)")
	}
	keys := make([]string, 0, len(uc.Claims))
	for k := range uc.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ReservedClaim(k) {
			return u, nil, confjson.Errorf(path+".claims."+k, "is reserved by the token format")
		}
	}
	return u, warnings, nil
}
