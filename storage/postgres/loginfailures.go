package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

// AddLoginFailure implements storage.Store in one statement: the row lock
// ON CONFLICT takes serializes concurrent failures on one key, and the
// reset (an expired row, or a quiet period past forgetAfter) is decided on
// the row as locked, so no failure is lost between replicas.
func (s *Store) AddLoginFailure(ctx context.Context, key string, now time.Time, forgetAfter time.Duration) (storage.LoginFailures, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	nowNs := nanos(now)
	var count, last int64
	err := s.pool.QueryRow(bctx, `INSERT INTO login_failures AS f (id, count, last_ns, expires_ns) VALUES ($1, 1, $2, $3)
ON CONFLICT (id) DO UPDATE SET
    count = CASE WHEN f.expires_ns < $2 OR f.last_ns < $4 THEN 1 ELSE f.count + 1 END,
    last_ns = excluded.last_ns,
    expires_ns = excluded.expires_ns
RETURNING count, last_ns`,
		bin(key), nowNs, nanos(now.Add(forgetAfter)), nanos(now.Add(-forgetAfter))).Scan(&count, &last)
	if err != nil {
		return storage.LoginFailures{}, s.fail(ctx, "add login failure", err)
	}
	return storage.LoginFailures{Count: int(count), Last: fromNanos(last)}, nil
}

// LoginFailures implements storage.Store.
func (s *Store) LoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var count, last int64
	err := s.pool.QueryRow(bctx, `SELECT count, last_ns FROM login_failures WHERE id = $1 AND expires_ns >= $2`,
		bin(key), s.nowNanos()).Scan(&count, &last)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return storage.LoginFailures{}, nil
	case err != nil:
		return storage.LoginFailures{}, s.fail(ctx, "read login failures", err)
	}
	return storage.LoginFailures{Count: int(count), Last: fromNanos(last)}, nil
}

// ClearLoginFailures implements storage.Store.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(bctx, `DELETE FROM login_failures WHERE id = $1`, bin(key)); err != nil {
		return s.fail(ctx, "clear login failures", err)
	}
	return nil
}
