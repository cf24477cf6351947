package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern-auth/postern/storage"
)

// Replicas hear of each other's revocations through LISTEN/NOTIFY: the
// transaction that records a revocation event also NOTIFYs this schema's
// channel (PostgreSQL delivers it only if, and once, it commits), and each
// replica keeps one connection LISTENing, outside the pool. A notification
// says only that there is something to read; the replica then reads the
// events after the last one it applied from the revocations table, so a
// notification lost with its connection costs nothing once the replica
// reconnects and reads again.

const (
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	// catchUpBatch is how many events one catch-up read takes.
	catchUpBatch = 1000
	// notePrefixToken marks a notification about one deleted access token
	// (hex signature follows), which has no revocation event.
	notePrefixToken = "t:"
)

// channelName is the NOTIFY channel of one schema, so that deployments
// sharing a database do not wake each other.
func channelName(schema string) string {
	return fmt.Sprintf("postern_revocations_%016x", uint64(lockKey("notify", schema)))
}

// notify queues a notification that tx sends if it commits.
func (s *Store) notify(ctx context.Context, tx pgx.Tx, payload string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, payload)
	return err
}

// listen keeps the notification connection up until ctx ends. While it is
// down the cache is not trusted.
func (s *Store) listen(ctx context.Context) {
	defer close(s.listenDone)
	backoff := listenBackoffMin
	for {
		if s.opts.beforeListen != nil {
			s.opts.beforeListen()
		}
		connected, err := s.listenOnce(ctx)
		s.cache.distrust()
		if ctx.Err() != nil {
			return
		}
		if connected {
			backoff = listenBackoffMin
		}
		s.log.Warn("revocation notifications interrupted; token cache off until caught up",
			"store", s.where, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// listenOnce runs one notification connection: LISTEN, catch up, then
// apply what each notification announces. connected says whether it got as
// far as trusting the cache.
func (s *Store) listenOnce(ctx context.Context) (connected bool, err error) {
	actx, cancel := s.bound(ctx)
	pc, err := s.pool.Acquire(actx)
	cancel()
	if err != nil {
		return false, fmt.Errorf("acquire notification connection: %w", err)
	}
	// Out of the pool: it is busy for as long as it lives.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	s.listenPID.Store(conn.PgConn().PID())
	lctx, cancel := s.bound(ctx)
	_, err = conn.Exec(lctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize())
	cancel()
	if err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	// Listening first, then reading: an event committed meanwhile is both
	// read now and announced later, never neither.
	if err := s.catchUp(ctx, true); err != nil {
		return false, err
	}
	// Streams waiting on the feed may have missed a wake-up while down.
	s.cache.signal()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, fmt.Errorf("wait for notification: %w", err)
		}
		if sig, ok := strings.CutPrefix(n.Payload, notePrefixToken); ok {
			if b, err := hex.DecodeString(sig); err == nil {
				s.cache.evictSig(string(b))
				continue
			}
		}
		if err := s.catchUp(ctx, false); err != nil {
			return true, err
		}
		s.cache.signal()
	}
}

// catchUp applies the events after the cache's position. After a
// reconnection (first), events swept before the cache read them mean it
// cannot tell what they covered: it is emptied; otherwise what it holds is
// checked against the table (dropDeleted). An empty cache has nothing to
// catch up on and starts from the head.
func (s *Store) catchUp(ctx context.Context, first bool) error {
	pos, _ := s.cache.position()
	if first {
		floor, head, err := s.RevocationRange(ctx)
		if err != nil {
			return err
		}
		switch {
		case s.cache.empty():
			pos = head
		case floor > pos:
			s.cache.drop()
			pos = head
		default:
			if err := s.dropDeleted(ctx); err != nil {
				return err
			}
		}
	}
	for {
		evs, err := s.Revocations(ctx, pos, catchUpBatch)
		if err != nil {
			return err
		}
		for _, r := range evs {
			s.cache.apply(r)
			pos = r.Seq
		}
		if len(evs) < catchUpBatch {
			break
		}
	}
	s.cache.trustFrom(pos)
	return nil
}

// dropDeleted evicts the cached tokens no longer on record. A token
// deleted on its own (DeleteToken) has no revocation event, only a
// notification, which a connection that was down missed. The cache is
// untrusted meanwhile, so nothing is put back behind this read.
func (s *Store) dropDeleted(ctx context.Context) error {
	sigs := s.cache.signatures()
	keys := make([][]byte, len(sigs))
	for i, sig := range sigs {
		keys[i] = []byte(sig)
	}
	bctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(bctx, `SELECT signature FROM tokens WHERE kind = $1 AND signature = ANY($2)`,
		string(storage.AccessToken), keys)
	if err != nil {
		return fmt.Errorf("check cached tokens: %w", err)
	}
	kept, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var sig bin
		err := row.Scan(&sig)
		return string(sig), err
	})
	if err != nil {
		return fmt.Errorf("check cached tokens: %w", err)
	}
	onRecord := make(map[string]bool, len(kept))
	for _, sig := range kept {
		onRecord[sig] = true
	}
	for _, sig := range sigs {
		if !onRecord[sig] {
			s.cache.evictSig(sig)
		}
	}
	return nil
}

// RevocationNotices implements storage.RevocationNotifier: the channel is
// closed when this replica next hears of a revocation, its own or
// another's.
func (s *Store) RevocationNotices() <-chan struct{} {
	if s.cache == nil {
		return nil
	}
	return s.cache.waiter()
}

var _ storage.RevocationNotifier = (*Store)(nil)
