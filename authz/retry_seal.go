package authz

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// retryAnswer is what a refresh answered, kept for the retry window so that
// the same client presenting the same refresh token again gets it back
// unchanged (see flow_refresh.go). It holds live tokens: it is only
// ever stored sealed.
type retryAnswer struct {
	ClientID     string `json:"c"`
	AccessToken  string `json:"at"`
	RefreshToken string `json:"rt"`
	TokenType    string `json:"tt"`
	Scope        string `json:"s,omitempty"`
	// AccessExpiresAt is when the access token expires, so a retry's
	// expires_in counts from the original issue, not from the retry.
	AccessExpiresAt time.Time `json:"exp"`
	// Extra carries further response members (an ID token) as they were.
	Extra map[string]any `json:"x,omitempty"`
}

// retrySealer seals answers with XChaCha20-Poly1305 under a key derived from
// the system secret. Its 192-bit random nonces stay safe however many
// refreshes a deployment serves (AES-GCM's 96-bit ones would not, past 2^32
// seals under one key). The redeemed token's signature is the additional
// data, so a sealed answer copied onto another token's record does not open.
type retrySealer struct{ aead cipher.AEAD }

const retrySealVersion = 1

var errRetrySeal = errors.New("the stored refresh answer does not open")

func newRetrySealer(key []byte) (*retrySealer, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("refresh retry key: %w", err)
	}
	return &retrySealer{aead: aead}, nil
}

func retryAAD(sig string) []byte { return []byte("postern refresh retry\x00" + sig) }

func (s *retrySealer) seal(sig string, a retryAnswer) ([]byte, error) {
	pt, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode refresh answer: %w", err)
	}
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(pt)+s.aead.Overhead())
	out[0] = retrySealVersion
	// crypto/rand.Read cannot fail since Go 1.24 (it crashes the program instead).
	_, _ = rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], pt, retryAAD(sig)), nil
}

func (s *retrySealer) open(sig string, sealed []byte) (retryAnswer, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != retrySealVersion {
		return retryAnswer{}, errRetrySeal
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], retryAAD(sig))
	if err != nil {
		return retryAnswer{}, errRetrySeal
	}
	var a retryAnswer
	if err := json.Unmarshal(pt, &a); err != nil {
		return retryAnswer{}, fmt.Errorf("%w: %v", errRetrySeal, err)
	}
	return a, nil
}
