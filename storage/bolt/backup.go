package bolt

import (
	"context"
	"fmt"
	"io"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// Snapshot is the store as one read transaction sees it: a consistent copy
// that writers do not disturb and that does not block them (bbolt readers and
// the writer run side by side; a commit that must grow the memory map waits
// for open readers, so a long copy can delay the writes that grow the file).
// It is valid only inside the function given to Store.Snapshot.
type Snapshot struct {
	tx *bbolt.Tx
	// TxID is the transaction the copy shows: every commit up to and
	// including it is in the copy, none after it.
	TxID int
	// Size is the number of bytes WriteTo writes.
	Size int64
	// Tokens is the number of token records in the copy.
	Tokens int
	// Newest is the most recently created token in the copy (zero when
	// there is none); it tells an operator which issued tokens the copy
	// can know of.
	Newest NewestToken
}

// NewestToken names a token without anything that would let its reader use
// it: the signature stays out.
type NewestToken struct {
	Kind      storage.Kind
	RequestID string
	ClientID  string
	CreatedAt time.Time
}

// WriteTo writes the copy, a bbolt file that can be opened in place of the
// store's own.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := s.tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("write snapshot of tx %d: %w", s.TxID, err)
	}
	return n, nil
}

// Snapshot opens one read transaction, describes it and hands it to fn,
// which typically sends Size and Newest ahead and then calls WriteTo. The
// server keeps serving throughout.
func (s *Store) Snapshot(ctx context.Context, fn func(*Snapshot) error) error {
	return s.view(ctx, func(tx *bbolt.Tx) error {
		snap := &Snapshot{tx: tx, TxID: tx.ID(), Size: tx.Size()}
		err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			t, err := decodeToken(k, v)
			if err != nil {
				return err
			}
			snap.Tokens++
			if snap.Tokens == 1 || t.CreatedAt.After(snap.Newest.CreatedAt) {
				snap.Newest = NewestToken{Kind: t.Kind, RequestID: t.RequestID, ClientID: t.ClientID, CreatedAt: t.CreatedAt}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshot of tx %d: %w", snap.TxID, err)
		}
		return fn(snap)
	})
}
