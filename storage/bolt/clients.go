package bolt

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// Clients registered at runtime live in regclients under lp(ID); regowners
// holds lp(Owner) + ID for each, so that ListClients seeks an owner's range
// instead of scanning every client. The index carries no time: an owner
// has a handful of clients, sorted on read, and the exact CreatedAt order
// then needs no clamped sort key.

func clientKey(id string) []byte { return lp(id) }

func ownerKey(owner, id string) []byte { return append(lp(owner), id...) }

func encodeClient(c storage.Client) []byte {
	n := 32 + len(c.ID) + len(c.Owner) + len(c.Data)
	for _, a := range c.APIs {
		n += 1 + len(a)
	}
	e := encoder{buf: make([]byte, 0, n)}
	e.buf = append(e.buf, formatV1)
	e.string(c.ID)
	e.string(c.Owner)
	e.time(c.CreatedAt)
	e.time(c.UpdatedAt)
	e.uvarint(uint64(len(c.APIs)))
	for _, a := range c.APIs {
		e.string(a)
	}
	e.bytes(c.Data)
	return e.buf
}

func decodeClient(val []byte) (storage.Client, error) {
	d := decoder{buf: val}
	d.version()
	c := storage.Client{ID: d.string(), Owner: d.string(), CreatedAt: d.time(), UpdatedAt: d.time()}
	// Each API takes at least its length byte: a count beyond what is left
	// is damage, not a reason to allocate.
	if n := d.uvarint(); n > uint64(len(d.buf)) {
		d.fail()
	} else if n > 0 {
		c.APIs = make([]string, n)
		for i := range c.APIs {
			c.APIs[i] = d.string()
		}
	}
	c.Data = d.bytes()
	if err := d.finish(); err != nil {
		return storage.Client{}, fmt.Errorf("client: %w", err)
	}
	return c, nil
}

func getClient(tx *bbolt.Tx, id string) (storage.Client, error) {
	v := tx.Bucket(bucketRegClients).Get(clientKey(id))
	if v == nil {
		return storage.Client{}, storage.ErrNotFound
	}
	return decodeClient(v)
}

// CreateClient implements storage.Store.
func (s *Store) CreateClient(ctx context.Context, c storage.Client) error {
	if c.ID == "" {
		return errors.New("create client: client without ID")
	}
	key, val, owner := clientKey(c.ID), encodeClient(c), ownerKey(c.Owner, c.ID)
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRegClients)
		if b.Get(key) != nil {
			return storage.ErrAlreadyExists
		}
		if err := b.Put(key, val); err != nil {
			return err
		}
		return tx.Bucket(bucketRegOwners).Put(owner, nil)
	})
	if err != nil {
		return fmt.Errorf("create client %q: %w", c.ID, err)
	}
	return nil
}

// GetClient implements storage.Store.
func (s *Store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	var c storage.Client
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		c, err = getClient(tx, id)
		return err
	})
	if err != nil {
		return storage.Client{}, fmt.Errorf("get client %q: %w", id, err)
	}
	return c, nil
}

// UpdateClient implements storage.Store. fn runs exactly once, inside the
// write transaction: it holds the store's write lock, so it must be quick
// (hash secrets before calling) and must not call back into the store.
// ID, Owner and CreatedAt stay, so the owner index entry stays too.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	var out storage.Client
	var fnErr error
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := getClient(tx, id)
		if err != nil {
			return err
		}
		c, err := fn(old)
		if err != nil {
			fnErr = err
			return err
		}
		c.ID, c.Owner, c.CreatedAt = old.ID, old.Owner, old.CreatedAt
		val := encodeClient(c)
		if err := tx.Bucket(bucketRegClients).Put(clientKey(id), val); err != nil {
			return err
		}
		// What a GetClient would return: times in UTC, slices the caller owns.
		out, err = decodeClient(val)
		return err
	})
	if err != nil {
		if fnErr != nil {
			return storage.Client{}, fmt.Errorf("update client %q: %w", id, fnErr)
		}
		return storage.Client{}, fmt.Errorf("update client %q: %w", id, err)
	}
	return out, nil
}

// ListClients implements storage.Store.
func (s *Store) ListClients(ctx context.Context, owner string) ([]storage.Client, error) {
	prefix := lp(owner)
	var out []storage.Client
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		clients := tx.Bucket(bucketRegClients)
		c := tx.Bucket(bucketRegOwners).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := string(k[len(prefix):])
			v := clients.Get(clientKey(id))
			if v == nil {
				return fmt.Errorf("owner index names a missing client: %w", errCorrupt)
			}
			cl, err := decodeClient(v)
			if err != nil {
				return err
			}
			out = append(out, cl)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list clients of %q: %w", owner, err)
	}
	slices.SortFunc(out, func(a, b storage.Client) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// AllClients implements storage.Store. Keys are length-prefixed, so the
// bucket's order is not the ID order: sorted after the scan.
func (s *Store) AllClients(ctx context.Context) ([]storage.Client, error) {
	var out []storage.Client
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRegClients).ForEach(func(_, v []byte) error {
			cl, err := decodeClient(v)
			if err != nil {
				return err
			}
			out = append(out, cl)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list every client: %w", err)
	}
	slices.SortFunc(out, func(a, b storage.Client) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteClient implements storage.Store. The count includes expired
// records of the client that the sweeper had not yet removed, as
// RevokeGrant's does.
func (s *Store) DeleteClient(ctx context.Context, id string) (int, error) {
	key := clientKey(id)
	now := s.now()
	var n int
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		n = 0
		old, err := getClient(tx, id)
		if err != nil {
			return err // not found decided before any write
		}
		b := openTokenBuckets(tx)
		removed, err := b.removeIndexed(b.clients, lp(id))
		if err != nil {
			return err
		}
		n = len(removed)
		if err := tx.Bucket(bucketRegClients).Delete(key); err != nil {
			return err
		}
		if err := tx.Bucket(bucketRegOwners).Delete(ownerKey(old.Owner, id)); err != nil {
			return err
		}
		if t, live := latestLiveAccess(removed, now); live {
			r := storage.Revocation{Kind: storage.RevokedClient, ID: id, ClientID: id, Until: t.ExpiresAt}
			if _, err := s.appendRevocation(tx, r, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete client %q: %w", id, err)
	}
	return n, nil
}
