package keys

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/postern-auth/postern/storage"
)

// Rotate makes a new key active. In one UpdateKeys it adds the new key,
// retires the previously active key (still published until now+Overlap so
// tokens it signed keep verifying) and drops keys whose RetireAt has
// passed. Servers pick the change up when they start, or on Reload.
//
// Before changing anything it checks that secret opens the current active
// key: a rotation run with the wrong secret would otherwise store a new key
// that the servers cannot decrypt.
func Rotate(ctx context.Context, store Store, secret Secret, opts Options) (newKID string, err error) {
	kid, _, err := rotate(ctx, store, secret, opts, 0)
	return kid, err
}

// RotateIfOlder rotates only when the active key is older than maxAge, and
// decides that inside the store's transaction: replicas that run it at the
// same moment rotate once, not once each.
func RotateIfOlder(ctx context.Context, store Store, secret Secret, opts Options, maxAge time.Duration) (newKID string, rotated bool, err error) {
	return rotate(ctx, store, secret, opts, maxAge)
}

func rotate(ctx context.Context, store Store, secret Secret, opts Options, maxAge time.Duration) (newKID string, rotated bool, err error) {
	opts, err = opts.normalize()
	if err != nil {
		return "", false, fmt.Errorf("rotate signing keys: %w", err)
	}
	sl, err := newSealer(secret)
	if err != nil {
		return "", false, fmt.Errorf("rotate signing keys: %w", err)
	}
	// Generated outside the transaction: RSA generation can take a while
	// and must not hold the store's write lock.
	rec, err := newKeyRecord(sl, opts.Algorithm, opts.Now())
	if err != nil {
		return "", false, fmt.Errorf("rotate signing keys: %w", err)
	}
	err = store.UpdateKeys(ctx, func(old []storage.Key) ([]storage.Key, error) {
		now := opts.Now()
		rotated = true
		if maxAge > 0 {
			for _, k := range old {
				if k.Active && k.Algorithm != SAMLSP && k.CreatedAt.After(now.Add(-maxAge)) {
					rotated = false
					return old, nil
				}
			}
		}
		retireAt := now.Add(opts.Overlap).UTC().Round(0)
		next := make([]storage.Key, 0, len(old)+1)
		for _, k := range old {
			if k.Algorithm == SAMLSP {
				// Not a signing key: SAML key pairs are kept as they are.
				next = append(next, k)
				continue
			}
			if k.Active {
				if _, err := sl.open(k.ID, k.Private); err != nil {
					return nil, err
				}
				k.Active = false
				k.RetireAt = retireAt
			} else if k.RetireAt.IsZero() {
				// An inactive key without a retirement time should not
				// exist; give it the normal overlap rather than keep it
				// published forever.
				k.RetireAt = retireAt
			}
			if !k.RetireAt.After(now) {
				continue
			}
			next = append(next, k)
		}
		return append(next, rec), nil
	})
	if err != nil {
		return "", false, fmt.Errorf("rotate signing keys: %w", err)
	}
	if !rotated {
		return "", false, nil
	}
	return rec.ID, true, nil
}

// Info describes a stored key without its key material, for listing.
type Info struct {
	ID        string
	Algorithm string
	CreatedAt time.Time
	// RetireAt is when a rotated-out key leaves the JWKS; zero for the
	// active key.
	RetireAt time.Time
	Active   bool
}

// List returns the stored signing keys, active first, then newest first
// (SAML key pairs are not signing keys and are left out). It needs no
// secret, so an operator can inspect keys without access to it.
func List(ctx context.Context, store Store) ([]Info, error) {
	records, err := store.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	// A fresh slice (the store may hand out a shared one) without the SAML
	// key pairs, which are not signing keys.
	records = slices.DeleteFunc(slices.Clone(records), func(k storage.Key) bool { return k.Algorithm == SAMLSP })
	slices.SortFunc(records, compareKeys)
	out := make([]Info, 0, len(records))
	for _, r := range records {
		out = append(out, Info{ID: r.ID, Algorithm: r.Algorithm, CreatedAt: r.CreatedAt, RetireAt: r.RetireAt, Active: r.Active})
	}
	return out, nil
}
