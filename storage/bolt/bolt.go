// Package bolt is the default storage backend: one bbolt file on local disk,
// owned by a single postern process. It owns the file's layout, its lock, the
// durability of every write and the background sweep of expired records; the
// semantics it implements are those of storage.Store, checked by
// storage/storagetest.
//
// # Layout
//
// Keys are built from length-prefixed parts, lp(s) = uvarint(len(s)) + s, so
// that no externally chosen string can alias into another's range; tk is a
// token's key, lp(kind) + signature. Index entries have empty values.
//
//	tokens    tk                                  → encoded Token (no kind/signature)
//	grants    lp(requestID) + tk                  → ∅
//	subjects  lp(subject) + tk                    → ∅ (empty subject not indexed)
//	clients   lp(clientID) + tk                   → ∅ (empty client not indexed)
//	expiry    be64(ExpiresAt nanos) + tk          → ∅
//	retry     tk (of the redeemed token)          → encoded Retry
//	retryexp  be64(Until nanos) + tk              → ∅
//	revocations be64(Seq)                         → encoded Revocation
//	revexp    be64(kept-until nanos) + be64(Seq)  → ∅
//	once      lp(namespace) + id                  → be64(exp nanos)
//	onceexp   be64(exp nanos) + lp(namespace) + id → ∅
//	keys      Key.ID                              → encoded Key
//	events    lp(subject) + be64(Time nanos) + ID → encoded Event
//	consents  lp(subject) + clientID              → encoded Consent
//	loginfail lp(key)                             → encoded LoginFailures + expiry
//	loginexp  be64(exp nanos) + lp(key)           → ∅
//	sessrev   lp(session ID)                      → be64(until nanos)
//	sessrevexp be64(until nanos) + lp(session ID) → ∅
//	subjend   lp(subject)                         → encoded ended-at, until
//	subjendexp be64(until nanos) + lp(subject)    → ∅
//	blobs     lp(name)                            → the blob as given
//	leases    lp(name)                            → be64(until nanos) + holder
//	regclients lp(client ID)                      → encoded Client
//	regowners lp(owner) + client ID               → ∅ (empty owner indexed too)
//	meta      "schema"                            → schema version
//
// (clients indexes tokens by client; regclients holds the clients
// registered at runtime.) Listing an owner's tokens, or a developer's
// clients, is a cursor Seek on lp(owner) in its index plus one Get each;
// DeleteExpired walks expiry, retryexp, revexp, onceexp, loginexp,
// sessrevexp and subjendexp from the start up to now; ListEvents walks
// events backwards from the end of lp(subject).
// Every index entry is written and removed in the same transaction as its
// record.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/postern-auth/postern/storage"
)

var _ storage.Store = (*Store)(nil)

var (
	bucketTokens   = []byte("tokens")
	bucketGrants   = []byte("grants")
	bucketSubjects = []byte("subjects")
	bucketClients  = []byte("clients")
	bucketExpiry   = []byte("expiry")
	bucketOnce     = []byte("once")
	bucketOnceExp  = []byte("onceexp")
	bucketKeys     = []byte("keys")
	bucketEvents   = []byte("events")
	bucketMeta     = []byte("meta")
	bucketConsents = []byte("consents")
	// Added after schema 1 shipped: Open creates them in older files, and
	// an older postern ignores them, so the schema version stays.
	bucketLoginFail = []byte("loginfail")
	bucketLoginExp  = []byte("loginexp")
	// Likewise, added with server-side session revocation.
	bucketSessRev    = []byte("sessrev")
	bucketSessRevExp = []byte("sessrevexp")
	bucketSubjEnd    = []byte("subjend")
	bucketSubjEndExp = []byte("subjendexp")
	// Likewise, added with the refresh retry window.
	bucketRetry    = []byte("retry")
	bucketRetryExp = []byte("retryexp")
	// Likewise, added with the revocation feed. Seq is the bucket's
	// sequence; meta "revfloor" holds the highest Seq swept.
	bucketRevocations = []byte("revocations")
	bucketRevExp      = []byte("revexp")
	// Likewise, added with ACME certificates.
	bucketBlobs  = []byte("blobs")
	bucketLeases = []byte("leases")
	// Likewise, added with the developer portal (clients registered at
	// runtime; "clients" was taken by the tokens' client index).
	bucketRegClients = []byte("regclients")
	bucketRegOwners  = []byte("regowners")

	allBuckets = [][]byte{bucketTokens, bucketGrants, bucketSubjects, bucketClients, bucketExpiry,
		bucketOnce, bucketOnceExp, bucketKeys, bucketEvents, bucketMeta, bucketConsents,
		bucketLoginFail, bucketLoginExp, bucketSessRev, bucketSessRevExp, bucketSubjEnd, bucketSubjEndExp,
		bucketRetry, bucketRetryExp, bucketRevocations, bucketRevExp, bucketBlobs, bucketLeases,
		bucketRegClients, bucketRegOwners}

	metaSchema = []byte("schema")
)

// schemaVersion changes when the layout above does; a file written by a newer
// postern is refused rather than misread.
const schemaVersion byte = 1

const (
	defaultTimeout       = time.Second
	defaultSweepInterval = time.Minute

	// batchDelay is how long a write waits for others to join its commit.
	// bbolt closes a batch when this window ends; writes arriving while a
	// commit is under way open the next window, and every window pays for a
	// commit of its own (two fdatasyncs). So the window trades the latency
	// floor of every token write against sustained throughput: under steady
	// load, a window shorter than a commit produces commits faster than the
	// disk absorbs them. bbolt's default of 10ms puts 10ms under every write;
	// 2ms covers commits on SSDs and cloud block storage and measured ~4x
	// better in both latency and throughput here (BenchmarkCreateToken*).
	batchDelay = 2 * time.Millisecond
)

var errClosed = errors.New("store is closed")

// Options tune Open; the zero value is the production default.
type Options struct {
	// Timeout bounds the wait for the file lock (default 1s). It is never
	// infinite: a second postern on the same file must fail, not hang.
	Timeout time.Duration
	// SweepInterval is how often expired records are deleted (default 1m;
	// negative disables the sweeper).
	SweepInterval time.Duration
	// Logger receives the sweeper's reports (nil discards them).
	Logger *slog.Logger
	// Now is the store's clock for expiry (nil means time.Now).
	Now func() time.Time
	// RevocationRetention is how long revocation events are kept at least
	// (default 24h; give it at least the longest access-token lifetime).
	RevocationRetention time.Duration
}

// Store is a storage.Store on a bbolt file.
type Store struct {
	db   *bbolt.DB
	path string
	now  func() time.Time
	// retention: revocation events are kept at least this long.
	retention time.Duration
	log       *slog.Logger

	// mu lets Close wait for operations in flight, so that a write that has
	// started is committed before the file is closed.
	mu     sync.RWMutex
	closed bool

	stopSweep context.CancelFunc
	sweepDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store at path, creating its directory (0700) and
// file (0600) as needed. If another process holds the file, Open fails after
// opts.Timeout with an error wrapping storage.ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = defaultSweepInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// NoSync stays false: every returned write is on disk. Batch is what
	// keeps that affordable.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w (waited %s for its lock; another postern process is probably using it)",
			path, storage.ErrLocked, opts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, writeErr(err))
	}

	db.MaxBatchDelay = batchDelay
	if opts.RevocationRetention <= 0 {
		opts.RevocationRetention = 24 * time.Hour
	}
	s := &Store{db: db, path: path, now: opts.Now, log: opts.Logger, retention: opts.RevocationRetention}
	if opts.SweepInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopSweep = cancel
		s.sweepDone = make(chan struct{})
		go s.sweep(ctx, opts.SweepInterval)
	}
	return s, nil
}

func initBuckets(tx *bbolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	switch v := meta.Get(metaSchema); {
	case v == nil:
		return meta.Put(metaSchema, []byte{schemaVersion})
	case len(v) != 1 || v[0] != schemaVersion:
		return fmt.Errorf("unsupported schema version %v (this postern reads %d)", v, schemaVersion)
	}
	return nil
}

// Close stops the sweeper, waits for operations in flight and closes the
// file. Later calls return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stopSweep != nil {
			s.stopSweep()
			<-s.sweepDone
		}
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

func (s *Store) sweep(ctx context.Context, every time.Duration) {
	defer close(s.sweepDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := s.DeleteExpired(ctx, s.now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("sweeping expired records", "path", s.path, "err", err)
		case err == nil:
			s.log.Debug("swept expired records", "path", s.path, "removed", n)
		}
	}
}

// enter admits an operation unless the store is closed; leave ends it.
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	return nil
}

func (s *Store) leave() { s.mu.RUnlock() }

func (s *Store) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(fn)
}

// isOutcome tells the answers a write gives its caller from failures.
func isOutcome(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyExists) ||
		errors.Is(err, storage.ErrInactive)
}

// batch runs fn in a write transaction shared with concurrent writers, so
// that they share one fsync.
//
// An error from a batched function rolls back the whole batch and makes bbolt
// re-run it alone, costing an fsync of its own; a replayed code or JTI would
// then slow down everyone else's writes. So outcomes (not found, already
// exists, inactive) are passed around bbolt: fn returns nil to it and the
// outcome is handed to the caller after the commit. The price is a rule: what
// fn wrote before deciding on an outcome is committed, so fn decides before it
// writes. bbolt may also run fn more than once; fn must only read the state
// of the transaction and its own arguments, never accumulate.
func (s *Store) batch(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	var outcome error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		outcome = fn(tx)
		if isOutcome(outcome) {
			return nil
		}
		return outcome
	})
	if err != nil {
		return writeErr(err)
	}
	return outcome
}

// update runs fn in a transaction of its own: for writes that must not be
// re-run (UpdateKeys calls back into the caller) or that are large (sweeps).
func (s *Store) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	return writeErr(s.db.Update(fn))
}

// writeErr tells a full disk from other failed writes. Out of space or
// quota (ENOSPC, EDQUOT) becomes storage.ErrNoSpace, which every caller
// treats as a backend that is briefly unavailable: bbolt has rolled the
// transaction back, nothing of it is on disk, and the same write succeeds
// once space returns, with no restart. Other failures (EIO, a file system
// remounted read-only) keep their own error: they need an operator, not a
// retry. (A failed file grow reaches us as text, bbolt formats it with %s;
// but growing a file allocates no blocks on Linux file systems, so a full
// disk shows in the page writes that follow, which keep their errno.)
func writeErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", storage.ErrNoSpace, err)
	}
	return err
}
