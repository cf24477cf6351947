package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

var metaRevFloor = []byte("revfloor")

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// appendRevocation records r in tx. The bucket's sequence gives Seq: one
// writer at a time, so Seq order is commit order.
func (s *Store) appendRevocation(tx *bbolt.Tx, r storage.Revocation, now time.Time) (storage.Revocation, error) {
	b := tx.Bucket(bucketRevocations)
	seq, err := b.NextSequence()
	if err != nil {
		return r, err
	}
	r.Seq, r.Time = seq, now.UTC()
	r.Until = r.Until.UTC()
	keep := r.Until
	if t := r.Time.Add(s.retention); t.After(keep) {
		keep = t
	}
	if err := b.Put(seqKey(seq), encodeRevocation(r)); err != nil {
		return r, err
	}
	return r, tx.Bucket(bucketRevExp).Put(timeKey(keep, seqKey(seq)), nil)
}

// AppendRevocation implements storage.Store.
func (s *Store) AppendRevocation(ctx context.Context, r storage.Revocation) (storage.Revocation, error) {
	if r.Kind == "" || r.ID == "" {
		return r, errors.New("append revocation: kind and ID are required")
	}
	now := s.now()
	var out storage.Revocation
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		var err error
		out, err = s.appendRevocation(tx, r, now)
		return err
	})
	if err != nil {
		return storage.Revocation{}, fmt.Errorf("append %s revocation: %w", r.Kind, err)
	}
	return out, nil
}

// Revocations implements storage.Store.
func (s *Store) Revocations(ctx context.Context, after uint64, limit int) ([]storage.Revocation, error) {
	if after == ^uint64(0) || limit <= 0 {
		return nil, nil
	}
	var out []storage.Revocation
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRevocations).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			r, err := decodeRevocation(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list revocations after %d: %w", after, err)
	}
	return out, nil
}

// RevocationRange implements storage.Store.
func (s *Store) RevocationRange(ctx context.Context) (floor, head uint64, err error) {
	err = s.view(ctx, func(tx *bbolt.Tx) error {
		head = tx.Bucket(bucketRevocations).Sequence()
		if v := tx.Bucket(bucketMeta).Get(metaRevFloor); len(v) == 8 {
			floor = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("revocation range: %w", err)
	}
	return floor, head, nil
}

// sweepRevocations removes events kept long enough and raises the floor to
// the highest Seq removed.
func sweepRevocations(tx *bbolt.Tx, now time.Time) (int, error) {
	exp := tx.Bucket(bucketRevExp)
	keys := expiredKeys(exp, now)
	if len(keys) == 0 {
		return 0, nil
	}
	meta := tx.Bucket(bucketMeta)
	var floor uint64
	if v := meta.Get(metaRevFloor); len(v) == 8 {
		floor = binary.BigEndian.Uint64(v)
	}
	revs := tx.Bucket(bucketRevocations)
	for _, k := range keys {
		seq := k[8:]
		if err := revs.Delete(seq); err != nil {
			return 0, err
		}
		if err := exp.Delete(k); err != nil {
			return 0, err
		}
		if n := binary.BigEndian.Uint64(seq); n > floor {
			floor = n
		}
	}
	return len(keys), meta.Put(metaRevFloor, seqKey(floor))
}

// latestLiveAccess is the access token among removed still valid at now
// that expires last, or false when there is none: caches hold access
// tokens only, so an event covers those, Until its expiry.
func latestLiveAccess(removed []storage.Token, now time.Time) (storage.Token, bool) {
	var latest storage.Token
	live := false
	for _, t := range removed {
		if t.Kind != storage.AccessToken || isExpired(t, now) {
			continue
		}
		if !live || t.ExpiresAt.After(latest.ExpiresAt) {
			latest, live = t, true
		}
	}
	return latest, live
}
