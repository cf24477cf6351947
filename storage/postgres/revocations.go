package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

const defaultRevocationRetention = 24 * time.Hour

// appendRevocation records r inside tx; see migration 0005 for why the
// sequence is a row.
func (s *Store) appendRevocation(ctx context.Context, tx pgx.Tx, r storage.Revocation, now int64) (storage.Revocation, error) {
	var seq int64
	if err := tx.QueryRow(ctx, `UPDATE revocation_state SET head = head + 1 RETURNING head`).Scan(&seq); err != nil {
		return r, err
	}
	r.Seq, r.Time, r.Until = uint64(seq), fromNanos(now), r.Until.UTC()
	keep := max(nanos(r.Until), now+int64(s.opts.RevocationRetention))
	_, err := tx.Exec(ctx, `INSERT INTO revocations (seq, time_ns, kind, id, subject, client_id, until_ns, expires_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, seq, now, string(r.Kind), bin(r.ID), bin(r.Subject), bin(r.ClientID), nanos(r.Until), keep)
	if err != nil {
		return r, err
	}
	// Sent on commit, to every replica (listen.go).
	return r, s.notify(ctx, tx, strconv.FormatInt(seq, 10))
}

// AppendRevocation implements storage.Store.
func (s *Store) AppendRevocation(ctx context.Context, r storage.Revocation) (storage.Revocation, error) {
	what := fmt.Sprintf("append %s revocation", r.Kind)
	if r.Kind == "" || r.ID == "" {
		return r, errors.New("append revocation: kind and ID are required")
	}
	now := s.nowNanos()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var out storage.Revocation
	err := s.inTx(bctx, func(tx pgx.Tx) error {
		var err error
		out, err = s.appendRevocation(bctx, tx, r, now)
		return err
	})
	if err != nil {
		return storage.Revocation{}, s.fail(ctx, what, err)
	}
	if s.cache != nil {
		s.cache.apply(out)
	}
	return out, nil
}

// Revocations implements storage.Store.
func (s *Store) Revocations(ctx context.Context, after uint64, limit int) ([]storage.Revocation, error) {
	if after >= 1<<63-1 || limit <= 0 {
		return nil, nil
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx, `SELECT seq, time_ns, kind, id, subject, client_id, until_ns FROM revocations
WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	if err != nil {
		return nil, s.fail(ctx, "list revocations", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Revocation, error) {
		var r storage.Revocation
		var seq, t, until int64
		var kind string
		err := row.Scan(&seq, &t, &kind, (*bin)(&r.ID), (*bin)(&r.Subject), (*bin)(&r.ClientID), &until)
		r.Seq, r.Time, r.Kind, r.Until = uint64(seq), fromNanos(t), storage.RevocationKind(kind), fromNanos(until)
		return r, err
	})
	if err != nil {
		return nil, s.fail(ctx, "list revocations", err)
	}
	return out, nil
}

// RevocationRange implements storage.Store.
func (s *Store) RevocationRange(ctx context.Context) (floor, head uint64, err error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var f, h int64
	if err := s.pool.QueryRow(bctx, `SELECT floor, head FROM revocation_state`).Scan(&f, &h); err != nil {
		return 0, 0, s.fail(ctx, "revocation range", err)
	}
	return uint64(f), uint64(h), nil
}

// sweepRevocations deletes events kept long enough, a chunk at a time, and
// raises the floor to the highest seq deleted, in the same transaction.
func (s *Store) sweepRevocations(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		bctx, cancel := s.bound(ctx)
		var n int
		err := s.inTx(bctx, func(tx pgx.Tx) error {
			var top *int64
			err := tx.QueryRow(bctx, `WITH gone AS (
    DELETE FROM revocations WHERE seq IN (SELECT seq FROM revocations WHERE expires_ns < $1 LIMIT $2) RETURNING seq)
SELECT count(*), max(seq) FROM gone`, nanos(now), sweepChunk).Scan(&n, &top)
			if err != nil || top == nil {
				return err
			}
			_, err = tx.Exec(bctx, `UPDATE revocation_state SET floor = GREATEST(floor, $1)`, *top)
			return err
		})
		cancel()
		if err != nil {
			return total, s.fail(ctx, "delete expired revocations", err)
		}
		total += n
		if n < sweepChunk {
			return total, nil
		}
	}
}
