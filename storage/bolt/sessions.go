package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// RevokeSession implements storage.Store. A record that already lasts at
// least as long is left alone (nothing is written, though the batch still
// commits); otherwise its until moves to the later one.
func (s *Store) RevokeSession(ctx context.Context, id string, until time.Time) error {
	k := lp(id)
	expKey := timeKey(until, k)
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		revs, exps := tx.Bucket(bucketSessRev), tx.Bucket(bucketSessRevExp)
		if v := revs.Get(k); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("revoked session: %w", errCorrupt)
			}
			if bytes.Compare(v, expKey[:8]) >= 0 {
				return nil
			}
			if err := exps.Delete(append(bytes.Clone(v), k...)); err != nil {
				return err
			}
		}
		if err := revs.Put(k, expKey[:8]); err != nil {
			return err
		}
		return exps.Put(expKey, nil)
	})
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

// SessionRevoked implements storage.Store. A record expiring exactly now is
// still live, as for tokens.
func (s *Store) SessionRevoked(ctx context.Context, id string) (bool, error) {
	k := lp(id)
	nowNanos := sortNanos(s.now())
	var revoked bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSessRev).Get(k)
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("revoked session: %w", errCorrupt)
		}
		revoked = binary.BigEndian.Uint64(v) >= nowNanos
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read revoked session: %w", err)
	}
	return revoked, nil
}

func sweepRevokedSessions(tx *bbolt.Tx, now time.Time) (int, error) {
	return sweepByExpiry(tx.Bucket(bucketSessRev), tx.Bucket(bucketSessRevExp), now)
}

// subjectEnd is a subject's "signed out everywhere" record: sessions that
// started at or before at are void; the record lasts until until.
type subjectEnd struct {
	at, until time.Time
}

func encodeSubjectEnd(e subjectEnd) []byte {
	enc := encoder{buf: []byte{formatV1}}
	enc.time(e.at)
	enc.time(e.until)
	return enc.buf
}

func decodeSubjectEnd(val []byte) (subjectEnd, error) {
	d := decoder{buf: val}
	d.version()
	e := subjectEnd{at: d.time(), until: d.time()}
	if err := d.finish(); err != nil {
		return subjectEnd{}, fmt.Errorf("subject sessions ended: %w", err)
	}
	return e, nil
}

// EndSubjectSessions implements storage.Store. The read of the old record
// and the write happen in one write transaction, so of concurrent calls
// the latest at wins whatever order they commit in.
func (s *Store) EndSubjectSessions(ctx context.Context, subject string, at, until time.Time) error {
	k := lp(subject)
	at, until = at.UTC(), until.UTC()
	now := s.now()
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		ends, exps := tx.Bucket(bucketSubjEnd), tx.Bucket(bucketSubjEndExp)
		rec := subjectEnd{at: at, until: until}
		if v := ends.Get(k); v != nil {
			old, err := decodeSubjectEnd(v)
			if err != nil {
				return err
			}
			// A live record only ever moves forward; an expired one is
			// absent to readers and is replaced.
			if !old.until.Before(now) {
				if old.at.After(rec.at) {
					rec.at = old.at
				}
				if old.until.After(rec.until) {
					rec.until = old.until
				}
			}
			if err := exps.Delete(timeKey(old.until, k)); err != nil {
				return err
			}
		}
		if err := ends.Put(k, encodeSubjectEnd(rec)); err != nil {
			return err
		}
		return exps.Put(timeKey(rec.until, k), nil)
	})
	if err != nil {
		return fmt.Errorf("end sessions of %q: %w", subject, err)
	}
	return nil
}

// SubjectSessionsEndedAt implements storage.Store.
func (s *Store) SubjectSessionsEndedAt(ctx context.Context, subject string) (time.Time, error) {
	k := lp(subject)
	now := s.now()
	var at time.Time
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSubjEnd).Get(k)
		if v == nil {
			return nil
		}
		e, err := decodeSubjectEnd(v)
		if err != nil {
			return err
		}
		if !e.until.Before(now) {
			at = e.at
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read sessions ended of %q: %w", subject, err)
	}
	return at, nil
}

func sweepSubjectEnds(tx *bbolt.Tx, now time.Time) (int, error) {
	return sweepByExpiry(tx.Bucket(bucketSubjEnd), tx.Bucket(bucketSubjEndExp), now)
}

// sweepByExpiry removes the records of an expiry index whose entries are
// be64(exp) + the record's key, and whose entry always names the record's
// current expiry (every update moves it), as loginexp does.
func sweepByExpiry(records, exps *bbolt.Bucket, now time.Time) (int, error) {
	keys := expiredKeys(exps, now)
	for _, k := range keys {
		if err := records.Delete(k[8:]); err != nil {
			return 0, err
		}
		if err := exps.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
