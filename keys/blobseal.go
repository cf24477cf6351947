package keys

// BlobSealer seals values other parts keep in the store (ACME certificates
// and the ACME account key) as signing keys are sealed: AES-256-GCM under a
// key derived from the system secret, the value's name as additional data
// (a sealed value copied under another name does not open), and the same
// wrong-secret / corrupt distinction (ErrWrongSecret, ErrCorrupt). Each
// purpose derives its own key.
type BlobSealer struct{ s *sealer }

// PurposeACME is the derivation label of ACME certificates and account
// keys. Changing it makes every stored certificate unreadable.
const PurposeACME = "postern acme cache v1"

// NewBlobSealer derives the sealing key for purpose from secret.
func NewBlobSealer(secret Secret, purpose string) (*BlobSealer, error) {
	s, err := newSealerFor(secret, purpose)
	if err != nil {
		return nil, err
	}
	return &BlobSealer{s: s}, nil
}

// Seal encrypts plaintext bound to name.
func (b *BlobSealer) Seal(name string, plaintext []byte) ([]byte, error) {
	return b.s.seal(name, plaintext)
}

// Open reverses Seal for the same name.
func (b *BlobSealer) Open(name string, sealed []byte) ([]byte, error) {
	return b.s.open(name, sealed)
}
