package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// sweepChunk bounds the records one sweep transaction removes, so that a
// large backlog does not hold the write lock (and every token write behind
// it) for one long commit.
const sweepChunk = 1000

type tokenBuckets struct {
	tokens, grants, subjects, clients, expiry *bbolt.Bucket
	retry, retryExp                           *bbolt.Bucket
}

func openTokenBuckets(tx *bbolt.Tx) tokenBuckets {
	return tokenBuckets{
		tokens:   tx.Bucket(bucketTokens),
		grants:   tx.Bucket(bucketGrants),
		subjects: tx.Bucket(bucketSubjects),
		clients:  tx.Bucket(bucketClients),
		expiry:   tx.Bucket(bucketExpiry),
		retry:    tx.Bucket(bucketRetry),
		retryExp: tx.Bucket(bucketRetryExp),
	}
}

// prepared is a token with its key and value encoded before the transaction,
// so the write lock is held for Gets and Puts only. Batch functions share it
// across re-runs and must not modify it.
type prepared struct {
	key, val []byte
	t        storage.Token
}

func prepare(t storage.Token) (prepared, error) {
	if t.Kind == "" || t.Signature == "" {
		return prepared{}, errors.New("token without kind or signature")
	}
	return prepared{key: tokenKey(t.Kind, t.Signature), val: encodeToken(t), t: t}, nil
}

func isExpired(t storage.Token, now time.Time) bool { return t.ExpiresAt.Before(now) }

// taken reports whether key holds a live token. An expired one does not count:
// it is already invisible to readers, and the sweeper may or may not have
// come by yet.
func (b tokenBuckets) taken(key []byte, now time.Time) (bool, error) {
	v := b.tokens.Get(key)
	if v == nil {
		return false, nil
	}
	old, err := decodeToken(key, v)
	if err != nil {
		return false, err
	}
	return !isExpired(old, now), nil
}

// put stores p and its index entries, replacing an expired record under the
// same key. The caller has checked that the key is not taken.
func (b tokenBuckets) put(p prepared) error {
	if v := b.tokens.Get(p.key); v != nil {
		old, err := decodeToken(p.key, v)
		if err != nil {
			return err
		}
		if err := b.remove(p.key, old); err != nil {
			return err
		}
	}
	if err := b.tokens.Put(p.key, p.val); err != nil {
		return err
	}
	return b.index(p.key, p.t, func(bk *bbolt.Bucket, k []byte) error { return bk.Put(k, nil) })
}

// remove deletes the token under key, its index entries and its retry.
func (b tokenBuckets) remove(key []byte, t storage.Token) error {
	if err := b.tokens.Delete(key); err != nil {
		return err
	}
	if err := b.removeRetry(key); err != nil {
		return err
	}
	return b.index(key, t, (*bbolt.Bucket).Delete)
}

// removeRetry deletes the retry stored under the token key, if any.
func (b tokenBuckets) removeRetry(key []byte) error {
	v := b.retry.Get(key)
	if v == nil {
		return nil
	}
	r, err := decodeRetry(v)
	if err != nil {
		return err
	}
	if err := b.retry.Delete(key); err != nil {
		return err
	}
	return b.retryExp.Delete(timeKey(r.Until, key))
}

// index applies op to every index entry of t; put and remove share it so
// that they cannot disagree on which entries a token has.
func (b tokenBuckets) index(key []byte, t storage.Token, op func(*bbolt.Bucket, []byte) error) error {
	for _, e := range []struct {
		bucket *bbolt.Bucket
		owner  string
	}{
		{b.grants, t.RequestID},
		{b.subjects, t.Subject},
		{b.clients, t.ClientID},
	} {
		if e.owner == "" {
			continue
		}
		if err := op(e.bucket, indexKey(e.owner, key)); err != nil {
			return err
		}
	}
	return op(b.expiry, timeKey(t.ExpiresAt, key))
}

// CreateToken implements storage.Store.
func (s *Store) CreateToken(ctx context.Context, t storage.Token) error {
	p, err := prepare(t)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	now := s.now()
	err = s.batch(ctx, func(tx *bbolt.Tx) error {
		b := openTokenBuckets(tx)
		switch taken, err := b.taken(p.key, now); {
		case err != nil:
			return err
		case taken:
			return storage.ErrAlreadyExists
		}
		return b.put(p)
	})
	if err != nil {
		return fmt.Errorf("create %s token: %w", t.Kind, err)
	}
	return nil
}

// GetToken implements storage.Store.
func (s *Store) GetToken(ctx context.Context, kind storage.Kind, signature string) (storage.Token, error) {
	key := tokenKey(kind, signature)
	now := s.now()
	var t storage.Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketTokens).Get(key)
		if v == nil {
			return storage.ErrNotFound
		}
		var err error
		t, err = decodeToken(key, v)
		return err
	})
	switch {
	case err != nil:
		return storage.Token{}, fmt.Errorf("get %s token: %w", kind, err)
	case isExpired(t, now):
		return storage.Token{}, fmt.Errorf("get %s token: %w", kind, storage.ErrNotFound)
	case !t.Active:
		return t, fmt.Errorf("get %s token: %w", kind, storage.ErrInactive)
	}
	return t, nil
}

// DeleteToken implements storage.Store. An expired token is removed but
// reported as not found, as it was already invisible.
func (s *Store) DeleteToken(ctx context.Context, kind storage.Kind, signature string) error {
	key := tokenKey(kind, signature)
	now := s.now()
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b := openTokenBuckets(tx)
		v := b.tokens.Get(key)
		if v == nil {
			return storage.ErrNotFound
		}
		t, err := decodeToken(key, v)
		if err != nil {
			return err
		}
		if err := b.remove(key, t); err != nil {
			return err
		}
		if isExpired(t, now) {
			return storage.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s token: %w", kind, err)
	}
	return nil
}

// Redeem implements storage.Store. The returned record is as stored after
// the call: Active is false both on success and with ErrInactive.
func (s *Store) Redeem(ctx context.Context, kind storage.Kind, signature string, issue []storage.Token, retry *storage.Retry) (storage.Token, error) {
	key := tokenKey(kind, signature)
	var retryVal []byte
	if retry != nil {
		if retry.Successor == "" {
			return storage.Token{}, fmt.Errorf("redeem %s token: retry without a successor", kind)
		}
		retryVal = encodeRetry(*retry)
	}
	issued := make([]prepared, len(issue))
	for i, t := range issue {
		p, err := prepare(t)
		if err != nil {
			return storage.Token{}, fmt.Errorf("redeem %s token: issue: %w", kind, err)
		}
		issued[i] = p
	}
	now := s.now()
	var rec storage.Token
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		rec = storage.Token{}
		b := openTokenBuckets(tx)
		v := b.tokens.Get(key)
		if v == nil {
			return storage.ErrNotFound
		}
		t, err := decodeToken(key, v)
		if err != nil {
			return err
		}
		if isExpired(t, now) {
			return storage.ErrNotFound
		}
		if !t.Active {
			rec = t
			return storage.ErrInactive
		}
		// Every check before the first write: an outcome commits what was
		// written before it.
		for i, p := range issued {
			if bytes.Equal(p.key, key) {
				return storage.ErrAlreadyExists
			}
			for _, q := range issued[:i] {
				if bytes.Equal(p.key, q.key) {
					return storage.ErrAlreadyExists
				}
			}
			switch taken, err := b.taken(p.key, now); {
			case err != nil:
				return err
			case taken:
				return storage.ErrAlreadyExists
			}
		}

		t.Active = false
		// Only Active changed, so the index entries stay as they are.
		if err := b.tokens.Put(key, encodeToken(t)); err != nil {
			return err
		}
		for _, p := range issued {
			if err := b.put(p); err != nil {
				return err
			}
		}
		if retry != nil {
			// A retry left over from an older postern that swept nothing
			// must not shadow this one's index entry.
			if err := b.removeRetry(key); err != nil {
				return err
			}
			if err := b.retry.Put(key, retryVal); err != nil {
				return err
			}
			if err := b.retryExp.Put(timeKey(retry.Until, key), nil); err != nil {
				return err
			}
		}
		rec = t
		return nil
	})
	switch {
	case errors.Is(err, storage.ErrInactive):
		return rec, fmt.Errorf("redeem %s token: %w", kind, err)
	case err != nil:
		// Not rec: a failed commit may follow a run that had set it.
		return storage.Token{}, fmt.Errorf("redeem %s token: %w", kind, err)
	}
	return rec, nil
}

// RetryOf implements storage.Store.
func (s *Store) RetryOf(ctx context.Context, kind storage.Kind, signature string) (storage.Retry, error) {
	key := tokenKey(kind, signature)
	now := s.now()
	var r storage.Retry
	var lapsed bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := openTokenBuckets(tx)
		v := b.retry.Get(key)
		if v == nil {
			return storage.ErrNotFound
		}
		var err error
		if r, err = decodeRetry(v); err != nil {
			return err
		}
		if r.Until.Before(now) {
			lapsed = true
			return storage.ErrNotFound
		}
		return retryStands(b, key, kind, r.Successor, now)
	})
	if lapsed {
		// Erased on read as well as by the sweeper: the sealed answer holds
		// live tokens and has no reason to outlast its window.
		_ = s.batch(context.WithoutCancel(ctx), func(tx *bbolt.Tx) error {
			b := openTokenBuckets(tx)
			if v := b.retry.Get(key); v != nil {
				if cur, err := decodeRetry(v); err == nil && cur.Until.Before(now) {
					return b.removeRetry(key)
				}
			}
			return nil
		})
	}
	if err != nil {
		return storage.Retry{}, fmt.Errorf("retry of %s token: %w", kind, err)
	}
	return r, nil
}

// retryStands checks the two tokens a retry depends on: the redeemed one
// (still on record and redeemed) and its successor (unexpired, not redeemed).
func retryStands(b tokenBuckets, key []byte, kind storage.Kind, successor string, now time.Time) error {
	v := b.tokens.Get(key)
	if v == nil {
		return storage.ErrNotFound
	}
	t, err := decodeToken(key, v)
	if err != nil {
		return err
	}
	if t.Active || isExpired(t, now) {
		return storage.ErrNotFound
	}
	skey := tokenKey(kind, successor)
	if v = b.tokens.Get(skey); v == nil {
		return storage.ErrNotFound
	}
	if t, err = decodeToken(skey, v); err != nil {
		return err
	}
	if !t.Active || isExpired(t, now) {
		return storage.ErrNotFound
	}
	return nil
}

// RevokeGrant implements storage.Store. The count includes expired records
// of the grant that the sweeper had not yet removed.
func (s *Store) RevokeGrant(ctx context.Context, requestID string) (int, error) {
	if requestID == "" {
		return 0, nil // never indexed
	}
	prefix := lp(requestID)
	now := s.now()
	var n int
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b := openTokenBuckets(tx)
		removed, err := b.removeIndexed(b.grants, prefix)
		if err != nil {
			return err
		}
		n = len(removed)
		if t, live := latestLiveAccess(removed, now); live {
			r := storage.Revocation{Kind: storage.RevokedGrant, ID: requestID,
				Subject: t.Subject, ClientID: t.ClientID, Until: t.ExpiresAt}
			if _, err := s.appendRevocation(tx, r, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("revoke grant %q: %w", requestID, err)
	}
	return n, nil
}

// removeIndexed removes every token an index lists under prefix (an
// lp(owner)), with all its index entries and its retry, and returns them.
func (b tokenBuckets) removeIndexed(index *bbolt.Bucket, prefix []byte) ([]storage.Token, error) {
	// Collect first: deleting under a live cursor can skip entries.
	var keys [][]byte
	c := index.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k[len(prefix):]))
	}
	removed := make([]storage.Token, 0, len(keys))
	for _, key := range keys {
		v := b.tokens.Get(key)
		if v == nil {
			return nil, fmt.Errorf("index %s names a missing token: %w", bucketName(b, index), errCorrupt)
		}
		t, err := decodeToken(key, v)
		if err != nil {
			return nil, err
		}
		if err := b.remove(key, t); err != nil {
			return nil, err
		}
		removed = append(removed, t)
	}
	return removed, nil
}

// GrantTokens implements storage.Store. Redeemed tokens are listed, expired
// ones are not.
func (s *Store) GrantTokens(ctx context.Context, requestID string) ([]storage.Token, error) {
	toks, err := s.list(ctx, bucketGrants, requestID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of grant %q: %w", requestID, err)
	}
	return toks, nil
}

// SubjectTokens implements storage.Store.
func (s *Store) SubjectTokens(ctx context.Context, subject string) ([]storage.Token, error) {
	toks, err := s.list(ctx, bucketSubjects, subject)
	if err != nil {
		return nil, fmt.Errorf("list tokens of subject %q: %w", subject, err)
	}
	return toks, nil
}

// ClientTokens implements storage.Store.
func (s *Store) ClientTokens(ctx context.Context, clientID string) ([]storage.Token, error) {
	toks, err := s.list(ctx, bucketClients, clientID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of client %q: %w", clientID, err)
	}
	return toks, nil
}

// list returns the unexpired tokens an index names under owner.
func (s *Store) list(ctx context.Context, index []byte, owner string) ([]storage.Token, error) {
	if owner == "" {
		return nil, nil // never indexed
	}
	prefix := lp(owner)
	now := s.now()
	var toks []storage.Token
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		// One cursor for all lookups: Bucket.Get allocates a cursor per call.
		tokens := tx.Bucket(bucketTokens).Cursor()
		c := tx.Bucket(index).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			key := k[len(prefix):]
			tk, v := tokens.Seek(key)
			if !bytes.Equal(tk, key) {
				return fmt.Errorf("index %s names a missing token: %w", index, errCorrupt)
			}
			t, err := decodeToken(key, v)
			if err != nil {
				return err
			}
			if !isExpired(t, now) {
				toks = append(toks, t)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return toks, nil
}

// DeleteExpired implements storage.Store. It works in chunks of sweepChunk
// records per transaction; if ctx ends between chunks it returns what it
// removed so far with ctx's error.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, sweep := range []func(*bbolt.Tx, time.Time) (int, error){sweepTokens, sweepRetries, sweepRevocations, sweepOnce, sweepLoginFailures,
		sweepRevokedSessions, sweepSubjectEnds} {
		for {
			var n int
			err := s.update(ctx, func(tx *bbolt.Tx) error {
				var err error
				n, err = sweep(tx, now)
				return err
			})
			if err != nil {
				return total, fmt.Errorf("delete expired records: %w", err)
			}
			total += n
			if n < sweepChunk {
				break
			}
		}
	}
	return total, nil
}

// expiredKeys returns up to sweepChunk keys of an expiry-ordered bucket whose
// time lies before now. Strictly before: ExpiresAt == now is still valid.
func expiredKeys(b *bbolt.Bucket, now time.Time) [][]byte {
	limit := timeKey(now, nil)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < sweepChunk && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	return keys
}

func sweepTokens(tx *bbolt.Tx, now time.Time) (int, error) {
	b := openTokenBuckets(tx)
	keys := expiredKeys(b.expiry, now)
	for _, k := range keys {
		key := k[8:]
		v := b.tokens.Get(key)
		if v == nil {
			return 0, fmt.Errorf("expiry index names a missing token: %w", errCorrupt)
		}
		t, err := decodeToken(key, v)
		if err != nil {
			return 0, err
		}
		if err := b.remove(key, t); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func sweepRetries(tx *bbolt.Tx, now time.Time) (int, error) {
	b := openTokenBuckets(tx)
	keys := expiredKeys(b.retryExp, now)
	for _, k := range keys {
		if err := b.retry.Delete(k[8:]); err != nil {
			return 0, err
		}
		if err := b.retryExp.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}
