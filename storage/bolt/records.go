package bolt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// UseOnce implements storage.Store. An expired marker does not block: it is
// replaced.
func (s *Store) UseOnce(ctx context.Context, namespace, id string, exp time.Time) error {
	key := append(lp(namespace), id...)
	expKey := timeKey(exp, key)
	nowNanos := sortNanos(s.now())
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		once, onceExp := tx.Bucket(bucketOnce), tx.Bucket(bucketOnceExp)
		if v := once.Get(key); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("one-time marker: %w", errCorrupt)
			}
			// Expired means before now, as for tokens.
			if binary.BigEndian.Uint64(v) >= nowNanos {
				return storage.ErrAlreadyExists
			}
			if err := onceExp.Delete(append(bytes.Clone(v), key...)); err != nil {
				return err
			}
		}
		if err := once.Put(key, expKey[:8]); err != nil {
			return err
		}
		return onceExp.Put(expKey, nil)
	})
	if err != nil {
		return fmt.Errorf("use once in %q: %w", namespace, err)
	}
	return nil
}

func sweepOnce(tx *bbolt.Tx, now time.Time) (int, error) {
	once, onceExp := tx.Bucket(bucketOnce), tx.Bucket(bucketOnceExp)
	keys := expiredKeys(onceExp, now)
	for _, k := range keys {
		if err := once.Delete(k[8:]); err != nil {
			return 0, err
		}
		if err := onceExp.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Keys implements storage.Store; they come back ordered by ID.
func (s *Store) Keys(ctx context.Context) ([]storage.Key, error) {
	var keys []storage.Key
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		keys, err = readKeys(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	return keys, nil
}

func readKeys(tx *bbolt.Tx) ([]storage.Key, error) {
	var keys []storage.Key
	err := tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
		k, err := decodeKey(v)
		if err != nil {
			return err
		}
		keys = append(keys, k)
		return nil
	})
	return keys, err
}

// UpdateKeys implements storage.Store. fn runs exactly once, inside the write
// transaction: it holds the store's write lock, so it must be quick (generate
// key material before calling) and must not call back into the store.
func (s *Store) UpdateKeys(ctx context.Context, fn func(old []storage.Key) ([]storage.Key, error)) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := readKeys(tx)
		if err != nil {
			return err
		}
		keys, err := fn(old)
		if err != nil {
			return err
		}
		vals := make(map[string][]byte, len(keys))
		for _, k := range keys {
			if k.ID == "" {
				return errors.New("key without ID")
			}
			if _, dup := vals[k.ID]; dup {
				return fmt.Errorf("key ID %q twice: %w", k.ID, storage.ErrAlreadyExists)
			}
			vals[k.ID] = encodeKey(k)
		}
		// Replace, not merge: a key fn left out is gone.
		if err := tx.DeleteBucket(bucketKeys); err != nil {
			return err
		}
		b, err := tx.CreateBucket(bucketKeys)
		if err != nil {
			return err
		}
		for id, v := range vals {
			if err := b.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update signing keys: %w", err)
	}
	return nil
}

// AppendEvent implements storage.Store. A zero Time is set to now; an empty
// ID gets a random one that sorts by time.
func (s *Store) AppendEvent(ctx context.Context, e storage.Event) error {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = e.Time.UTC()
	if e.ID == "" {
		e.ID = newEventID(e.Time)
	}
	key := timeKey(e.Time, nil)
	key = append(append(lp(e.Subject), key...), e.ID...)
	val := encodeEvent(e)
	prefix := lp(e.Subject)
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b.Get(key) != nil {
			return storage.ErrAlreadyExists
		}
		if err := b.Put(key, val); err != nil {
			return err
		}
		return trimEvents(b, prefix)
	})
	if err != nil {
		return fmt.Errorf("append %s event: %w", e.Type, err)
	}
	return nil
}

// trimEvents drops a subject's oldest events beyond MaxEventsPerSubject.
// The walk is bounded by the cap, so an append stays cheap.
func trimEvents(b *bbolt.Bucket, prefix []byte) error {
	// Count first, keeping nothing: usually the subject is under the cap
	// and nothing is collected at all.
	c := b.Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	extra := n - storage.MaxEventsPerSubject
	if extra <= 0 {
		return nil
	}
	old := make([][]byte, 0, extra)
	for k, _ := c.Seek(prefix); k != nil && len(old) < extra; k, _ = c.Next() {
		old = append(old, bytes.Clone(k))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// newEventID is 8 bytes of time and 8 random ones, in hex: unique without
// coordination, and ordered like the events it names.
func newEventID(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], sortNanos(t))
	_, _ = rand.Read(b[8:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// ListEvents implements storage.Store. A limit below one lists nothing.
func (s *Store) ListEvents(ctx context.Context, subject string, limit int) ([]storage.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	prefix := lp(subject)
	end := prefixEnd(prefix)
	var events []storage.Event
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		// Start on the last key of the prefix: the one before the first key
		// past it.
		var k, v []byte
		if end == nil {
			k, v = c.Last()
		} else if k, _ = c.Seek(end); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(events) < limit; k, v = c.Prev() {
			e, err := decodeEvent(v)
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list events of %q: %w", subject, err)
	}
	return events, nil
}

// prefixEnd is the smallest key greater than every key with prefix p, or
// nil if there is none (p is all 0xff) and the walk must start at the end.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
