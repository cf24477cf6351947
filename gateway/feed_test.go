package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// feedHarness is a gateway on a fake clock following a fake server's feed.
func feedHarness(t *testing.T) (*harness, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	f := newFakeAuth(t)
	f.feed = make(chan string, 16)
	h := &harness{f: f, backend: newEchoBackend(t)}
	cfg := f.config(h.backend.srv.URL)
	cfg.Now = clk.Now
	h.gw = newTestGateway(t, cfg)
	h.srv = httptest.NewServer(h.gw)
	t.Cleanup(h.srv.Close)
	h.gw.Subscribe(t.Context())
	return h, clk
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

func userToken(f *fakeAuth, token, sub, grant string, exp time.Time) {
	f.setToken(token, map[string]any{"active": true, "client_id": "spa", "sub": sub, "scope": "read",
		"exp": exp.Unix(), "iat": exp.Add(-time.Hour).Unix(), "iss": f.srv.URL, "token_type": "Bearer", "grant_id": grant})
}

func TestFeedKeepsCacheUntilExpAndEvicts(t *testing.T) {
	h, clk := feedHarness(t)
	userToken(h.f, "tok", "alice", "g1", clk.Now().Add(time.Hour))
	userToken(h.f, "other", "bob", "g2", clk.Now().Add(time.Hour))
	h.f.feed <- "id: 0\nevent: ready\ndata: {}\n\n"
	waitFor(t, "informed", h.gw.revoked.informed.Load)

	for _, tok := range []string{"tok", "other"} {
		if resp, _ := h.get(t, "/api/x", tok, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", tok, resp.StatusCode)
		}
	}
	before := h.f.introspections.Load()
	clk.Advance(5 * time.Minute) // past cache.ttl (1m), well before exp
	if resp, _ := h.get(t, "/api/x", "tok", nil); resp.StatusCode != http.StatusOK || h.f.introspections.Load() != before {
		t.Fatalf("informed by the feed, the cached token was checked again (%d introspections)", h.f.introspections.Load()-before)
	}

	// The grant is revoked: the gateway refuses the token at once, even
	// though this fake server would still call it active.
	h.f.feed <- fmt.Sprintf("id: 1\nevent: revocation\ndata: {\"kind\":\"grant\",\"id\":\"g1\",\"until\":%d,\"time\":%d}\n\n",
		clk.Now().Add(time.Hour).Unix(), clk.Now().UnixMilli())
	waitFor(t, "revoked token refused", func() bool {
		resp, _ := h.get(t, "/api/x", "tok", nil)
		return resp.StatusCode == http.StatusUnauthorized
	})
	if resp, _ := h.get(t, "/api/x", "other", nil); resp.StatusCode != http.StatusOK {
		t.Error("another grant's token was refused")
	}

	// A subject ended: bob's tokens go, and an answer about one that was
	// still in flight is not believed.
	h.f.feed <- fmt.Sprintf("id: 2\nevent: revocation\ndata: {\"kind\":\"subject\",\"id\":\"bob\",\"until\":%d,\"time\":%d}\n\n",
		clk.Now().Add(time.Hour).Unix(), clk.Now().UnixMilli())
	waitFor(t, "ended subject refused", func() bool {
		resp, _ := h.get(t, "/api/x", "other", nil)
		return resp.StatusCode == http.StatusUnauthorized
	})

	// Reset: everything cached is dropped.
	userToken(h.f, "third", "carol", "g3", clk.Now().Add(time.Hour))
	if resp, _ := h.get(t, "/api/x", "third", nil); resp.StatusCode != http.StatusOK {
		t.Fatal("third refused")
	}
	n := h.f.introspections.Load()
	h.f.feed <- "id: 9\nevent: reset\ndata: {}\n\nid: 9\nevent: ready\ndata: {}\n\n"
	waitFor(t, "cache dropped on reset", func() bool { return h.gw.validator.cache.len() == 0 })
	if resp, _ := h.get(t, "/api/x", "third", nil); resp.StatusCode != http.StatusOK || h.f.introspections.Load() != n+1 {
		t.Errorf("after a reset the token was not checked again")
	}

	// The feed goes away: cache.ttl rules again.
	close(h.f.feed)
	waitFor(t, "uninformed", func() bool { return !h.gw.revoked.informed.Load() })
	n = h.f.introspections.Load()
	clk.Advance(2 * time.Minute)
	if resp, _ := h.get(t, "/api/x", "third", nil); resp.StatusCode != http.StatusOK || h.f.introspections.Load() != n+1 {
		t.Errorf("without the feed, a cached token outlived cache.ttl")
	}
}

// What the feed told is forgotten once every token it covered has
// expired, so a long run of revocations does not grow the gateway's
// memory; an event whose tokens may still be live is kept.
func TestFeedForgetsExpiredRevocations(t *testing.T) {
	rv := newRevocations()
	cache := newTokenCache(16)
	now := time.Unix(1_700_000_000, 0)
	ev := func(kind, id string, until time.Time) feedEvent {
		return feedEvent{Kind: kind, ID: id, Until: until.Unix(), Time: now.UnixMilli()}
	}
	rv.apply(ev("grant", "g-short", now.Add(time.Minute)), cache, now)
	rv.apply(ev("subject", "s-short", now.Add(time.Minute)), cache, now)
	rv.apply(ev("client", "c-short", now.Add(time.Minute)), cache, now)
	rv.apply(ev("grant", "g-long", now.Add(time.Hour)), cache, now)

	now = now.Add(2*time.Minute + forgetInterval)
	rv.apply(ev("grant", "g-new", now.Add(time.Hour)), cache, now)
	if _, ok := rv.grants["g-short"]; ok {
		t.Error("an expired grant revocation is still held")
	}
	if _, ok := rv.subjects["s-short"]; ok {
		t.Error("an expired subject revocation is still held")
	}
	if _, ok := rv.clients["c-short"]; ok {
		t.Error("an expired client revocation is still held")
	}
	for _, g := range []string{"g-long", "g-new"} {
		if _, ok := rv.grants[g]; !ok {
			t.Errorf("grant %s forgotten while its tokens may be live", g)
		}
	}
}
