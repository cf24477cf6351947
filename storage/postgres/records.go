package postgres

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

// UseOnce implements storage.Store. An expired marker does not block: it is
// replaced, in the same statement that would have found it live.
func (s *Store) UseOnce(ctx context.Context, namespace, id string, exp time.Time) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(bctx, `INSERT INTO once AS o (namespace, id, expires_ns) VALUES ($1, $2, $3)
ON CONFLICT (namespace, id) DO UPDATE SET expires_ns = excluded.expires_ns WHERE o.expires_ns < $4`,
		bin(namespace), bin(id), nanos(exp), s.nowNanos())
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrAlreadyExists
	}
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("use once in %q", namespace), err)
	}
	return nil
}

const keyCols = `id, algorithm, created_ns, retire_ns, active, public, private`

func readKeys(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]storage.Key, error) {
	rows, err := q.Query(ctx, `SELECT `+keyCols+` FROM keys ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Key, error) {
		var k storage.Key
		var created, retire *int64
		err := r.Scan(&k.ID, &k.Algorithm, &created, &retire, &k.Active, &k.Public, &k.Private)
		k.CreatedAt, k.RetireAt = fromOptNanos(created), fromOptNanos(retire)
		return k, err
	})
}

// Keys implements storage.Store; they come back ordered by ID.
func (s *Store) Keys(ctx context.Context) ([]storage.Key, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	keys, err := readKeys(bctx, s.pool)
	if err != nil {
		return nil, s.fail(ctx, "read signing keys", err)
	}
	return keys, nil
}

// UpdateKeys implements storage.Store. The keys table is locked against
// other writers (readers still see the previous set) from before the read
// until the commit, so fn runs exactly once and two replicas cannot both
// rotate. fn must be quick: generate key material before calling.
func (s *Store) UpdateKeys(ctx context.Context, fn func(old []storage.Key) ([]storage.Key, error)) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var fnErr error
	err := pgx.BeginFunc(bctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(bctx, `LOCK TABLE keys IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		old, err := readKeys(bctx, tx)
		if err != nil {
			return err
		}
		keys, err := fn(old)
		if err != nil {
			fnErr = err
			return err
		}
		seen := make(map[string]bool, len(keys))
		var b pgx.Batch
		// Replace, not merge: a key fn left out is gone.
		b.Queue(`DELETE FROM keys`)
		for _, k := range keys {
			if k.ID == "" {
				fnErr = errors.New("key without ID")
				return fnErr
			}
			if seen[k.ID] {
				fnErr = fmt.Errorf("key ID %q twice: %w", k.ID, storage.ErrAlreadyExists)
				return fnErr
			}
			seen[k.ID] = true
			b.Queue(`INSERT INTO keys (`+keyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				k.ID, k.Algorithm, optNanos(k.CreatedAt), optNanos(k.RetireAt), k.Active, k.Public, k.Private)
		}
		return tx.SendBatch(bctx, &b).Close()
	})
	switch {
	case fnErr != nil:
		return fmt.Errorf("update signing keys: %w", fnErr)
	case err != nil:
		return s.fail(ctx, "update signing keys", err)
	}
	return nil
}

// AppendEvent implements storage.Store. A zero Time is set to now; an empty
// ID gets a random one that sorts by time.
func (s *Store) AppendEvent(ctx context.Context, e storage.Event) error {
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	if e.ID == "" {
		e.ID = newEventID(e.Time)
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(bctx, `INSERT INTO events
    (subject, time_ns, id, type, client_id, request_id, ip, user_agent, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		bin(e.Subject), nanos(e.Time), bin(e.ID), bin(e.Type), bin(e.ClientID), bin(e.RequestID),
		bin(e.IP), bin(e.UserAgent), bin(e.Detail))
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrAlreadyExists
	}
	if err == nil {
		// Keep the subject's newest MaxEventsPerSubject; the primary key
		// (subject, time_ns, id) serves both the OFFSET probe and the delete.
		_, err = s.pool.Exec(bctx, `DELETE FROM events WHERE subject = $1 AND (time_ns, id) <= (
  SELECT time_ns, id FROM events WHERE subject = $1 ORDER BY time_ns DESC, id DESC OFFSET $2 LIMIT 1)`,
			bin(e.Subject), storage.MaxEventsPerSubject)
	}
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("append %s event", e.Type), err)
	}
	return nil
}

// newEventID is 8 bytes of time and 8 random ones, in hex: unique without
// coordination between replicas, and ordered like the events it names. It
// matches the bbolt backend's, so IDs look alike whichever store wrote them.
func newEventID(t time.Time) string {
	var b [16]byte
	n := nanos(t)
	if n < 0 {
		n = 0
	}
	binary.BigEndian.PutUint64(b[:8], uint64(n))
	_, _ = rand.Read(b[8:]) // never fails since Go 1.24
	return hex.EncodeToString(b[:])
}

// ListEvents implements storage.Store. A limit below one lists nothing.
func (s *Store) ListEvents(ctx context.Context, subject string, limit int) ([]storage.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	what := fmt.Sprintf("list events of %q", subject)
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx, `SELECT subject, time_ns, id, type, client_id, request_id, ip, user_agent, detail
FROM events WHERE subject = $1 ORDER BY time_ns DESC, id DESC LIMIT $2`, bin(subject), limit)
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Event, error) {
		var e storage.Event
		var at int64
		err := r.Scan((*bin)(&e.Subject), &at, (*bin)(&e.ID), (*bin)(&e.Type), (*bin)(&e.ClientID),
			(*bin)(&e.RequestID), (*bin)(&e.IP), (*bin)(&e.UserAgent), (*bin)(&e.Detail))
		e.Time = fromNanos(at)
		return e, err
	})
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	return events, nil
}
