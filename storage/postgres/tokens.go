package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

// sweepChunk bounds the rows one sweep statement deletes, so that a large
// backlog is removed in short transactions rather than one long one.
const sweepChunk = 1000

const tokenCols = `kind, signature, request_id, client_id, subject, created_ns, expires_ns, active, data`

// insertToken stores a token unless a live one holds its key: an expired row
// under the key is replaced in place (its index entries follow the row), a
// live one makes the statement affect no row.
const insertToken = `INSERT INTO tokens AS t (` + tokenCols + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (kind, signature) DO UPDATE SET
    request_id = excluded.request_id, client_id = excluded.client_id, subject = excluded.subject,
    created_ns = excluded.created_ns, expires_ns = excluded.expires_ns,
    active = excluded.active, data = excluded.data
WHERE t.expires_ns < $10`

func checkKey(t storage.Token) error {
	if t.Kind == "" || t.Signature == "" {
		return errors.New("token without kind or signature")
	}
	return nil
}

func insertArgs(t storage.Token, now int64) []any {
	return []any{string(t.Kind), bin(t.Signature), bin(t.RequestID), bin(t.ClientID), bin(t.Subject),
		optNanos(t.CreatedAt), nanos(t.ExpiresAt), t.Active, t.Data, now}
}

func scanToken(row pgx.Row) (storage.Token, error) {
	var t storage.Token
	var kind string
	var created *int64
	var expires int64
	err := row.Scan(&kind, (*bin)(&t.Signature), (*bin)(&t.RequestID), (*bin)(&t.ClientID), (*bin)(&t.Subject),
		&created, &expires, &t.Active, &t.Data)
	if err != nil {
		return storage.Token{}, err
	}
	t.Kind = storage.Kind(kind)
	t.CreatedAt = fromOptNanos(created)
	t.ExpiresAt = fromNanos(expires)
	return t, nil
}

func collectTokens(rows pgx.Rows) ([]storage.Token, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Token, error) { return scanToken(r) })
}

// CreateToken implements storage.Store.
func (s *Store) CreateToken(ctx context.Context, t storage.Token) error {
	what := fmt.Sprintf("create %s token", t.Kind)
	if err := checkKey(t); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(bctx, insertToken, insertArgs(t, s.nowNanos())...)
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrAlreadyExists
	}
	if err != nil {
		return s.fail(ctx, what, err)
	}
	return nil
}

// GetToken implements storage.Store. Access tokens are served from the
// replica's cache when it holds them (see cache.go).
func (s *Store) GetToken(ctx context.Context, kind storage.Kind, signature string) (storage.Token, error) {
	what := fmt.Sprintf("get %s token", kind)
	now := s.nowNanos()
	var gen uint64
	cached := kind == storage.AccessToken && s.cache != nil
	if cached {
		if t, ok := s.cache.get(signature, now); ok {
			return t, nil
		}
		gen = s.cache.generation()
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	t, err := scanToken(s.pool.QueryRow(bctx,
		`SELECT `+tokenCols+` FROM tokens WHERE kind = $1 AND signature = $2 AND expires_ns >= $3`,
		string(kind), bin(signature), now))
	if err == nil && t.Active && cached {
		s.cache.put(t, gen)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return storage.Token{}, s.fail(ctx, what, storage.ErrNotFound)
	case err != nil:
		return storage.Token{}, s.fail(ctx, what, err)
	case !t.Active:
		return t, s.fail(ctx, what, storage.ErrInactive)
	}
	return t, nil
}

// DeleteToken implements storage.Store. An expired token is removed but
// reported as not found, as it was already invisible.
func (s *Store) DeleteToken(ctx context.Context, kind storage.Kind, signature string) error {
	what := fmt.Sprintf("delete %s token", kind)
	now := s.nowNanos()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var expires int64
	const del = `DELETE FROM tokens WHERE kind = $1 AND signature = $2 RETURNING expires_ns`
	var err error
	if kind == storage.AccessToken && s.cache != nil {
		// Other replicas may cache it: they hear of it when this commits.
		err = s.inTx(bctx, func(tx pgx.Tx) error {
			if err := tx.QueryRow(bctx, del, string(kind), bin(signature)).Scan(&expires); err != nil {
				return err
			}
			return s.notify(bctx, tx, notePrefixToken+hex.EncodeToString([]byte(signature)))
		})
		s.cache.evictSig(signature)
	} else {
		err = s.pool.QueryRow(bctx, del, string(kind), bin(signature)).Scan(&expires)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && expires < now):
		return s.fail(ctx, what, storage.ErrNotFound)
	case err != nil:
		return s.fail(ctx, what, err)
	}
	return nil
}

// Redeem implements storage.Store, as one transaction: the token's row is
// locked first, so a concurrent redemption (on this replica or another)
// waits for this one to commit and then finds the token used. The returned
// record is as stored after the call: Active is false both on success and
// with ErrInactive.
func (s *Store) Redeem(ctx context.Context, kind storage.Kind, signature string, issue []storage.Token, retry *storage.Retry) (storage.Token, error) {
	what := fmt.Sprintf("redeem %s token", kind)
	if retry != nil && retry.Successor == "" {
		return storage.Token{}, fmt.Errorf("%s: retry without a successor", what)
	}
	for _, t := range issue {
		if err := checkKey(t); err != nil {
			return storage.Token{}, fmt.Errorf("%s: issue: %w", what, err)
		}
	}
	now := s.nowNanos()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var rec storage.Token
	err := s.inTx(bctx, func(tx pgx.Tx) error {
		rec = storage.Token{}
		t, err := scanToken(tx.QueryRow(bctx,
			`SELECT `+tokenCols+` FROM tokens WHERE kind = $1 AND signature = $2 FOR UPDATE`,
			string(kind), bin(signature)))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return storage.ErrNotFound
		case err != nil:
			return err
		case nanos(t.ExpiresAt) < now:
			return storage.ErrNotFound
		case !t.Active:
			rec = t
			return storage.ErrInactive
		}
		// One round trip for the issued tokens and the mark. Each insert is
		// its own statement, so two issued tokens with one key collide like
		// any others; the redeemed token's own key is live, so issuing it
		// again collides too. Any collision rolls the whole thing back.
		var b pgx.Batch
		for _, it := range issue {
			b.Queue(insertToken, insertArgs(it, now)...)
		}
		b.Queue(`UPDATE tokens SET active = false WHERE kind = $1 AND signature = $2`, string(kind), bin(signature))
		if retry != nil {
			// A row left by an expired token that once held this key is
			// replaced, like the token row itself.
			b.Queue(`INSERT INTO token_retries (kind, signature, successor, expires_ns, sealed) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (kind, signature) DO UPDATE SET successor = excluded.successor, expires_ns = excluded.expires_ns, sealed = excluded.sealed`,
				string(kind), bin(signature), bin(retry.Successor), nanos(retry.Until), retry.Sealed)
		}
		res := tx.SendBatch(bctx, &b)
		for range issue {
			tag, err := res.Exec()
			if err != nil {
				_ = res.Close()
				return err
			}
			if tag.RowsAffected() == 0 {
				_ = res.Close()
				return storage.ErrAlreadyExists
			}
		}
		if _, err := res.Exec(); err != nil {
			_ = res.Close()
			return err
		}
		if retry != nil {
			if _, err := res.Exec(); err != nil {
				_ = res.Close()
				return err
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
		if kind == storage.AccessToken && s.cache != nil {
			if err := s.notify(bctx, tx, notePrefixToken+hex.EncodeToString([]byte(signature))); err != nil {
				return err
			}
		}
		t.Active = false
		rec = t
		return nil
	})
	if kind == storage.AccessToken && s.cache != nil {
		s.cache.evictSig(signature)
	}
	switch {
	case errors.Is(err, storage.ErrInactive):
		return rec, s.fail(ctx, what, err)
	case err != nil:
		return storage.Token{}, s.fail(ctx, what, err)
	}
	return rec, nil
}

// RetryOf implements storage.Store, in one statement that also checks the
// redeemed token and its successor.
func (s *Store) RetryOf(ctx context.Context, kind storage.Kind, signature string) (storage.Retry, error) {
	what := fmt.Sprintf("retry of %s token", kind)
	now := s.nowNanos()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var r storage.Retry
	var until int64
	err := s.pool.QueryRow(bctx, `SELECT r.successor, r.expires_ns, r.sealed FROM token_retries r
JOIN tokens t ON t.kind = r.kind AND t.signature = r.signature
JOIN tokens n ON n.kind = r.kind AND n.signature = r.successor
WHERE r.kind = $1 AND r.signature = $2 AND r.expires_ns >= $3
    AND NOT t.active AND t.expires_ns >= $3 AND n.active AND n.expires_ns >= $3`,
		string(kind), bin(signature), now).Scan((*bin)(&r.Successor), &until, &r.Sealed)
	if errors.Is(err, pgx.ErrNoRows) {
		// Erased on read as well as by the sweeper: the sealed answer holds
		// live tokens and has no reason to outlast its window.
		_, _ = s.pool.Exec(bctx, `DELETE FROM token_retries WHERE kind = $1 AND signature = $2 AND expires_ns < $3`,
			string(kind), bin(signature), now)
		return storage.Retry{}, s.fail(ctx, what, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Retry{}, s.fail(ctx, what, err)
	}
	r.Until = fromNanos(until)
	return r, nil
}

// RevokeGrant implements storage.Store. The count includes expired records
// of the grant that the sweeper had not yet removed.
func (s *Store) RevokeGrant(ctx context.Context, requestID string) (int, error) {
	if requestID == "" {
		return 0, nil // never indexed
	}
	now := s.nowNanos()
	bctx, cancel := s.bound(ctx)
	defer cancel()
	var n int
	err := s.inTx(bctx, func(tx pgx.Tx) error {
		// The deleted rows' aggregate decides the event: the live access
		// tokens are what a cache may still hold.
		var until *int64
		var subject, client *bin
		err := tx.QueryRow(bctx, `WITH gone AS (DELETE FROM tokens WHERE request_id = $1 RETURNING kind, subject, client_id, expires_ns),
live AS (SELECT * FROM gone WHERE kind = $3 AND expires_ns >= $2)
SELECT (SELECT count(*) FROM gone), max(expires_ns), (array_agg(subject))[1], (array_agg(client_id))[1] FROM live`,
			bin(requestID), now, string(storage.AccessToken)).Scan(&n, &until, &subject, &client)
		if err != nil || until == nil {
			return err
		}
		r := storage.Revocation{Kind: storage.RevokedGrant, ID: requestID, Until: fromNanos(*until)}
		if subject != nil {
			r.Subject = string(*subject)
		}
		if client != nil {
			r.ClientID = string(*client)
		}
		_, err = s.appendRevocation(bctx, tx, r, now)
		return err
	})
	if s.cache != nil {
		// This replica's own revocation takes effect here at once; the
		// others' with the notification the event's transaction sent.
		s.cache.apply(storage.Revocation{Kind: storage.RevokedGrant, ID: requestID})
	}
	if err != nil {
		return 0, s.fail(ctx, fmt.Sprintf("revoke grant %q", requestID), err)
	}
	return n, nil
}

// GrantTokens implements storage.Store. Redeemed tokens are listed, expired
// ones are not.
func (s *Store) GrantTokens(ctx context.Context, requestID string) ([]storage.Token, error) {
	return s.list(ctx, "request_id", requestID, fmt.Sprintf("list tokens of grant %q", requestID))
}

// SubjectTokens implements storage.Store.
func (s *Store) SubjectTokens(ctx context.Context, subject string) ([]storage.Token, error) {
	return s.list(ctx, "subject", subject, fmt.Sprintf("list tokens of subject %q", subject))
}

// ClientTokens implements storage.Store.
func (s *Store) ClientTokens(ctx context.Context, clientID string) ([]storage.Token, error) {
	return s.list(ctx, "client_id", clientID, fmt.Sprintf("list tokens of client %q", clientID))
}

// list returns the unexpired tokens whose column (a constant of this file)
// equals owner.
func (s *Store) list(ctx context.Context, column, owner, what string) ([]storage.Token, error) {
	if owner == "" {
		return nil, nil // never indexed
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx,
		`SELECT `+tokenCols+` FROM tokens WHERE `+column+` = $1 AND `+column+` <> '' AND expires_ns >= $2`,
		bin(owner), s.nowNanos())
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	toks, err := collectTokens(rows)
	if err != nil {
		return nil, s.fail(ctx, what, err)
	}
	return toks, nil
}

// DeleteExpired implements storage.Store. It deletes in chunks of
// sweepChunk rows, each its own statement and time bound; if ctx ends
// between chunks it returns what it removed so far with ctx's error.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, table := range []string{"tokens", "token_retries", "once", "login_failures", "revoked_sessions", "subject_sessions_ended"} {
		key := "kind, signature"
		switch table {
		case "once":
			key = "namespace, id"
		case "login_failures", "revoked_sessions":
			key = "id"
		case "subject_sessions_ended":
			key = "subject"
		}
		// The outer expires_ns test is checked again on a row another
		// replica replaced or bumped meanwhile, which then stays.
		q := `DELETE FROM ` + table + ` WHERE expires_ns < $1 AND (` + key + `) IN
    (SELECT ` + key + ` FROM ` + table + ` WHERE expires_ns < $1 LIMIT $2)`
		for {
			bctx, cancel := s.bound(ctx)
			tag, err := s.pool.Exec(bctx, q, nanos(now), sweepChunk)
			cancel()
			if err != nil {
				return total, s.fail(ctx, "delete expired records", err)
			}
			n := int(tag.RowsAffected())
			total += n
			if n < sweepChunk {
				break
			}
		}
	}
	n, err := s.sweepRevocations(ctx, now)
	total += n
	if err != nil {
		return total, err
	}
	return total, nil
}
