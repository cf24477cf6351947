package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

func consentKey(subject, clientID string) []byte { return append(lp(subject), clientID...) }

func encodeConsent(c storage.Consent) []byte {
	e := encoder{buf: []byte{formatV1}}
	e.string(c.Subject)
	e.string(c.ClientID)
	// Scope tokens cannot contain spaces (RFC 6749 §3.3).
	e.string(strings.Join(c.Scopes, " "))
	e.time(c.GrantedAt)
	return e.buf
}

func decodeConsent(val []byte) (storage.Consent, error) {
	d := decoder{buf: val}
	d.version()
	c := storage.Consent{Subject: d.string(), ClientID: d.string()}
	c.Scopes = strings.Fields(d.string())
	c.GrantedAt = d.time()
	if err := d.finish(); err != nil {
		return storage.Consent{}, fmt.Errorf("consent: %w", err)
	}
	return c, nil
}

// PutConsent implements storage.Store.
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	if c.Subject == "" || c.ClientID == "" {
		return errors.New("put consent: subject and client are required")
	}
	c.GrantedAt = c.GrantedAt.UTC()
	key, val := consentKey(c.Subject, c.ClientID), encodeConsent(c)
	if err := s.batch(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketConsents).Put(key, val) }); err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	return nil
}

// GetConsent implements storage.Store.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	var c storage.Consent
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketConsents).Get(consentKey(subject, clientID))
		if v == nil {
			return storage.ErrNotFound
		}
		var err error
		c, err = decodeConsent(v)
		return err
	})
	if err != nil {
		return storage.Consent{}, fmt.Errorf("get consent: %w", err)
	}
	return c, nil
}

// ListConsents implements storage.Store; keys sort by client ID.
func (s *Store) ListConsents(ctx context.Context, subject string) ([]storage.Consent, error) {
	prefix := lp(subject)
	var out []storage.Consent
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketConsents).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			con, err := decodeConsent(v)
			if err != nil {
				return err
			}
			out = append(out, con)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	return out, nil
}

// DeleteConsent implements storage.Store.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	key := consentKey(subject, clientID)
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketConsents)
		if b.Get(key) == nil {
			return storage.ErrNotFound
		}
		return b.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("delete consent: %w", err)
	}
	return nil
}
