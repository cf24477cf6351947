package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The revocation feed (the server's postern_revocation_feed_endpoint): the
// server streams every revocation as it commits. While the gateway is
// connected and caught up, a cached result lives until the token's exp and
// is evicted the moment its grant, subject or client is revoked; a JWT
// checked locally is refused on the same events. While the feed is down
// the cache falls back to cache.ttl; on reconnect the gateway resumes where
// it stopped, and when the server says what it missed is gone ("reset") it
// drops its whole cache.

// revocations is what the gateway learned from the feed: which grants,
// and which subjects' and clients' tokens issued up to when, are void.
// The lock orders applying an event against caching a fresh answer, so a
// check that raced a revocation cannot cache a token the event ended.
type revocations struct {
	mu       sync.RWMutex
	grants   map[string]time.Time // grant → until (latest exp it covers)
	subjects map[string]ended
	clients  map[string]ended
	informed atomic.Bool // connected and caught up
	// forgotAt is when forget last ran: it scans every entry, so running
	// it on every event would make a burst of revocations (each a user
	// revoking a grant) quadratic, all of it under the lock token checks
	// wait on.
	forgotAt time.Time
}

// forgetInterval spaces the scans for entries whose tokens have all
// expired; an entry outlives its until by at most this much.
const forgetInterval = time.Minute

type ended struct {
	at      time.Time // server clock: tokens issued at or before it are void
	until   time.Time // after until no such token is valid anyway
	applied time.Time // gateway clock: when this gateway heard of it
}

func newRevocations() *revocations {
	return &revocations{grants: map[string]time.Time{}, subjects: map[string]ended{}, clients: map[string]ended{}}
}

// revoked reports whether an event already heard of ends id, which a check
// that started at start produced; local says the gateway checked it alone
// (a JWT), so only the token's iat tells whether it predates the event. An
// introspection that started after the event was heard of is the server's
// word after the revocation, and stands. The caller holds mu (read).
func (rv *revocations) revoked(id *Identity, start time.Time, local bool) bool {
	if id.GrantID != "" {
		if _, ok := rv.grants[id.GrantID]; ok {
			return true // grant IDs are never reused
		}
	}
	endedBy := func(m map[string]ended, key string) bool {
		e, ok := m[key]
		if !ok || key == "" {
			return false
		}
		if local {
			// iat has whole seconds: a token from the event's own
			// second counts as before it (refused, never wrongly kept).
			return id.IssuedAt.IsZero() || id.IssuedAt.Before(e.at.Truncate(time.Second).Add(time.Second))
		}
		return !start.After(e.applied)
	}
	return endedBy(rv.subjects, id.Subject) || endedBy(rv.clients, id.ClientID)
}

// feedEvent is the part of an event's data the gateway acts on (the server
// also sends a grant's subject and client, for the record).
type feedEvent struct {
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Until int64  `json:"until"`
	Time  int64  `json:"time"` // Unix milliseconds
}

// apply records ev and evicts what it ends from cache.
func (rv *revocations) apply(ev feedEvent, cache *tokenCache, now time.Time) {
	until, at := time.Unix(ev.Until, 0), time.UnixMilli(ev.Time)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	var match func(*Identity) bool
	switch ev.Kind {
	case "grant":
		rv.grants[ev.ID] = until
		match = func(id *Identity) bool { return id.GrantID == ev.ID }
	case "subject":
		// Everything cached for the subject was checked before now.
		rv.subjects[ev.ID] = ended{at: at, until: until, applied: now}
		match = func(id *Identity) bool { return id.Subject == ev.ID }
	case "client":
		rv.clients[ev.ID] = ended{at: at, until: until, applied: now}
		match = func(id *Identity) bool { return id.ClientID == ev.ID }
	default:
		return // a kind this gateway does not know ends nothing it holds
	}
	cache.evict(match)
	if now.Sub(rv.forgotAt) >= forgetInterval {
		rv.forget(now)
	}
}

// forget drops what no longer matters: every token an event covered has
// expired. The caller holds mu.
func (rv *revocations) forget(now time.Time) {
	rv.forgotAt = now
	for k, until := range rv.grants {
		if now.After(until) {
			delete(rv.grants, k)
		}
	}
	for _, m := range []map[string]ended{rv.subjects, rv.clients} {
		for k, e := range m {
			if now.After(e.until) {
				delete(m, k)
			}
		}
	}
}

// reset forgets everything: the feed could not tell what was missed.
func (rv *revocations) reset(cache *tokenCache) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	cache.clear()
	rv.grants, rv.subjects, rv.clients = map[string]time.Time{}, map[string]ended{}, map[string]ended{}
}

// feedSubscriber keeps the gateway connected to the feed.
type feedSubscriber struct {
	g            *Gateway
	client       *http.Client // no overall timeout: the stream is long
	clientID     string
	clientSecret string
	pos          uint64 // last Seq applied; 0 before the first connection
	started      bool
}

const (
	feedIdleTimeout = 20 * time.Second // no line (heartbeats come every 5s): the connection is dead
	feedMaxBackoff  = 30 * time.Second
	feedMaxLine     = 64 << 10
)

// Subscribe follows the revocation feed until ctx ends or the gateway is
// closed, when the issuer offers one and the gateway has client
// credentials (a resource_server client). It returns at once.
func (g *Gateway) Subscribe(ctx context.Context) {
	if g.disco.issuer == "" || g.feedClientID == "" {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	g.stopFeed = cancel
	client := &http.Client{Transport: g.authClient.Transport, CheckRedirect: g.authClient.CheckRedirect}
	sub := &feedSubscriber{g: g, client: client, clientID: g.feedClientID, clientSecret: g.feedClientSecret}
	go sub.run(ctx)
}

func (s *feedSubscriber) run(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		ep, err := s.g.disco.get(ctx)
		if err == nil && ep.RevocationFeed == "" {
			s.g.log.Info("the authorization server offers no revocation feed; cached tokens live for cache.ttl", "issuer", s.g.disco.issuer)
			return
		}
		if err == nil {
			start := time.Now()
			err = s.follow(ctx, ep.RevocationFeed)
			if time.Since(start) > time.Minute {
				backoff = time.Second // it ran well; this is a new problem
			}
		}
		s.g.revoked.informed.Store(false)
		s.g.metrics.feedConnected(false)
		if ctx.Err() != nil {
			return
		}
		s.g.metrics.feedReconnect()
		s.g.log.Warn("revocation feed disconnected; cached tokens live for cache.ttl until it is back", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, feedMaxBackoff)
	}
}

// follow reads one connection of the stream until it ends.
func (s *feedSubscriber) follow(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.SetBasicAuth(url.QueryEscape(s.clientID), url.QueryEscape(s.clientSecret))
	if s.started {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(s.pos, 10))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("the authorization server refused the gateway's client credentials (client_id %s) for the revocation feed: status %d (the client must be a resource_server)", s.clientID, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	// A stalled connection is cut: every line (heartbeats included)
	// moves the deadline on.
	idle := time.AfterFunc(feedIdleTimeout, cancel)
	defer idle.Stop()
	r := bufio.NewReaderSize(resp.Body, 4096)
	var id, event, data string
	for {
		line, err := readLine(r)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return errors.New("no data for " + feedIdleTimeout.String())
			}
			return err
		}
		idle.Reset(feedIdleTimeout)
		switch {
		case line == "":
			if event != "" {
				if err := s.handle(id, event, data); err != nil {
					return err
				}
			}
			id, event, data = "", "", ""
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
}

// readLine reads one line of at most feedMaxLine bytes.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := r.ReadSlice('\n')
		b.Write(chunk)
		if b.Len() > feedMaxLine {
			return "", errors.New("revocation feed: line too long")
		}
		switch {
		case err == nil:
			return strings.TrimRight(b.String(), "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

func (s *feedSubscriber) handle(id, event, data string) error {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return fmt.Errorf("revocation feed: bad event id %q", id)
	}
	g := s.g
	switch event {
	case "reset":
		g.revoked.reset(g.validator.cache)
		g.log.Warn("revocation feed: what this gateway missed is gone; token cache dropped")
	case "ready":
		g.revoked.informed.Store(true)
		g.metrics.feedConnected(true)
	case "revocation":
		var ev feedEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("revocation feed: event %d: %w", seq, err)
		}
		now := g.validator.now()
		g.revoked.apply(ev, g.validator.cache, now)
		g.metrics.feedApplied(time.UnixMilli(ev.Time), time.Now())
	default:
		return nil
	}
	s.pos, s.started = seq, true
	return nil
}
