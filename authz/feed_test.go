package authz

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/storage"
)

type sseEvent struct{ id, event, data string }

// openFeed connects to the revocation feed as user/pass, resuming after
// lastID when it is not empty, and returns the status and, on 200, the
// events as they arrive.
func (f *ctlFixture) openFeed(t *testing.T, user, pass, lastID string) (int, <-chan sseEvent) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.ts.URL+pathRevocationFeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := f.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	ch := make(chan sseEvent, 64)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.event != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return http.StatusOK, ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the feed ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

func (f *ctlFixture) introspectAs(t *testing.T, token string) map[string]any {
	t.Helper()
	status, body, _ := f.tokenCall(t, pathIntrospect, url.Values{"token": {token}}, "rs", f.secret)
	if status != http.StatusOK {
		t.Fatalf("introspect: %d %v", status, body)
	}
	return body
}

func TestRevocationFeed(t *testing.T) {
	f := newCtlFixture(t)
	for _, tc := range []struct {
		name, user, pass string
		want             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong secret", "rs", "wrong", http.StatusUnauthorized},
		{"not a resource server", "billing", f.secret, http.StatusForbidden},
	} {
		if status, _ := f.openFeed(t, tc.user, tc.pass, ""); status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.want)
		}
	}

	status, feed := f.openFeed(t, "rs", f.secret, "")
	if status != http.StatusOK {
		t.Fatalf("feed: %d", status)
	}
	if ev := nextEvent(t, feed); ev.event != "ready" || ev.id != "0" {
		t.Fatalf("first event %+v, want ready at 0", ev)
	}
	access, _ := f.passwordGrant(t)
	in := f.introspectAs(t, access)
	grant, _ := in["grant_id"].(string)
	if grant == "" || in["jti"] == "" || in["jti"] == nil {
		t.Fatalf("introspection without grant_id or jti: %v", in)
	}
	if status, _, _ := f.tokenCall(t, pathRevoke, url.Values{"token": {access}}, "mobile", f.secret); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	ev := nextEvent(t, feed)
	var data feedEvent
	if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
		t.Fatal(err)
	}
	if ev.event != "revocation" || ev.id != "1" || data.Kind != storage.RevokedGrant || data.ID != grant || data.Subject != "alice" || data.ClientID != "mobile" {
		t.Errorf("event %+v %+v, want the grant %s", ev, data, grant)
	}
	if exp, _ := in["exp"].(float64); data.Until < int64(exp) {
		t.Errorf("until %d is before the access token's exp %v", data.Until, in["exp"])
	}

	// A reader resuming after 0 gets what it missed; one behind the floor
	// (or ahead of the head) is told to start over.
	if _, resumed := f.openFeed(t, "rs", f.secret, "0"); true {
		if ev := nextEvent(t, resumed); ev.event != "revocation" || ev.id != "1" {
			t.Errorf("resume: missed event %+v", ev)
		}
		if ev := nextEvent(t, resumed); ev.event != "ready" || ev.id != "1" {
			t.Errorf("resume: %+v, want ready once caught up", ev)
		}
	}
	if _, ahead := f.openFeed(t, "rs", f.secret, "99"); true {
		if ev := nextEvent(t, ahead); ev.event != "reset" || ev.id != "1" {
			t.Errorf("position ahead of the head: %+v, want reset at 1", ev)
		}
	}
	if _, err := f.store.DeleteExpired(t.Context(), time.Now().Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, behind := f.openFeed(t, "rs", f.secret, "0"); true {
		if ev := nextEvent(t, behind); ev.event != "reset" || ev.id != "1" {
			t.Errorf("position behind the floor: %+v, want reset at 1", ev)
		}
	}
	if status, _ := f.openFeed(t, "rs", f.secret, "x"); status != http.StatusBadRequest {
		t.Errorf("Last-Event-ID x: %d, want 400", status)
	}
}

func TestRevocationFeedStreamsCapped(t *testing.T) {
	f := newCtlFixture(t)
	for i := range feedStreamsPerRS {
		if status, _ := f.openFeed(t, "rs", f.secret, ""); status != http.StatusOK {
			t.Fatalf("stream %d: %d", i, status)
		}
	}
	if status, _ := f.openFeed(t, "rs", f.secret, ""); status != http.StatusTooManyRequests {
		t.Errorf("one stream too many: %d, want 429", status)
	}
}

// A reload that removes a user or changes a client's secret tells the feed,
// and ends the old server's streams.
func TestTakeOverRecordsRevocations(t *testing.T) {
	f := newCtlFixture(t)
	old := f.srv
	_, feed := f.openFeed(t, "rs", f.secret, "")
	nextEvent(t, feed) // ready
	cs := ctlClients(f.hash)
	var kept []*clients.Client
	for _, c := range cs {
		switch c.ID {
		case "billing":
			continue // removed
		case "reports":
			c.SecretHash = []byte("$other")
		}
		kept = append(kept, c)
	}
	// bob is removed, alice's password changes.
	f.srv = f.newServerUsers(t, kept, []identity.User{{Username: "alice", Password: "new-password"}})
	if err := f.srv.TakeOver(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	select {
	case _, open := <-feed:
		for open {
			_, open = <-feed
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the replaced server's stream did not end")
	}
	rs, err := f.store.Revocations(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, string(r.Kind)+":"+r.ID)
	}
	if want := "subject:alice subject:bob client:billing client:reports"; strings.Join(got, " ") != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

// A reader that stops reading is cut off once a batch does not go out
// within the write deadline: nothing piles up for it in the server.
func TestRevocationFeedCutsOffSlowReader(t *testing.T) {
	f := newCtlFixture(t)
	f.srv.feed.writeTimeout = 200 * time.Millisecond
	conn, err := tls.Dial("tcp", f.ts.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, f.ts.URL+pathRevocationFeed, nil)
	req.SetBasicAuth("rs", f.secret)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the stream is open", func() bool { return f.srv.feed.count() == 1 })
	// Never read again; write far more than the socket buffers hold.
	var wg sync.WaitGroup
	for w := range 8 { // concurrent appends share fsyncs
		wg.Go(func() {
			for i := range 250 {
				long := strings.Repeat("x", 8<<10) + strconv.Itoa(w*1000+i) // 16 MB in all
				if _, err := f.srv.store.AppendRevocation(t.Context(), storage.Revocation{Kind: storage.RevokedSubject, ID: long, Until: time.Now().Add(time.Hour)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitUntil(t, "the slow reader's stream ends", func() bool { return f.srv.feed.count() == 0 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
	}
}
