// Package postgres is the storage backend for several postern replicas
// serving one issuer: a PostgreSQL database reached through a pgx pool. It
// owns the schema and its migrations, the transactions that make one-time
// tokens one-time across processes, the pool's limits and timeouts, and the
// expiry sweep that one replica at a time runs. The semantics it implements
// are those of storage.Store, checked by storage/storagetest; it knows
// nothing of HTTP, fosite or configuration files.
//
// # Schema
//
// Tables tokens, once, keys, events, consents, login_failures,
// revoked_sessions and subject_sessions_ended (migrations/*.sql), in the
// first schema of the connection's search_path, plus schema_migrations.
// Two choices follow from the storage contract:
//   - Caller-chosen strings (signatures, subjects, client and request IDs,
//     namespaces, event fields) are bytea: the contract allows any byte in
//     them, NUL and invalid UTF-8 included, which text refuses. bytea also
//     orders bytewise, as Go compares strings.
//   - Times are bigint Unix nanoseconds (NULL for the zero time): the
//     contract keeps nanoseconds and timestamptz has microseconds. Instants
//     outside 1678-2262 are clamped, which keeps expiry order.
//
// # Concurrency
//
// Every method is one statement or one transaction. Redeem locks the token
// row (SELECT ... FOR UPDATE) so that of two replicas redeeming one refresh
// token exactly one wins; CreateToken and UseOnce are single INSERT ... ON
// CONFLICT statements that replace only an expired row; AddLoginFailure is
// one INSERT ... ON CONFLICT DO UPDATE, whose row lock serializes concurrent
// failures on one key and which decides the reset on the locked row
// (EndSubjectSessions and RevokeSession merge the same way);
// UpdateKeys holds the keys table in EXCLUSIVE mode across its read and
// write. Migrations run under a session advisory lock, so replicas starting
// together migrate once, and each sweep takes a try-lock, so one replica
// sweeps at a time.
// Expiry is judged by the replica's clock, as with bbolt: keep clocks synced.
//
// # Failures
//
// Every call is bounded by Options.Timeout (waiting for a connection
// included). A database that cannot be reached, is shutting down, or does
// not answer in time yields an error wrapping storage.ErrUnavailable, which
// the HTTP layer turns into 503 temporarily_unavailable.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postern-auth/postern/storage"
)

var _ storage.Store = (*Store)(nil)

const (
	defaultTimeout        = 5 * time.Second
	defaultSweepInterval  = time.Minute
	defaultTokenCacheSize = 10000
	// idleInTxTimeout frees the row locks of a replica that stalls inside a
	// transaction (postern never waits on anything but the database there).
	idleInTxTimeout = 10 * time.Second
)

// Options tune Open; the zero value is the production default.
type Options struct {
	// MaxConns caps the pool; zero takes pool_max_conns from the DSN, else
	// 2×GOMAXPROCS+4: enough to keep the CPUs busy while requests wait on
	// the network. Every replica may hold this many connections: replicas ×
	// MaxConns must stay below the server's max_connections (100 by default),
	// plus one each for revocation notifications while the token cache is on.
	MaxConns int32
	// MinConns are kept open while idle; zero takes pool_min_conns from the
	// DSN, else none.
	MinConns int32
	// Timeout bounds every call, from waiting for a pool connection to the
	// last row (default 5s). Past it the call fails with storage.ErrUnavailable.
	Timeout time.Duration
	// StatementTimeout is the server-side statement_timeout (default:
	// Timeout), so the database abandons what postern gave up on. A
	// statement_timeout in the DSN wins.
	StatementTimeout time.Duration
	// SweepInterval is how often this replica tries to delete expired
	// records (default 1m; negative disables the sweeper). Only one replica
	// sweeps at a time.
	SweepInterval time.Duration
	// Logger receives the sweeper's and the migrations' reports (nil
	// discards them).
	Logger *slog.Logger
	// Now is the store's clock for expiry (nil means time.Now).
	Now func() time.Time
	// RevocationRetention is how long revocation events are kept at least
	// (default 24h; give it at least the longest access-token lifetime).
	RevocationRetention time.Duration
	// TokenCacheSize bounds the access tokens this replica keeps in memory
	// for introspection (default 10000; negative disables the cache). An
	// entry lives until its token expires or a revocation covering it is
	// heard of (see listen.go); each entry costs about its token's size.
	TokenCacheSize int

	// beforeListen, if set, runs before each attempt to open the
	// notification connection (tests hold a replica disconnected with it).
	beforeListen func()
}

func (o Options) normalize() Options {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = o.Timeout
	}
	if o.SweepInterval == 0 {
		o.SweepInterval = defaultSweepInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TokenCacheSize == 0 {
		o.TokenCacheSize = defaultTokenCacheSize
	}
	if o.RevocationRetention <= 0 {
		o.RevocationRetention = defaultRevocationRetention
	}
	return o
}

// Store is a storage.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	opts Options
	log  *slog.Logger
	// where names the database for messages: host, port, database and
	// schema, never the password.
	where string
	// sweepLock is the advisory-lock key of this schema's sweeper.
	sweepLock int64

	stopSweep context.CancelFunc
	sweepDone chan struct{}

	// cache holds access tokens (nil when disabled); the listener keeps it
	// honest through channel. listenPID is the notification connection's
	// backend (for tests that cut it).
	cache      *tokenCache
	channel    string
	stopListen context.CancelFunc
	listenDone chan struct{}
	listenPID  atomic.Uint32
	closeOnce  sync.Once
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string), applies pending migrations and starts the sweeper.
// The schema is the first one on the DSN's search_path that exists
// (usually "public"); ctx bounds the connection and the migrations.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	opts = opts.normalize()
	pool, where, err := connect(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	schema, _, err := migrate(ctx, pool, opts.Logger)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	s := &Store{
		pool:      pool,
		opts:      opts,
		log:       opts.Logger,
		where:     where + " schema " + schema,
		sweepLock: lockKey("sweep", schema),
		channel:   channelName(schema),
	}
	if opts.TokenCacheSize > 0 {
		s.cache = newTokenCache(opts.TokenCacheSize)
		lctx, cancel := context.WithCancel(context.Background())
		s.stopListen = cancel
		s.listenDone = make(chan struct{})
		go s.listen(lctx)
	}
	if opts.SweepInterval > 0 {
		sctx, cancel := context.WithCancel(context.Background())
		s.stopSweep = cancel
		s.sweepDone = make(chan struct{})
		go s.sweep(sctx, opts.SweepInterval)
	}
	return s, nil
}

// Migrate applies pending migrations without opening a store, for
// `postern migrate`, and returns the names of those it applied.
func Migrate(ctx context.Context, dsn string, opts Options) (applied []string, err error) {
	opts = opts.normalize()
	pool, where, err := connect(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	_, applied, err = migrate(ctx, pool, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("migrate %s: %w", where, err)
	}
	return applied, nil
}

// connect builds the pool and checks that the database answers.
func connect(ctx context.Context, dsn string, opts Options) (*pgxpool.Pool, string, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password from its parse errors.
		return nil, "", fmt.Errorf("open store: parse DSN: %w", err)
	}
	cc := cfg.ConnConfig
	where := fmt.Sprintf("postgres %s database %s", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database)
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = int32(2*runtime.GOMAXPROCS(0) + 4)
	}
	if opts.MinConns > 0 {
		cfg.MinConns = opts.MinConns
	}
	cfg.MinConns = min(cfg.MinConns, cfg.MaxConns)
	if cc.ConnectTimeout == 0 || cc.ConnectTimeout > opts.Timeout {
		cc.ConnectTimeout = opts.Timeout
	}
	setDefault(cc.RuntimeParams, "statement_timeout", opts.StatementTimeout)
	setDefault(cc.RuntimeParams, "idle_in_transaction_session_timeout", idleInTxTimeout)
	setDefault(cc.RuntimeParams, "application_name", "postern")

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, "", fmt.Errorf("open store %s: %w", where, err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, "", fmt.Errorf("open store %s: %w", where, classify(ctx, err))
	}
	return pool, where, nil
}

func setDefault(params map[string]string, name string, v any) {
	if _, ok := params[name]; ok {
		return
	}
	if d, ok := v.(time.Duration); ok {
		v = strconv.FormatInt(d.Milliseconds(), 10)
	}
	params[name] = fmt.Sprint(v)
}

// lockKey is the advisory-lock key for one purpose in one schema, so that
// deployments sharing a database in different schemas do not block each
// other. Advisory locks are database-wide and keyed by a bigint.
func lockKey(purpose, schema string) int64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, "postern\x00"+purpose+"\x00"+schema)
	return int64(h.Sum64())
}

// Close stops the sweeper, waits for calls in flight and closes the pool.
// Later calls return nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stopSweep != nil {
			s.stopSweep()
			<-s.sweepDone
		}
		if s.stopListen != nil {
			s.stopListen()
			<-s.listenDone
		}
		s.pool.Close()
	})
	return nil
}

// String names the database without credentials, for logs.
func (s *Store) String() string { return s.where }

// bound gives one call its deadline.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

func (s *Store) nowNanos() int64 { return nanos(s.opts.Now()) }

// fail wraps a failed call with what it was doing, marking the failures that
// mean the database is unavailable. parent is the caller's context: when it
// ended, the caller gave up and the database is not to blame.
func (s *Store) fail(parent context.Context, what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
		what = fmt.Sprintf("%s: no answer within %s", what, s.opts.Timeout)
	}
	return fmt.Errorf("%s: %w", what, classify(parent, err))
}

func classify(parent context.Context, err error) error {
	if isOutcome(err) || parent.Err() != nil || !unavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
}

// isOutcome tells the answers a call gives its caller from failures.
func isOutcome(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyExists) ||
		errors.Is(err, storage.ErrInactive)
}

// unavailable reports whether err means the database could not serve the
// call now, as opposed to a bug or bad data that retrying would not fix.
func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Classes 08 (connection exception) and 53 (insufficient resources:
		// too many connections, out of memory, disk full); 57P01-03 (admin
		// or crash shutdown, starting up); 57014 (statement_timeout); 55P03
		// (lock_timeout); 40001 and 40P01 (serialization failure, deadlock:
		// after inTx's retries); 25006 (read-only: a standby after failover).
		if class := pgErr.Code[:min(2, len(pgErr.Code))]; class == "08" || class == "53" {
			return true
		}
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "57014", "55P03", "40001", "40P01", "25006":
			return true
		}
		return false
	}
	var netErr net.Error
	var connErr *pgconn.ConnectError
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) ||
		errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err)
}

// retryable: the transaction lost a race the database detected and rolled
// back; running it again is safe.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// inTx runs fn in a transaction, again if the database rolled it back for a
// serialization failure or a deadlock. fn must reset what it reports on
// each run.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		if attempt < 3 && retryable(err) && ctx.Err() == nil {
			continue
		}
		return err
	}
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
		n, swept, err := s.sweepOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("sweeping expired records", "store", s.where, "err", err)
		case err == nil && swept:
			s.log.Debug("swept expired records", "store", s.where, "removed", n)
		}
	}
}

// sweepOnce deletes expired records unless another replica is at it; swept
// says whether this one did. The advisory lock lives on one connection held
// for the sweep; DeleteExpired's chunks go through the pool.
func (s *Store) sweepOnce(ctx context.Context) (n int, swept bool, err error) {
	actx, cancel := s.bound(ctx)
	conn, err := s.pool.Acquire(actx)
	cancel()
	if err != nil {
		return 0, false, s.fail(ctx, "sweep: acquire connection", err)
	}
	defer conn.Release()
	lctx, cancel := s.bound(ctx)
	defer cancel()
	if err := conn.QueryRow(lctx, `SELECT pg_try_advisory_lock($1)`, s.sweepLock).Scan(&swept); err != nil {
		return 0, false, s.fail(ctx, "sweep: lock", err)
	}
	if !swept {
		return 0, false, nil
	}
	defer func() {
		uctx, cancel := s.bound(context.Background())
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, s.sweepLock); uerr != nil {
			// A pooled connection must not keep the lock: drop it, which
			// releases the lock on the server.
			_ = conn.Conn().Close(uctx)
		}
	}()
	n, err = s.DeleteExpired(ctx, s.opts.Now())
	return n, true, err
}
