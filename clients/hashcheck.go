package clients

import (
	"fmt"
	"strings"

	"github.com/postern-auth/postern/passhash"
)

// ValidateSecretHash checks a configured client_secret_hash at load time, so
// a typo is a startup error naming the field rather than a client that can
// never authenticate.
func ValidateSecretHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, keyedSHA256Prefix):
		_, _, err := parseKeyedSHA256(hash)
		return err
	case strings.HasPrefix(hash, passhash.Prefix):
		_, err := passhash.Parse(hash)
		return err
	}
	return fmt.Errorf("unknown hash format (want %s... from `postern clients secret` or %s... from `postern clients hash`)", keyedSHA256Prefix, passhash.Prefix)
}
