package bolt

import (
	"context"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// loginFailure is a counter as stored: the state and when it expires, from
// which its loginexp entry is rebuilt.
type loginFailure struct {
	storage.LoginFailures
	exp time.Time
}

func encodeLoginFailure(f loginFailure) []byte {
	e := encoder{buf: []byte{formatV1}}
	e.uvarint(uint64(f.Count))
	e.time(f.Last)
	e.time(f.exp)
	return e.buf
}

func decodeLoginFailure(val []byte) (loginFailure, error) {
	d := decoder{buf: val}
	d.version()
	var f loginFailure
	f.Count = int(d.uvarint())
	f.Last = d.time()
	f.exp = d.time()
	if err := d.finish(); err != nil {
		return loginFailure{}, fmt.Errorf("login failures: %w", err)
	}
	return f, nil
}

// AddLoginFailure implements storage.Store. The read, the reset decision
// and the write happen in one write transaction, so concurrent failures on
// one key are all counted.
func (s *Store) AddLoginFailure(ctx context.Context, key string, now time.Time, forgetAfter time.Duration) (storage.LoginFailures, error) {
	k := lp(key)
	now = now.UTC()
	next := loginFailure{exp: now.Add(forgetAfter)}
	next.Last = now
	expKey := timeKey(next.exp, k)
	var got storage.LoginFailures
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		fails, exps := tx.Bucket(bucketLoginFail), tx.Bucket(bucketLoginExp)
		count := 0
		if v := fails.Get(k); v != nil {
			old, err := decodeLoginFailure(v)
			if err != nil {
				return err
			}
			// Expired means before now, as for tokens; a quiet period
			// longer than forgetAfter forgives the past.
			if !old.exp.Before(now) && now.Sub(old.Last) <= forgetAfter {
				count = old.Count
			}
			if err := exps.Delete(timeKey(old.exp, k)); err != nil {
				return err
			}
		}
		rec := next
		rec.Count = count + 1
		if err := fails.Put(k, encodeLoginFailure(rec)); err != nil {
			return err
		}
		if err := exps.Put(expKey, nil); err != nil {
			return err
		}
		// Set on every run: bbolt may re-run fn, and the last run counts.
		got = rec.LoginFailures
		return nil
	})
	if err != nil {
		return storage.LoginFailures{}, fmt.Errorf("add login failure: %w", err)
	}
	return got, nil
}

// LoginFailures implements storage.Store.
func (s *Store) LoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	k := lp(key)
	now := s.now()
	var got storage.LoginFailures
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLoginFail).Get(k)
		if v == nil {
			return nil
		}
		f, err := decodeLoginFailure(v)
		if err != nil {
			return err
		}
		if !f.exp.Before(now) {
			got = f.LoginFailures
		}
		return nil
	})
	if err != nil {
		return storage.LoginFailures{}, fmt.Errorf("read login failures: %w", err)
	}
	return got, nil
}

// ClearLoginFailures implements storage.Store. Most good logins have no
// counter to clear, so it looks first and only writes (and syncs) when
// there is one.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	k := lp(key)
	var present bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		present = tx.Bucket(bucketLoginFail).Get(k) != nil
		return nil
	})
	if err == nil && present {
		err = s.batch(ctx, func(tx *bbolt.Tx) error { return deleteLoginFailure(tx, k) })
	}
	if err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

// deleteLoginFailure removes the counter under k (lp(key)) and its expiry
// entry, if there is one.
func deleteLoginFailure(tx *bbolt.Tx, k []byte) error {
	fails := tx.Bucket(bucketLoginFail)
	v := fails.Get(k)
	if v == nil {
		return nil
	}
	f, err := decodeLoginFailure(v)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketLoginExp).Delete(timeKey(f.exp, k)); err != nil {
		return err
	}
	return fails.Delete(k)
}

func sweepLoginFailures(tx *bbolt.Tx, now time.Time) (int, error) {
	fails, exps := tx.Bucket(bucketLoginFail), tx.Bucket(bucketLoginExp)
	keys := expiredKeys(exps, now)
	for _, k := range keys {
		// An entry always names its counter's current expiry:
		// AddLoginFailure moves it along with every bump.
		if err := fails.Delete(k[8:]); err != nil {
			return 0, err
		}
		if err := exps.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
