package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevokeSession implements storage.Store in one statement; a second call
// keeps the later expiry.
func (s *Store) RevokeSession(ctx context.Context, id string, until time.Time) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(bctx, `INSERT INTO revoked_sessions AS r (id, expires_ns) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET expires_ns = GREATEST(r.expires_ns, excluded.expires_ns)`,
		bin(id), nanos(until))
	if err != nil {
		return s.fail(ctx, "revoke session", err)
	}
	return nil
}

// SessionRevoked implements storage.Store.
func (s *Store) SessionRevoked(ctx context.Context, id string) (bool, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var revoked bool
	err := s.pool.QueryRow(bctx, `SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE id = $1 AND expires_ns >= $2)`,
		bin(id), s.nowNanos()).Scan(&revoked)
	if err != nil {
		return false, s.fail(ctx, "read revoked session", err)
	}
	return revoked, nil
}

// EndSubjectSessions implements storage.Store in one INSERT ... ON
// CONFLICT DO UPDATE: the row lock serializes concurrent calls, and the
// forward-only merge is decided on the locked row (GREATEST skips a NULL,
// the zero time). An expired row is replaced.
func (s *Store) EndSubjectSessions(ctx context.Context, subject string, at, until time.Time) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(bctx, `INSERT INTO subject_sessions_ended AS e (subject, ended_ns, expires_ns) VALUES ($1, $2, $3)
ON CONFLICT (subject) DO UPDATE SET
    ended_ns = CASE WHEN e.expires_ns < $4 THEN excluded.ended_ns ELSE GREATEST(e.ended_ns, excluded.ended_ns) END,
    expires_ns = CASE WHEN e.expires_ns < $4 THEN excluded.expires_ns ELSE GREATEST(e.expires_ns, excluded.expires_ns) END`,
		bin(subject), optNanos(at), nanos(until), s.nowNanos())
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("end sessions of %q", subject), err)
	}
	return nil
}

// SubjectSessionsEndedAt implements storage.Store.
func (s *Store) SubjectSessionsEndedAt(ctx context.Context, subject string) (time.Time, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var ended *int64
	err := s.pool.QueryRow(bctx, `SELECT ended_ns FROM subject_sessions_ended WHERE subject = $1 AND expires_ns >= $2`,
		bin(subject), s.nowNanos()).Scan(&ended)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, s.fail(ctx, fmt.Sprintf("read sessions ended of %q", subject), err)
	}
	return fromOptNanos(ended), nil
}
