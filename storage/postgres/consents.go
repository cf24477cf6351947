package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

const consentCols = `subject, client_id, scopes, granted_ns`

func scanConsent(row pgx.Row) (storage.Consent, error) {
	var c storage.Consent
	var granted *int64
	if err := row.Scan((*bin)(&c.Subject), (*bin)(&c.ClientID), &c.Scopes, &granted); err != nil {
		return storage.Consent{}, err
	}
	c.GrantedAt = fromOptNanos(granted)
	return c, nil
}

// PutConsent implements storage.Store.
func (s *Store) PutConsent(ctx context.Context, c storage.Consent) error {
	if c.Subject == "" || c.ClientID == "" {
		return errors.New("put consent: subject and client are required")
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = []string{} // NOT NULL; reads back as no scopes
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	_, err := s.pool.Exec(bctx, `INSERT INTO consents (`+consentCols+`) VALUES ($1, $2, $3, $4)
ON CONFLICT (subject, client_id) DO UPDATE SET scopes = excluded.scopes, granted_ns = excluded.granted_ns`,
		bin(c.Subject), bin(c.ClientID), scopes, optNanos(c.GrantedAt))
	if err != nil {
		return s.fail(ctx, "put consent", err)
	}
	return nil
}

// GetConsent implements storage.Store.
func (s *Store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	c, err := scanConsent(s.pool.QueryRow(bctx,
		`SELECT `+consentCols+` FROM consents WHERE subject = $1 AND client_id = $2`, bin(subject), bin(clientID)))
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Consent{}, s.fail(ctx, "get consent", err)
	}
	return c, nil
}

// ListConsents implements storage.Store; bytea sorts client IDs bytewise.
func (s *Store) ListConsents(ctx context.Context, subject string) ([]storage.Consent, error) {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx,
		`SELECT `+consentCols+` FROM consents WHERE subject = $1 ORDER BY client_id`, bin(subject))
	if err != nil {
		return nil, s.fail(ctx, "list consents", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.Consent, error) { return scanConsent(r) })
	if err != nil {
		return nil, s.fail(ctx, "list consents", err)
	}
	return list, nil
}

// DeleteConsent implements storage.Store.
func (s *Store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	bctx, cancel := s.bound(ctx)
	defer cancel()
	tag, err := s.pool.Exec(bctx, `DELETE FROM consents WHERE subject = $1 AND client_id = $2`, bin(subject), bin(clientID))
	if err == nil && tag.RowsAffected() == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return s.fail(ctx, "delete consent", err)
	}
	return nil
}
