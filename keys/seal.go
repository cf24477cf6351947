package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// ErrWrongSecret means sealed key material cannot be opened with the system
// secret in use: the server was started with a different secret from the one
// the keys were created with.
var ErrWrongSecret = errors.New("the system secret differs from the one the signing keys were created with (check POSTERN_SECRET / --secret-file)")

// ErrCorrupt means sealed key material was made with this secret but does
// not authenticate: it was altered, truncated, or copied onto another key's
// record.
var ErrCorrupt = errors.New("sealed key material is corrupt or belongs to another key")

// Purpose labels for Secret.Derive. Changing one makes every sealed key
// unreadable, hence the version suffix.
const (
	purposeSeal      = "postern key encryption v1"
	purposeSealCheck = "postern key encryption check v1"
)

// Sealed layout: version (1) | secret check (8) | nonce (12) | GCM ciphertext+tag.
//
// The check value is a short HKDF output of the secret under its own label.
// It lets Open tell "wrong secret" (an operator error with a clear fix) from
// "tampered record" (a storage problem) instead of reporting one opaque GCM
// failure for both. It reveals nothing usable about the encryption key.
const (
	sealVersion = 1
	checkLen    = 8
	sealHeader  = 1 + checkLen
)

// sealer encrypts key material at rest with AES-256-GCM. The key ID is the
// additional authenticated data, so a ciphertext moved onto another key's
// record fails to open instead of silently serving the wrong private key.
type sealer struct {
	aead  cipher.AEAD
	check []byte
}

func newSealer(s Secret) (*sealer, error) { return newSealerFor(s, purposeSeal) }

// newSealerFor seals under a key derived for purpose, so that material of
// another kind (ACME certificates) never shares a key with signing keys.
func newSealerFor(s Secret, purpose string) (*sealer, error) {
	if s.isZero() {
		return nil, errors.New("no system secret")
	}
	block, err := aes.NewCipher(s.Derive(purpose, 32))
	if err != nil {
		return nil, fmt.Errorf("key encryption: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key encryption: %w", err)
	}
	return &sealer{aead: aead, check: s.Derive(purposeSealCheck, checkLen)}, nil
}

// seal encrypts plaintext bound to keyID. Random 96-bit nonces are safe
// here: keys are sealed a handful of times per rotation, far below the 2^32
// messages where nonce collisions become a concern.
func (s *sealer) seal(keyID string, plaintext []byte) ([]byte, error) {
	out := make([]byte, sealHeader+s.aead.NonceSize(), sealHeader+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:], s.check)
	nonce := out[sealHeader:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal key %s: %w", keyID, err)
	}
	return s.aead.Seal(out, nonce, plaintext, []byte(keyID)), nil
}

// open reverses seal. It returns an error wrapping ErrWrongSecret when the
// data was sealed under another secret, and ErrCorrupt when it was sealed
// under this one but does not authenticate for keyID.
func (s *sealer) open(keyID string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < sealHeader+ns+s.aead.Overhead() {
		return nil, fmt.Errorf("open key %s: %w (too short)", keyID, ErrCorrupt)
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("open key %s: unknown sealing version %d (written by a newer Postern?)", keyID, sealed[0])
	}
	if !bytes.Equal(sealed[1:sealHeader], s.check) {
		return nil, fmt.Errorf("open key %s: %w", keyID, ErrWrongSecret)
	}
	nonce := sealed[sealHeader : sealHeader+ns]
	pt, err := s.aead.Open(nil, nonce, sealed[sealHeader+ns:], []byte(keyID))
	if err != nil {
		return nil, fmt.Errorf("open key %s: %w", keyID, ErrCorrupt)
	}
	return pt, nil
}
