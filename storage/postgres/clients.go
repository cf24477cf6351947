package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

const clientCols = `id, owner, created_ns, updated_ns, apis, data`

func clientArgs(c storage.Client) []any {
	// bytea[], as the contract allows any byte in an API ID; NOT NULL, so
	// no APIs is an empty array.
	apis := make([][]byte, len(c.APIs))
	for i, a := range c.APIs {
		apis[i] = []byte(a)
	}
	return []any{bin(c.ID), bin(c.Owner), optNanos(c.CreatedAt), optNanos(c.UpdatedAt), apis, c.Data}
}

func scanClient(row pgx.Row) (storage.Client, error) {
	var c storage.Client
	var created, updated *int64
	var apis [][]byte
	if err := row.Scan((*bin)(&c.ID), (*bin)(&c.Owner), &created, &updated, &apis, &c.Data); err != nil {
		return storage.Client{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromOptNanos(created), fromOptNanos(updated)
	for _, a := range apis {
		c.APIs = append(c.APIs, string(a))
	}
	return c, nil
}

// CreateClient implements storage.Store.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	what := fmt.Sprintf("create client %q", c.ID)
	if c.ID == "" {
		return errors.New("create client: client without ID")
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(bctx, `INSERT INTO clients (`+clientCols+`) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO NOTHING`, clientArgs(c)...)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrAlreadyExists
	}
	if err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// GetClient implements storage.Store.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	c, err := scanClient(s.pool.QueryRow(bctx, `SELECT `+clientCols+` FROM clients WHERE id = $1`, bin(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Client{}, s.fail(ctx, fmt.Sprintf("get client %q", id), err)
	}
	return c, nil
}

// UpdateClient implements storage.Store. The row is locked from the read
// to the commit, so a concurrent update (on this replica or another) waits
// and then reads this one's result. fn runs once: inTx runs a transaction
// again only after a serialization failure or a deadlock, which one row
// lock under READ COMMITTED does not cause.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	what := fmt.Sprintf("update client %q", id)
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var out storage.Client
	var fnErr error
	err := s.inTx(bctx, func(tx pgx.Tx) error {
		fnErr = nil
		old, err := scanClient(tx.QueryRow(bctx, `SELECT `+clientCols+` FROM clients WHERE id = $1 FOR UPDATE`, bin(id)))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return storage.ErrNotFound
		case err != nil:
			return err
		}
		c, err := fn(old)
		if err != nil {
			fnErr = err
			return err
		}
		c.ID, c.Owner, c.CreatedAt = old.ID, old.Owner, old.CreatedAt
		args := clientArgs(c)
		if _, err := tx.Exec(bctx, `UPDATE clients SET updated_ns = $2, apis = $3, data = $4 WHERE id = $1`,
			args[0], args[3], args[4], args[5]); err != nil {
			return err
		}
		// What a GetClient would return.
		out, err = scanClient(tx.QueryRow(bctx, `SELECT `+clientCols+` FROM clients WHERE id = $1`, bin(id)))
		return err
	})
	switch {
	case fnErr != nil:
		return storage.Client{}, fmt.Errorf("%s: %w", what, fnErr)
	case err != nil:
		return storage.Client{}, s.fail(ctx, what, err)
	}
	return out, nil
}

// ListClients implements storage.Store; bytea sorts IDs bytewise, and the
// zero time (NULL) is the oldest.
func (s *Store) ListClients(ctx context.Context, owner string) ([]storage.Client, error) {
	what := fmt.Sprintf("list clients of %q", owner)
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx, `SELECT `+clientCols+` FROM clients WHERE owner = $1
ORDER BY created_ns NULLS FIRST, id`, bin(owner))
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Client, error) { return scanClient(r) })
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	return out, nil
}

// AllClients implements storage.Store; bytea sorts IDs bytewise, as Go
// compares strings.
func (s *Store) AllClients(ctx context.Context) ([]storage.Client, error) {
	const what = "list every client"
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx, `SELECT `+clientCols+` FROM clients ORDER BY id`)
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Client, error) { return scanClient(r) })
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	return out, nil
}

// DeleteClient implements storage.Store, as one transaction. The client's
// row goes first: a concurrent DeleteClient waits on it and then finds
// nothing. The count includes expired records of the client that the
// sweeper had not yet removed, as RevokeGrant's does.
func (s *Store) DeleteClient(ctx context.Context, id string) (int, error) {
	now := s.nowNanos()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var n int
	err := s.inTx(bctx, func(tx pgx.Tx) error {
		n = 0
		tag, err := tx.Exec(bctx, `DELETE FROM clients WHERE id = $1`, bin(id))
		switch {
		case err != nil:
			return err
		case tag.RowsAffected() == 0:
			return storage.ErrNotFound
		}
		// Retries go with their tokens (ON DELETE CASCADE). The live access
		// tokens among those deleted are what a cache may still hold.
		var until *int64
		err = tx.QueryRow(bctx, `WITH gone AS (DELETE FROM tokens WHERE client_id = $1 AND client_id <> '' RETURNING kind, expires_ns)
SELECT count(*), max(expires_ns) FILTER (WHERE kind = $3 AND expires_ns >= $2) FROM gone`,
			bin(id), now, string(storage.AccessToken)).Scan(&n, &until)
		if err != nil || until == nil {
			return err
		}
		r := storage.Revocation{Kind: storage.RevokedClient, ID: id, ClientID: id, Until: fromNanos(*until)}
		_, err = s.appendRevocation(bctx, tx, r, now)
		return err
	})
	if s.cache != nil {
		// This replica's own revocation takes effect here at once; the
		// others' with the notification the event's transaction sent.
		s.cache.apply(storage.Revocation{Kind: storage.RevokedClient, ID: id})
	}
	if err != nil {
		return 0, s.fail(ctx, fmt.Sprintf("delete client %q", id), err)
	}
	return n, nil
}
