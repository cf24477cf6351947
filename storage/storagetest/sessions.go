package storagetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// Semantics of the session records this file pins down, beyond the
// interface's documentation:
//   - SessionRevoked and SubjectSessionsEndedAt judge expiry by the store's
//     clock; a record whose until is exactly now is still live, and
//     DeleteExpired removes it only after that instant.
//   - RevokeSession keeps the later of two untils; EndSubjectSessions keeps
//     the later at and the later until of a live record, and the sweep goes
//     by the latest until only.
//   - SubjectSessionsEndedAt returns at in UTC, to the nanosecond.

func revoke(t *testing.T, s storage.Store, id string, until time.Time) {
	t.Helper()
	if err := s.RevokeSession(t.Context(), id, until); err != nil {
		t.Fatalf("RevokeSession(%q): %v", id, err)
	}
}

func checkRevoked(t *testing.T, s storage.Store, id string, want bool) {
	t.Helper()
	got, err := s.SessionRevoked(t.Context(), id)
	if err != nil {
		t.Fatalf("SessionRevoked(%q): %v", id, err)
	}
	if got != want {
		t.Errorf("SessionRevoked(%q) = %v, want %v", id, got, want)
	}
}

func endSessions(t *testing.T, s storage.Store, subject string, at, until time.Time) {
	t.Helper()
	if err := s.EndSubjectSessions(t.Context(), subject, at, until); err != nil {
		t.Fatalf("EndSubjectSessions(%q): %v", subject, err)
	}
}

func checkEndedAt(t *testing.T, s storage.Store, subject string, want time.Time) {
	t.Helper()
	got, err := s.SubjectSessionsEndedAt(t.Context(), subject)
	if err != nil {
		t.Fatalf("SubjectSessionsEndedAt(%q): %v", subject, err)
	}
	what := fmt.Sprintf("SubjectSessionsEndedAt(%q)", subject)
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	checkTime(t, what, got, want)
}

func checkSwept(t *testing.T, s storage.Store, now time.Time, want int, why string) {
	t.Helper()
	n, err := s.DeleteExpired(t.Context(), now)
	if err != nil || n != want {
		t.Fatalf("DeleteExpired (%s) = %d, %v; want %d, nil", why, n, err, want)
	}
}

func testRevokeSession(t *testing.T, s storage.Store) {
	until := base().Add(8 * time.Hour)
	checkRevoked(t, s, "sid-1", false)
	revoke(t, s, "sid-1", until)
	checkRevoked(t, s, "sid-1", true)
	// Idempotent, and an earlier until does not shorten the record.
	revoke(t, s, "sid-1", until)
	revoke(t, s, "sid-1", until.Add(-7*time.Hour))
	checkRevoked(t, s, "sid-1", true)
	checkSwept(t, s, until.Add(-time.Hour), 0, "before the later until")
	checkRevoked(t, s, "sid-1", true)

	// IDs are independent: prefixes, separators, the empty ID, non-UTF-8.
	for _, id := range []string{"sid-", "sid-1\x00", "sid-10", "", "\x00", "\xff\xfe", "SID-1"} {
		checkRevoked(t, s, id, false)
	}
	revoke(t, s, "", until)
	revoke(t, s, "\xff\xfe", until)
	checkRevoked(t, s, "", true)
	checkRevoked(t, s, "\xff\xfe", true)
	checkRevoked(t, s, "\x00", false)
	checkRevoked(t, s, "\xff", false)
}

func testRevokeSessionExpired(t *testing.T, s storage.Store) {
	now := time.Now()
	// Revoking a session that has already expired is not an error; the
	// record is absent to readers.
	revoke(t, s, "old", now.Add(-time.Minute))
	checkRevoked(t, s, "old", false)
	// A later revocation of the same ID holds.
	revoke(t, s, "old", now.Add(time.Hour))
	checkRevoked(t, s, "old", true)
	checkSwept(t, s, now, 0, "the record's until moved on")
}

func testRevokeSessionDeleteExpired(t *testing.T, s storage.Store) {
	now := time.Now()
	revoke(t, s, "gone", now.Add(-time.Hour))
	revoke(t, s, "edge", now) // expires at now: live until after it
	revoke(t, s, "live", now.Add(time.Hour))
	// Moved: its first until (now+10m) moved to now+2h with the second
	// call, and the sweep must go by the latest one.
	revoke(t, s, "moved", now.Add(10*time.Minute))
	revoke(t, s, "moved", now.Add(2*time.Hour))

	checkSwept(t, s, now, 1, "now: gone")
	checkSwept(t, s, now.Add(20*time.Minute), 1, "now+20m: edge")
	checkRevoked(t, s, "moved", true)
	checkRevoked(t, s, "live", true)
	checkSwept(t, s, now.Add(90*time.Minute), 1, "now+90m: live")
	// Swept means forgotten, even though by the store's clock it would
	// still be live.
	checkRevoked(t, s, "live", false)
	checkRevoked(t, s, "moved", true)
	checkSwept(t, s, now.Add(3*time.Hour), 1, "now+3h: moved")
	checkSwept(t, s, now.Add(3*time.Hour), 0, "again")
	checkRevoked(t, s, "moved", false)
}

func testRevokeSessionConcurrent(t *testing.T, s storage.Store) {
	const n = 20
	now := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.RevokeSession(t.Context(), "sid-shared", now.Add(time.Duration(i+1)*time.Minute))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("RevokeSession %d: %v", i, err)
		}
	}
	checkRevoked(t, s, "sid-shared", true)
	// One record, lasting until the latest until.
	checkSwept(t, s, now.Add(n*time.Minute), 0, "at the latest until")
	checkSwept(t, s, now.Add(n*time.Minute+time.Nanosecond), 1, "past the latest until")
}

func testEndSubjectSessions(t *testing.T, s storage.Store) {
	t1 := base()
	until := t1.Add(8 * time.Hour)
	checkEndedAt(t, s, "alice", time.Time{})
	endSessions(t, s, "alice", t1, until)
	checkEndedAt(t, s, "alice", t1)
	// Idempotent, and never backward.
	endSessions(t, s, "alice", t1, until)
	checkEndedAt(t, s, "alice", t1)
	endSessions(t, s, "alice", t1.Add(-time.Nanosecond), until)
	checkEndedAt(t, s, "alice", t1)
	endSessions(t, s, "alice", t1.Add(-time.Hour), until.Add(-time.Hour))
	checkEndedAt(t, s, "alice", t1)
	// Forward, to the nanosecond.
	endSessions(t, s, "alice", t1.Add(time.Nanosecond), until)
	checkEndedAt(t, s, "alice", t1.Add(time.Nanosecond))
	t2 := t1.Add(90 * time.Minute)
	endSessions(t, s, "alice", t2, t2.Add(8*time.Hour))
	checkEndedAt(t, s, "alice", t2)

	// Subjects are independent.
	for _, sub := range []string{"bob", "alic", "alice\x00", "alice\x00x", "", "\x00", "ALICE", "\xffalice"} {
		checkEndedAt(t, s, sub, time.Time{})
	}
	endSessions(t, s, "alice\x00x", t1.Add(time.Minute), until)
	endSessions(t, s, "", t1.Add(2*time.Minute), until)
	checkEndedAt(t, s, "alice\x00x", t1.Add(time.Minute))
	checkEndedAt(t, s, "", t1.Add(2*time.Minute))
	checkEndedAt(t, s, "alice", t2)
	checkEndedAt(t, s, "alice\x00", time.Time{})
}

func testEndSubjectSessionsExpired(t *testing.T, s storage.Store) {
	now := time.Now()
	endSessions(t, s, "carol", now.Add(-10*time.Hour), now.Add(-2*time.Hour))
	checkEndedAt(t, s, "carol", time.Time{})
	// An expired record is absent, so it does not hold at back: a new call
	// replaces it, even with an earlier at.
	endSessions(t, s, "dave", now.Add(-time.Hour), now.Add(-time.Minute))
	endSessions(t, s, "dave", now.Add(-2*time.Hour), now.Add(time.Hour))
	checkEndedAt(t, s, "dave", now.Add(-2*time.Hour))
	// Nor does it hold until back: replaced, it is swept by the new one.
	checkSwept(t, s, now.Add(time.Hour), 1, "now+1h: carol")
	checkSwept(t, s, now.Add(time.Hour+time.Nanosecond), 1, "past now+1h: dave")
}

func testEndSubjectSessionsDeleteExpired(t *testing.T, s storage.Store) {
	now := time.Now()
	endSessions(t, s, "gone", now.Add(-9*time.Hour), now.Add(-time.Hour))
	endSessions(t, s, "edge", now.Add(-8*time.Hour), now)
	// Moved forward: the sweep goes by the latest until (now+1h).
	endSessions(t, s, "dave", now.Add(-time.Hour), now.Add(10*time.Minute))
	endSessions(t, s, "dave", now, now.Add(time.Hour))
	// A later call with an earlier until keeps the later one (now+2h).
	endSessions(t, s, "erin", now.Add(-2*time.Hour), now.Add(2*time.Hour))
	endSessions(t, s, "erin", now.Add(-time.Hour), now.Add(30*time.Minute))

	checkSwept(t, s, now, 1, "now: gone")
	checkSwept(t, s, now.Add(45*time.Minute), 1, "now+45m: edge")
	checkEndedAt(t, s, "dave", now)
	checkEndedAt(t, s, "erin", now.Add(-time.Hour))
	checkSwept(t, s, now.Add(90*time.Minute), 1, "now+90m: dave")
	checkEndedAt(t, s, "dave", time.Time{})
	checkEndedAt(t, s, "erin", now.Add(-time.Hour))
	checkSwept(t, s, now.Add(3*time.Hour), 1, "now+3h: erin")
	checkSwept(t, s, now.Add(3*time.Hour), 0, "again")
	checkEndedAt(t, s, "erin", time.Time{})
}

func testEndSubjectSessionsConcurrent(t *testing.T, s storage.Store) {
	const n = 20
	t0 := base()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			errs[i] = s.EndSubjectSessions(t.Context(), "frank", at, at.Add(8*time.Hour))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("EndSubjectSessions %d: %v", i, err)
		}
	}
	// Whatever order they committed in, the latest at won.
	checkEndedAt(t, s, "frank", t0.Add((n-1)*time.Millisecond))
}
