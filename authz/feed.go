package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/postern-auth/postern/storage"
)

// The revocation feed: every revocation the store commits (storage.Revocation)
// streamed to resource servers (gateways) as Server-Sent Events, so that
// their caches drop a revoked token at once and may otherwise keep it until
// it expires. The stream is resumable: each event's id is its Seq, and a
// reader reconnecting with Last-Event-ID gets what it missed, or a "reset"
// event when what it missed has been swept (it must then drop its cache).

const pathRevocationFeed = "/oauth2/revocations"

// Feed limits. Heartbeats let a reader notice a dead connection; the write
// deadline cuts off a reader too slow to take a batch (nothing is buffered
// for it beyond one batch); the poll interval bounds the delay for events
// another replica commits when the store does not announce them
// (storage.RevocationNotifier: PostgreSQL does); this process's own wake
// the stream at once.
const (
	feedHeartbeat     = 5 * time.Second
	feedWriteTimeout  = 10 * time.Second
	feedPoll          = time.Second
	feedBatch         = 100
	feedStreamsPerRS  = 8
	feedMaxStreamsAll = 256
)

// feedEvent is an event's data as a reader sees it.
type feedEvent struct {
	Kind     storage.RevocationKind `json:"kind"`
	ID       string                 `json:"id"`
	Subject  string                 `json:"sub,omitempty"`
	ClientID string                 `json:"client_id,omitempty"`
	Until    int64                  `json:"until"` // the latest exp it covers, Unix seconds
	Time     int64                  `json:"time"`  // when it was recorded, Unix milliseconds
}

// feedHub wakes the streams of this server when it commits a revocation,
// and counts them.
type feedHub struct {
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced on every commit
	streams map[string]int
	total   int
	done    chan struct{} // closed when the server is replaced or stops
	closed  bool
	// writeTimeout cuts off a reader that does not take a batch in time
	// (feedWriteTimeout; tests shorten it).
	writeTimeout time.Duration
}

func newFeedHub() *feedHub {
	return &feedHub{wake: make(chan struct{}), streams: map[string]int{}, done: make(chan struct{}), writeTimeout: feedWriteTimeout}
}

// count is the number of open streams (tests).
func (h *feedHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

func (h *feedHub) signal() {
	h.mu.Lock()
	close(h.wake)
	h.wake = make(chan struct{})
	h.mu.Unlock()
}

func (h *feedHub) waiter() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wake
}

func (h *feedHub) open(client string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.streams[client] >= feedStreamsPerRS || h.total >= feedMaxStreamsAll {
		return false
	}
	h.streams[client]++
	h.total++
	return true
}

func (h *feedHub) release(client string) {
	h.mu.Lock()
	h.streams[client]--
	if h.streams[client] == 0 {
		delete(h.streams, client)
	}
	h.total--
	h.mu.Unlock()
}

func (h *feedHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// feedStore is the store as the server uses it: every revocation it commits
// wakes the feed's streams.
type feedStore struct {
	storage.Store
	hub *feedHub
}

func (s feedStore) RevokeGrant(ctx context.Context, requestID string) (int, error) {
	n, err := s.Store.RevokeGrant(ctx, requestID)
	if err == nil && n > 0 {
		s.hub.signal()
	}
	return n, err
}

func (s feedStore) AppendRevocation(ctx context.Context, r storage.Revocation) (storage.Revocation, error) {
	out, err := s.Store.AppendRevocation(ctx, r)
	if err == nil {
		s.hub.signal()
	}
	return out, err
}

// DeleteClient (a runtime client deleted) records a client event with the
// deletion when the client had live access tokens.
func (s feedStore) DeleteClient(ctx context.Context, id string) (int, error) {
	n, err := s.Store.DeleteClient(ctx, id)
	if err == nil && n > 0 {
		s.hub.signal()
	}
	return n, err
}

// RevocationNotices passes on the store's notices of revocations other
// processes commit (storage.RevocationNotifier), if it gives any.
func (s feedStore) RevocationNotices() <-chan struct{} {
	if n, ok := s.Store.(storage.RevocationNotifier); ok {
		return n.RevocationNotices()
	}
	return nil
}

// CloseStreams ends the feed streams of this server: it was replaced by a
// reload, or the process stops (their readers reconnect and resume).
func (s *Server) CloseStreams() { s.feed.close() }

func (s *Server) handleRevocationFeed(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "Use GET.")
		return
	}
	if e := badAuthorization(r); e != nil {
		writeOAuthError(w, r, e)
		return
	}
	if _, _, ok := r.BasicAuth(); !ok {
		writeOAuthError(w, r, &oauthError{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Authenticate with HTTP Basic as a resource_server client."})
		return
	}
	r.PostForm = map[string][]string{}
	caller, e := s.authenticateClient(r.Context(), r, false)
	if e != nil {
		writeOAuthError(w, r, e)
		return
	}
	if !caller.ResourceServer {
		writeJSONError(w, http.StatusForbidden, "unauthorized_client", "Only resource_server clients may read the revocation feed.")
		return
	}
	after, resume, err := lastEventID(r)
	if err != nil {
		writeOAuthError(w, r, errInvalidRequest("Last-Event-ID must be a revocation sequence number."))
		return
	}
	if !s.feed.open(caller.ID) {
		w.Header().Set("Retry-After", "5")
		writeJSONError(w, http.StatusTooManyRequests, "temporarily_unavailable", "Too many revocation streams for this client.")
		return
	}
	defer s.feed.release(caller.ID)
	s.streamRevocations(w, r, after, resume)
}

// lastEventID reads where the reader is: the Last-Event-ID header, as
// EventSource sends it, or the after query parameter.
func lastEventID(r *http.Request) (after uint64, resume bool, err error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("after")
	}
	if v == "" {
		return 0, false, nil
	}
	after, err = strconv.ParseUint(v, 10, 64)
	return after, err == nil, err
}

// streamRevocations writes events until the reader leaves, is too slow, or
// the server closes its streams.
func (s *Server) streamRevocations(w http.ResponseWriter, r *http.Request, pos uint64, resume bool) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	// The stream outlives the server's read and write timeouts; the write
	// deadline is set per batch instead.
	_ = rc.SetReadDeadline(time.Time{})
	floor, head, err := s.store.RevocationRange(ctx)
	if err != nil {
		s.alarm.report("revocation_feed", err)
		writeOAuthError(w, r, fromFosite(err))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	switch {
	case !resume:
		pos = head
	case pos < floor || pos > head:
		// What the reader missed is gone (or it read another store): it
		// must drop everything it cached and start from here.
		pos = head
		fmt.Fprintf(w, "id: %d\nevent: reset\ndata: {}\n\n", pos)
		if !s.flushFeed(rc) {
			return
		}
	}
	// "ready" follows what the reader missed: from then on it is caught
	// up and may trust its cache until the tokens' expiry.
	ready := false
	heartbeat := time.NewTicker(feedHeartbeat)
	defer heartbeat.Stop()
	poll := time.NewTicker(feedPoll)
	defer poll.Stop()
	for {
		wake := s.feed.waiter()
		// Another replica's revocation, when the store hears of it, wakes
		// the stream before the poll would (nil: never).
		var remote <-chan struct{}
		if n, ok := s.store.(storage.RevocationNotifier); ok {
			remote = n.RevocationNotices()
		}
		evs, err := s.store.Revocations(ctx, pos, feedBatch)
		if err != nil {
			// The reader resumes from pos once the store answers again.
			s.log.Warn("revocation feed: cannot read events; ending the stream", "error", err)
			return
		}
		for _, ev := range evs {
			data, _ := json.Marshal(feedEvent{Kind: ev.Kind, ID: ev.ID, Subject: ev.Subject, ClientID: ev.ClientID,
				Until: ev.Until.Unix(), Time: ev.Time.UnixMilli()})
			fmt.Fprintf(w, "id: %d\nevent: revocation\ndata: %s\n\n", ev.Seq, data)
			pos = ev.Seq
		}
		if len(evs) == feedBatch {
			if !s.flushFeed(rc) {
				return
			}
			continue
		}
		announce := !ready
		if announce {
			ready = true
			fmt.Fprintf(w, "id: %d\nevent: ready\ndata: {}\n\n", pos)
		}
		if (len(evs) > 0 || announce) && !s.flushFeed(rc) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-s.feed.done:
			return
		case <-wake:
		case <-remote:
		case <-poll.C:
		case <-heartbeat.C:
			fmt.Fprint(w, ": heartbeat\n\n")
			if !s.flushFeed(rc) {
				return
			}
		}
	}
}

// flushFeed sends what was written, within the write deadline; false means
// the reader is gone or too slow, and the stream ends.
func (s *Server) flushFeed(rc *http.ResponseController) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(s.feed.writeTimeout))
	return rc.Flush() == nil
}
