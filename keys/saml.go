package keys

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/postern-auth/postern/storage"
)

// SAMLSP is the Algorithm of a SAML service-provider key record: an RSA key
// pair and a self-signed certificate with which Postern signs its
// AuthnRequests to one identity provider and decrypts the assertions that
// provider encrypts for it. It is not a JWT key: the Manager neither
// publishes it in the JWKS nor signs tokens with it, and Rotate keeps it as
// it is.
const SAMLSP = "saml-sp"

// samlRecordPrefix starts the ID of every SAML key record; the provider ID
// follows ("saml-sp:corp"). Signing-key IDs are JWK thumbprints (base64url),
// which never contain a colon, so the two cannot collide.
const samlRecordPrefix = "saml-sp:"

// samlCertLifetime is how long the self-signed certificate is valid. SAML
// metadata uses a certificate only as a container for the public key (the
// SAML V2.0 Metadata Interoperability Profile), and an IdP that checked the
// dates would stop trusting Postern on the day it expired, so it is long.
const samlCertLifetime = 20 * 365 * 24 * time.Hour

// SAMLKeyPair returns the SAML service-provider key pair of providerID,
// generating and storing it on first use. Like signing keys, the private
// half is sealed with a key derived from secret before it reaches the store
// (the record ID is authenticated with it), so it survives restarts and a
// copy of the store alone does not reveal it. When two processes race, the
// first record stored wins and both return it.
func SAMLKeyPair(ctx context.Context, store Store, secret Secret, providerID string) (*rsa.PrivateKey, *x509.Certificate, error) {
	if providerID == "" {
		return nil, nil, errors.New("SAML key pair: empty provider ID")
	}
	id := samlRecordPrefix + providerID
	sl, err := newSealer(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("SAML key pair %s: %w", id, err)
	}
	records, err := store.Keys(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("SAML key pair %s: %w", id, err)
	}
	if i := slices.IndexFunc(records, func(k storage.Key) bool { return k.ID == id }); i >= 0 {
		return openSAMLRecord(records[i], sl)
	}

	// Generated outside the transaction: RSA generation takes a while and
	// must not hold the store's write lock.
	rec, err := newSAMLRecord(sl, id, providerID, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("SAML key pair %s: %w", id, err)
	}
	winner := rec
	err = store.UpdateKeys(ctx, func(old []storage.Key) ([]storage.Key, error) {
		if i := slices.IndexFunc(old, func(k storage.Key) bool { return k.ID == id }); i >= 0 {
			winner = old[i]
			return old, nil
		}
		return append(slices.Clone(old), rec), nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store SAML key pair %s: %w", id, err)
	}
	return openSAMLRecord(winner, sl)
}

// newSAMLRecord generates an RSA 2048 key and its self-signed certificate
// and returns them as a store record: the certificate (DER) in Public, the
// PKCS #8 private key sealed to the record ID in Private.
func newSAMLRecord(sl *sealer, id, providerID string, now time.Time) (storage.Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return storage.Key{}, fmt.Errorf("generate RSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return storage.Key{}, fmt.Errorf("certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Postern SAML SP " + providerID},
		NotBefore:             now.Add(-time.Hour).UTC(), // tolerate an IdP whose clock is behind
		NotAfter:              now.Add(samlCertLifetime).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return storage.Key{}, fmt.Errorf("self-sign certificate: %w", err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return storage.Key{}, fmt.Errorf("encode private key: %w", err)
	}
	sealed, err := sl.seal(id, pkcs8)
	clear(pkcs8)
	if err != nil {
		return storage.Key{}, err
	}
	return storage.Key{
		ID:        id,
		Algorithm: SAMLSP,
		CreatedAt: now.UTC().Round(0),
		Public:    der,
		Private:   sealed,
	}, nil
}

// openSAMLRecord decrypts a SAML record and checks that its private key is
// the one its certificate carries.
func openSAMLRecord(rec storage.Key, sl *sealer) (*rsa.PrivateKey, *x509.Certificate, error) {
	if rec.Algorithm != SAMLSP {
		return nil, nil, fmt.Errorf("key record %s has algorithm %q, want %q", rec.ID, rec.Algorithm, SAMLSP)
	}
	cert, err := x509.ParseCertificate(rec.Public)
	if err != nil {
		return nil, nil, fmt.Errorf("SAML certificate %s: %w", rec.ID, err)
	}
	pt, err := sl.open(rec.ID, rec.Private)
	if err != nil {
		return nil, nil, err
	}
	defer clear(pt) // best effort: the parsed key still lives on the heap
	parsed, err := x509.ParsePKCS8PrivateKey(pt)
	if err != nil {
		return nil, nil, fmt.Errorf("decode SAML private key %s: %w", rec.ID, err)
	}
	priv, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("SAML private key %s is %T, want RSA", rec.ID, parsed)
	}
	if !priv.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("SAML private key %s does not match its certificate", rec.ID)
	}
	return priv, cert, nil
}
