package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Identity is what a valid token says about its caller.
type Identity struct {
	// Subject is the resource owner; empty for client credentials.
	Subject  string
	ClientID string
	// Scope is the granted scope, space separated, as the server wrote it.
	Scope  string
	scopes []string
	// Claims are the user claims named in claim_headers, ready to be
	// header values.
	Claims map[string]string
	// Expiry is the token's exp; zero when the server gave none.
	Expiry time.Time
	// GrantID (the grant the token belongs to) and IssuedAt (its iat) let
	// the revocation feed find the token: a revoked grant, or a subject or
	// client whose tokens issued up to some instant were ended.
	GrantID  string
	IssuedAt time.Time
	// Tier is the rate-limit tier the server names for the token's client
	// (its API subscriptions); "" when it names none. The gateway applies
	// it only if its own configuration defines a tier of that name.
	Tier string
}

func newIdentity(sub, clientID, scope string, exp time.Time) *Identity {
	return &Identity{Subject: sub, ClientID: clientID, Scope: scope, scopes: strings.Fields(scope), Expiry: exp}
}

// hasScopes reports whether every required scope was granted.
func (id *Identity) hasScopes(required []string) bool {
	for _, want := range required {
		found := false
		for _, have := range id.scopes {
			if have == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// pickClaims keeps the configured claims whose values can be header values:
// strings, numbers and booleans. Nested objects and lists are skipped
// rather than flattened into a format a backend would have to guess.
func pickClaims(all map[string]any, wanted map[string]string) map[string]string {
	if len(wanted) == 0 {
		return nil
	}
	var out map[string]string
	for claim := range wanted {
		var s string
		switch v := all[claim].(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case float64:
			s = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(v)
		default:
			continue
		}
		if !validHeaderValue(s) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[claim] = s
	}
	return out
}
