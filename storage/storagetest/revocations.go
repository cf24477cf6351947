package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

func revocations(t *testing.T, s storage.Store, after uint64) []storage.Revocation {
	t.Helper()
	rs, err := s.Revocations(t.Context(), after, 1000)
	if err != nil {
		t.Fatalf("Revocations(%d): %v", after, err)
	}
	return rs
}

func checkRange(t *testing.T, s storage.Store, wantFloor, wantHead uint64) {
	t.Helper()
	floor, head, err := s.RevocationRange(t.Context())
	if err != nil || floor != wantFloor || head != wantHead {
		t.Errorf("RevocationRange = %d, %d, %v; want floor %d, head %d", floor, head, err, wantFloor, wantHead)
	}
}

// RevokeGrant records one event with the grant, when it removed a token
// still valid, Until the latest expiry among them.
func testRevokeGrantRecordsEvent(t *testing.T, s storage.Store) {
	checkRange(t, s, 0, 0)
	at := tok(storage.AccessToken, "at", "req-1", "client-1", "alice")
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	rt.ExpiresAt = at.ExpiresAt.Add(time.Hour)
	old := expired(tok(storage.AccessToken, "old", "req-1", "client-1", "alice"))
	mustCreate(t, s, at, rt, old)
	before := time.Now().Add(-time.Second)
	if n, err := s.RevokeGrant(t.Context(), "req-1"); err != nil || n != 3 {
		t.Fatalf("RevokeGrant = %d, %v", n, err)
	}
	rs := revocations(t, s, 0)
	if len(rs) != 1 {
		t.Fatalf("events %+v, want one", rs)
	}
	r := rs[0]
	if r.Seq == 0 || r.Kind != storage.RevokedGrant || r.ID != "req-1" || r.Subject != "alice" || r.ClientID != "client-1" {
		t.Errorf("event %+v", r)
	}
	// The refresh token expires later, but no cache holds one.
	checkTime(t, "Until", r.Until, at.ExpiresAt)
	if r.Time.Before(before) || r.Time.Location() != time.UTC {
		t.Errorf("event Time %v, want now in UTC", r.Time)
	}
	checkRange(t, s, 0, r.Seq)

	// No valid access token removed, nothing to tell: no event.
	mustCreate(t, s, expired(tok(storage.AccessToken, "gone", "req-2", "client-1", "alice")),
		tok(storage.RefreshToken, "rt-only", "req-3", "client-1", "alice"))
	for _, id := range []string{"req-2", "req-3", "no-such-grant", "req-1"} {
		if _, err := s.RevokeGrant(t.Context(), id); err != nil {
			t.Fatalf("RevokeGrant(%s): %v", id, err)
		}
	}
	if rs := revocations(t, s, r.Seq); len(rs) != 0 {
		t.Errorf("events after revoking nothing live: %+v", rs)
	}
}

func testAppendRevocation(t *testing.T, s storage.Store) {
	until := base().Add(time.Hour)
	var seqs []uint64
	for _, r := range []storage.Revocation{
		{Kind: storage.RevokedSubject, ID: "alice", Until: until},
		{Kind: storage.RevokedClient, ID: "client-\x00bin", Until: until},
		{Kind: storage.RevokedGrant, ID: "req-9", Subject: "bob", ClientID: "c", Until: until},
	} {
		got, err := s.AppendRevocation(t.Context(), r)
		if err != nil {
			t.Fatalf("AppendRevocation(%+v): %v", r, err)
		}
		if len(seqs) > 0 && got.Seq <= seqs[len(seqs)-1] {
			t.Errorf("Seq %d after %d", got.Seq, seqs[len(seqs)-1])
		}
		seqs = append(seqs, got.Seq)
		if got.Time.IsZero() {
			t.Error("Time not assigned")
		}
	}
	rs := revocations(t, s, 0)
	if len(rs) != 3 {
		t.Fatalf("events %+v, want 3", rs)
	}
	if rs[1].Kind != storage.RevokedClient || rs[1].ID != "client-\x00bin" || rs[2].Subject != "bob" || rs[2].ClientID != "c" {
		t.Errorf("round trip: %+v", rs)
	}
	checkTime(t, "Until", rs[0].Until, until)
	// Paging: after and limit.
	page, err := s.Revocations(t.Context(), seqs[0], 1)
	if err != nil || len(page) != 1 || page[0].Seq != seqs[1] {
		t.Errorf("Revocations(after %d, limit 1) = %+v, %v", seqs[0], page, err)
	}
	if rs := revocations(t, s, seqs[2]); len(rs) != 0 {
		t.Errorf("events after the head: %+v", rs)
	}
	if _, err := s.AppendRevocation(t.Context(), storage.Revocation{Kind: storage.RevokedSubject}); err == nil {
		t.Error("an event without ID was recorded")
	}
	checkRange(t, s, 0, seqs[2])
}

// Events are kept for the retention (24h by default) and until their Until,
// then swept; the floor tells a reader behind it to start over.
func testRevocationsSwept(t *testing.T, s storage.Store) {
	now := time.Now()
	short, err := s.AppendRevocation(t.Context(), storage.Revocation{Kind: storage.RevokedSubject, ID: "a", Until: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	long, err := s.AppendRevocation(t.Context(), storage.Revocation{Kind: storage.RevokedSubject, ID: "b", Until: now.Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Within the retention both stay, though a's Until has passed.
	if _, err := s.DeleteExpired(t.Context(), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rs := revocations(t, s, 0); len(rs) != 2 {
		t.Fatalf("after an hour: %+v, want both", rs)
	}
	n, err := s.DeleteExpired(t.Context(), now.Add(25*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired past the retention = %d, %v; want 1", n, err)
	}
	rs := revocations(t, s, 0)
	if len(rs) != 1 || rs[0].Seq != long.Seq {
		t.Fatalf("after the retention: %+v, want only the event whose Until is later", rs)
	}
	checkRange(t, s, short.Seq, long.Seq)
}

// Seq order is commit order: a reader that follows the head while events
// are appended concurrently sees every Seq in turn, never a gap that fills
// later (on PostgreSQL a plain sequence would allow that).
func testRevocationsConcurrent(t *testing.T, s storage.Store) {
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				_, err := s.AppendRevocation(t.Context(), storage.Revocation{Kind: storage.RevokedSubject, ID: fmt.Sprintf("u%d-%d", w, i), Until: base().Add(time.Hour)})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	var pos uint64
	seen := map[string]bool{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished || len(seen) < writers*each; {
		select {
		case <-done:
			finished = true
		default:
		}
		rs, err := s.Revocations(t.Context(), pos, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Seq != pos+1 {
				t.Fatalf("read Seq %d after %d: a gap", r.Seq, pos)
			}
			pos = r.Seq
			seen[r.ID] = true
		}
		if finished && len(rs) == 0 && len(seen) < writers*each {
			break
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != writers*each {
		t.Errorf("read %d events, want %d", len(seen), writers*each)
	}
}
