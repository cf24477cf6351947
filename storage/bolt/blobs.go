package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// GetBlob implements storage.Store.
func (s *Store) GetBlob(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketBlobs).Get(lp(name))
		if v == nil {
			return fmt.Errorf("blob %q: %w", name, storage.ErrNotFound)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// PutBlob implements storage.Store.
func (s *Store) PutBlob(ctx context.Context, name string, data []byte) error {
	k, v := lp(name), bytes.Clone(data)
	return s.batch(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketBlobs).Put(k, v) })
}

// DeleteBlob implements storage.Store.
func (s *Store) DeleteBlob(ctx context.Context, name string) error {
	k := lp(name)
	return s.batch(ctx, func(tx *bbolt.Tx) error { return tx.Bucket(bucketBlobs).Delete(k) })
}

// TryLease implements storage.Store. Leases are few (one per certificate)
// and overwritten in place, so they have no expiry index and no sweep.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	k := lp(name)
	var got bool
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		got = false
		now := s.now()
		b := tx.Bucket(bucketLeases)
		if v := b.Get(k); len(v) >= 8 {
			until := time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))
			if string(v[8:]) != holder && !until.Before(now) {
				return nil
			}
		}
		rec := binary.BigEndian.AppendUint64(nil, uint64(now.Add(ttl).UnixNano()))
		if err := b.Put(k, append(rec, holder...)); err != nil {
			return err
		}
		got = true
		return nil
	})
	return got, err
}

// ReleaseLease implements storage.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	k := lp(name)
	return s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		if v := b.Get(k); len(v) >= 8 && string(v[8:]) == holder {
			return b.Delete(k)
		}
		return nil
	})
}
