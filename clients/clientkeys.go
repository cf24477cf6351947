package clients

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	// fosite's client interface speaks go-jose v3; Postern's own keys use v4.
	josev3 "github.com/go-jose/go-jose/v3"
)

// AuthPrivateKeyJWT is RFC 7523 client authentication: the client signs a
// short-lived JWT with its private key; Postern holds only the public half.
const AuthPrivateKeyJWT = "private_key_jwt"

// ClientAssertionAlgs are the signing algorithms a private_key_jwt client
// may register (RFC 7591 token_endpoint_auth_signing_alg).
var ClientAssertionAlgs = []string{"RS256", "PS256", "ES256"}

// ParseClientJWKS reads a client's registered key set (RFC 7591 jwks). It
// refuses private key material, so a pasted private JWK cannot end up in a
// configuration file, and keys for encryption only. A key without "use" is
// taken as a signing key, which fosite requires it to be.
func ParseClientJWKS(raw []byte) (*josev3.JSONWebKeySet, error) {
	var set josev3.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the key set has no keys")
	}
	for i := range set.Keys {
		k := &set.Keys[i]
		if !k.IsPublic() {
			return nil, fmt.Errorf("keys[%d] contains private key material; register only the public key", i)
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < 2048 {
				return nil, fmt.Errorf("keys[%d]: RSA key of %d bits; at least 2048 are required", i, pub.N.BitLen())
			}
		case *ecdsa.PublicKey:
		default:
			return nil, fmt.Errorf("keys[%d]: key type %T is not supported (want RSA or EC)", i, k.Key)
		}
		switch k.Use {
		case "":
			k.Use = "sig"
		case "sig":
		default:
			return nil, fmt.Errorf("keys[%d]: use %q; client assertion keys must be for signing", i, k.Use)
		}
	}
	return &set, nil
}
