package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

// GetBlob implements storage.Store.
func (s *Store) GetBlob(ctx context.Context, name string) ([]byte, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var data []byte
	err := s.pool.QueryRow(bctx, `SELECT data FROM blobs WHERE name = $1`, bin(name)).Scan(&data)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("blob %q: %w", name, storage.ErrNotFound)
	case err != nil:
		return nil, s.fail(ctx, fmt.Sprintf("read blob %q", name), err)
	}
	return data, nil
}

// PutBlob implements storage.Store.
func (s *Store) PutBlob(ctx context.Context, name string, data []byte) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	if data == nil {
		data = []byte{} // the column is NOT NULL; an empty blob is still a blob
	}
	_, err := s.pool.Exec(bctx, `INSERT INTO blobs (name, data) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET data = excluded.data`, bin(name), data)
	if err != nil {
		return s.fail(ctx, fmt.Sprintf("write blob %q", name), err)
	}
	return nil
}

// DeleteBlob implements storage.Store.
func (s *Store) DeleteBlob(ctx context.Context, name string) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(bctx, `DELETE FROM blobs WHERE name = $1`, bin(name)); err != nil {
		return s.fail(ctx, fmt.Sprintf("delete blob %q", name), err)
	}
	return nil
}

// TryLease implements storage.Store in one INSERT ... ON CONFLICT DO
// UPDATE ... WHERE: the row lock serializes concurrent callers, and the
// update happens only when the lease is free for holder, so a returned row
// means holder has it.
func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	now := s.opts.Now()
	tag, err := s.pool.Exec(bctx, `INSERT INTO leases AS l (name, holder, expires_ns) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns
WHERE l.holder = excluded.holder OR l.expires_ns < $4`,
		bin(name), bin(holder), nanos(now.Add(ttl)), nanos(now))
	if err != nil {
		return false, s.fail(ctx, fmt.Sprintf("take lease %q", name), err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease implements storage.Store.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(bctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, bin(name), bin(holder)); err != nil {
		return s.fail(ctx, fmt.Sprintf("release lease %q", name), err)
	}
	return nil
}
