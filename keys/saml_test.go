package keys

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

func TestSAMLKeyPairCreatedOnceAndReused(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	priv, cert, err := SAMLKeyPair(ctx, store, mustSecret(t, testSecret), "corp")
	if err != nil {
		t.Fatal(err)
	}
	if priv.N.BitLen() != 2048 {
		t.Errorf("RSA key of %d bits, want 2048", priv.N.BitLen())
	}
	if !priv.PublicKey.Equal(cert.PublicKey) {
		t.Error("certificate does not carry the key")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
	if !strings.Contains(cert.Subject.CommonName, "corp") || !cert.NotAfter.After(time.Now().Add(10*365*24*time.Hour)) {
		t.Errorf("certificate subject %q, not after %v", cert.Subject.CommonName, cert.NotAfter)
	}

	// A second call (a restart) returns the same pair; another provider
	// gets its own.
	priv2, cert2, err := SAMLKeyPair(ctx, store, mustSecret(t, testSecret), "corp")
	if err != nil {
		t.Fatal(err)
	}
	if !priv2.Equal(priv) || !bytes.Equal(cert2.Raw, cert.Raw) {
		t.Error("second call returned another key pair")
	}
	other, _, err := SAMLKeyPair(ctx, store, mustSecret(t, testSecret), "partner")
	if err != nil {
		t.Fatal(err)
	}
	if other.Equal(priv) {
		t.Error("two providers share a key pair")
	}

	recs := store.snapshot()
	if len(recs) != 2 {
		t.Fatalf("store holds %d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.Algorithm != SAMLSP || r.Active || !strings.HasPrefix(r.ID, "saml-sp:") {
			t.Errorf("record %+v", r)
		}
		// The private key is sealed: no PKCS #8 DER of it in the clear.
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		if bytes.Contains(r.Private, der[len(der)-64:]) {
			t.Errorf("record %s holds the private key in the clear", r.ID)
		}
	}

	// The wrong secret cannot open it.
	if _, _, err := SAMLKeyPair(ctx, store, mustSecret(t, "another-secret-0123456789abcdef-0123"), "corp"); !errors.Is(err, ErrWrongSecret) {
		t.Errorf("wrong secret: err = %v, want ErrWrongSecret", err)
	}
	// A record moved onto another provider's ID does not open either.
	moved := &memStore{keys: store.snapshot()}
	moved.keys[0].ID, moved.keys[1].ID = moved.keys[1].ID, moved.keys[0].ID
	if _, _, err := SAMLKeyPair(ctx, moved, mustSecret(t, testSecret), "corp"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("swapped records: err = %v, want ErrCorrupt", err)
	}
}

func TestSAMLKeyPairConcurrentCreatesOne(t *testing.T) {
	store := &memStore{}
	var wg sync.WaitGroup
	certs := make([][]byte, 4)
	for i := range certs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, cert, err := SAMLKeyPair(context.Background(), store, mustSecret(t, testSecret), "corp")
			if err != nil {
				t.Error(err)
				return
			}
			certs[i] = cert.Raw
		}()
	}
	wg.Wait()
	for _, c := range certs[1:] {
		if !bytes.Equal(c, certs[0]) {
			t.Fatal("concurrent callers got different key pairs")
		}
	}
	if n := len(store.snapshot()); n != 1 {
		t.Errorf("store holds %d records, want 1", n)
	}
}

// TestSAMLKeyNeverASigningKey checks that the Manager leaves SAML key pairs
// out of the JWKS and never signs with them, and that rotation and listing
// leave them alone.
func TestSAMLKeyNeverASigningKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	opts := Options{Now: clk.now}
	store := &memStore{}
	// The SAML record exists before any signing key: Open must still
	// create one rather than mistake it for the key set.
	if _, _, err := SAMLKeyPair(ctx, store, mustSecret(t, testSecret), "corp"); err != nil {
		t.Fatal(err)
	}
	m := mustOpen(t, store, testSecret, opts)
	if m.Active().Algorithm != ES256 || strings.HasPrefix(m.Active().ID, "saml-sp:") {
		t.Fatalf("active key = %s %s", m.Active().ID, m.Active().Algorithm)
	}
	check := func(when string) {
		t.Helper()
		for _, kid := range kids(m.JWKS()) {
			if strings.HasPrefix(kid, "saml-sp:") {
				t.Errorf("%s: JWKS publishes %s", when, kid)
			}
		}
		if strings.Contains(string(m.JWKSJSON()), "saml") {
			t.Errorf("%s: JWKS document mentions the SAML key: %s", when, m.JWKSJSON())
		}
		if _, ok := m.PublicKey("saml-sp:corp"); ok {
			t.Errorf("%s: PublicKey finds the SAML key", when)
		}
		infos, err := List(ctx, store)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range infos {
			if i.Algorithm == SAMLSP {
				t.Errorf("%s: List shows the SAML key", when)
			}
		}
	}
	check("after Open")

	// Rotations (and the clean-up of retired keys they do) keep the SAML
	// record byte for byte.
	before := store.snapshot()
	for range 2 {
		clk.advance(48 * time.Hour)
		if _, err := Rotate(ctx, store, mustSecret(t, testSecret), opts); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	check("after rotations")
	after := store.snapshot()
	i := slices.IndexFunc(after, func(k storage.Key) bool { return k.ID == "saml-sp:corp" })
	j := slices.IndexFunc(before, func(k storage.Key) bool { return k.ID == "saml-sp:corp" })
	if i < 0 || !bytes.Equal(after[i].Private, before[j].Private) || !bytes.Equal(after[i].Public, before[j].Public) {
		t.Error("rotation changed or dropped the SAML key pair")
	}
	if _, _, err := SAMLKeyPair(ctx, store, mustSecret(t, testSecret), "corp"); err != nil {
		t.Errorf("SAML key pair after rotations: %v", err)
	}
}
