package storagetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// Semantics of the login-failure counters this file pins down, beyond the
// interface's documentation:
//   - AddLoginFailure judges both expiry and the quiet period by the now it
//     is given; LoginFailures judges expiry by the store's clock.
//   - A quiet period of exactly forgetAfter does not reset the count
//     ("older than now-forgetAfter" is strict), and a record expiring at
//     exactly now is still live, as for tokens.
//   - Every bump moves the record's expiry: the sweep removes a counter by
//     its latest expiry only.

func addFailure(t *testing.T, s storage.Store, key string, now time.Time, forgetAfter time.Duration) storage.LoginFailures {
	t.Helper()
	f, err := s.AddLoginFailure(t.Context(), key, now, forgetAfter)
	if err != nil {
		t.Fatalf("AddLoginFailure(%q): %v", key, err)
	}
	return f
}

func checkFailures(t *testing.T, what string, got storage.LoginFailures, count int, last time.Time) {
	t.Helper()
	if got.Count != count {
		t.Errorf("%s: Count = %d, want %d", what, got.Count, count)
	}
	if last.IsZero() {
		if !got.Last.IsZero() {
			t.Errorf("%s: Last = %v, want the zero time", what, got.Last)
		}
		return
	}
	checkTime(t, what+": Last", got.Last, last)
}

func readFailures(t *testing.T, s storage.Store, key string) storage.LoginFailures {
	t.Helper()
	f, err := s.LoginFailures(t.Context(), key)
	if err != nil {
		t.Fatalf("LoginFailures(%q): %v", key, err)
	}
	return f
}

func testLoginFailures(t *testing.T, s storage.Store) {
	checkFailures(t, "absent", readFailures(t, s, "u\x00alice"), 0, time.Time{})
	t0 := base()
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		got := addFailure(t, s, "u\x00alice", now, time.Hour)
		checkFailures(t, fmt.Sprintf("AddLoginFailure #%d", i), got, i, now)
	}
	checkFailures(t, "LoginFailures", readFailures(t, s, "u\x00alice"), 3, t0.Add(3*time.Second))
}

func testLoginFailuresReset(t *testing.T, s storage.Store) {
	t0 := base()
	// A quiet period of exactly forgetAfter is not yet longer than it.
	addFailure(t, s, "edge", t0, time.Hour)
	got := addFailure(t, s, "edge", t0.Add(time.Hour), time.Hour)
	checkFailures(t, "after exactly forgetAfter", got, 2, t0.Add(time.Hour))
	got = addFailure(t, s, "edge", t0.Add(2*time.Hour+time.Nanosecond), time.Hour)
	checkFailures(t, "after more than forgetAfter", got, 1, t0.Add(2*time.Hour+time.Nanosecond))

	// The quiet period is judged by this call's forgetAfter, even while the
	// record itself (kept for a longer one) has not expired.
	addFailure(t, s, "long", t0, 10*time.Hour)
	addFailure(t, s, "long", t0.Add(time.Minute), 10*time.Hour)
	got = addFailure(t, s, "long", t0.Add(3*time.Hour), time.Hour)
	checkFailures(t, "quiet past a shorter forgetAfter", got, 1, t0.Add(3*time.Hour))
	checkFailures(t, "LoginFailures after reset", readFailures(t, s, "long"), 1, t0.Add(3*time.Hour))
}

func testLoginFailuresExpired(t *testing.T, s storage.Store) {
	now := time.Now()
	// Expired an hour ago: absent to readers, and not counted on.
	addFailure(t, s, "old", now.Add(-2*time.Hour), time.Hour)
	addFailure(t, s, "old", now.Add(-2*time.Hour), time.Hour)
	checkFailures(t, "expired", readFailures(t, s, "old"), 0, time.Time{})
	got := addFailure(t, s, "old", now.Add(-time.Hour).Add(time.Nanosecond), 3*time.Hour)
	checkFailures(t, "over an expired record", got, 1, now.Add(-time.Hour).Add(time.Nanosecond))
	checkFailures(t, "LoginFailures over an expired record", readFailures(t, s, "old"), 1, now.Add(-time.Hour).Add(time.Nanosecond))
}

func testLoginFailuresDeleteExpired(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now()
	addFailure(t, s, "gone", now.Add(-2*time.Hour), time.Hour) // expired at now-1h
	addFailure(t, s, "edge", now.Add(-time.Hour), time.Hour)   // expires at now: live
	addFailure(t, s, "live", now, time.Hour)
	// Bumped: its first expiry (now+10m) moved to now+1h with the second
	// failure, and the sweep must go by the latest one.
	addFailure(t, s, "moved", now.Add(-30*time.Minute), 40*time.Minute)
	addFailure(t, s, "moved", now, time.Hour)

	n, err := s.DeleteExpired(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpired(now) = %d, %v; want 1, nil", n, err)
	}
	n, err = s.DeleteExpired(ctx, now.Add(20*time.Minute))
	if err != nil || n != 1 { // edge
		t.Fatalf("DeleteExpired(now+20m) = %d, %v; want 1 (edge), nil", n, err)
	}
	checkFailures(t, "moved after the sweep", readFailures(t, s, "moved"), 2, now)
	checkFailures(t, "live after the sweep", readFailures(t, s, "live"), 1, now)
	if got := addFailure(t, s, "gone", now, time.Hour); got.Count != 1 {
		t.Errorf("AddLoginFailure after the sweep: Count = %d, want 1", got.Count)
	}

	n, err = s.DeleteExpired(ctx, now.Add(2*time.Hour))
	if err != nil || n != 3 { // live, moved, gone again
		t.Fatalf("DeleteExpired(now+2h) = %d, %v; want 3, nil", n, err)
	}
	n, err = s.DeleteExpired(ctx, now.Add(2*time.Hour))
	if err != nil || n != 0 {
		t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
	}
}

func testLoginFailuresClear(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if err := s.ClearLoginFailures(ctx, "never"); err != nil {
		t.Fatalf("ClearLoginFailures(absent): %v", err)
	}
	now := time.Now()
	addFailure(t, s, "u\x00bob", now, time.Hour)
	addFailure(t, s, "u\x00bob", now, time.Hour)
	if err := s.ClearLoginFailures(ctx, "u\x00bob"); err != nil {
		t.Fatalf("ClearLoginFailures: %v", err)
	}
	checkFailures(t, "after Clear", readFailures(t, s, "u\x00bob"), 0, time.Time{})
	if err := s.ClearLoginFailures(ctx, "u\x00bob"); err != nil {
		t.Errorf("second ClearLoginFailures: %v", err)
	}
	// The expiry entry went with the record: nothing is left to sweep.
	n, err := s.DeleteExpired(ctx, now.Add(2*time.Hour))
	if err != nil || n != 0 {
		t.Errorf("DeleteExpired after Clear = %d, %v; want 0, nil", n, err)
	}
	checkFailures(t, "counting again", addFailure(t, s, "u\x00bob", now, time.Hour), 1, now)
}

func testLoginFailuresKeysIndependent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now()
	// Prefixes, separators, the empty key and bytes that are not UTF-8.
	keys := []string{"u\x00bob", "u\x00bo", "u\x00bob\x00", "u\x00bobx", "a\x00bob", "u", "u\x00", "",
		"\x00", "\x01u\x00bob", "bob", "\xff\xfe", "u\x00b\x00ob"}
	for i, k := range keys {
		for range i + 1 {
			addFailure(t, s, k, now, time.Hour)
		}
	}
	for i, k := range keys {
		checkFailures(t, fmt.Sprintf("key %q", k), readFailures(t, s, k), i+1, now)
	}
	if err := s.ClearLoginFailures(ctx, keys[0]); err != nil {
		t.Fatalf("ClearLoginFailures: %v", err)
	}
	checkFailures(t, fmt.Sprintf("cleared key %q", keys[0]), readFailures(t, s, keys[0]), 0, time.Time{})
	for i, k := range keys[1:] {
		checkFailures(t, fmt.Sprintf("key %q after clearing %q", k, keys[0]), readFailures(t, s, k), i+2, now)
	}
}

func testLoginFailuresConcurrent(t *testing.T, s storage.Store) {
	const n = 50
	var wg sync.WaitGroup
	counts := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var f storage.LoginFailures
			f, errs[i] = s.AddLoginFailure(t.Context(), "u\x00mallory", time.Now(), time.Hour)
			counts[i] = f.Count
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("AddLoginFailure %d: %v", i, err)
		}
	}
	if got := readFailures(t, s, "u\x00mallory").Count; got != n {
		t.Errorf("after %d concurrent failures Count = %d", n, got)
	}
	// Each call saw its own increment: the counts are 1..n, once each.
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("concurrent AddLoginFailure returned counts %v, want 1..%d once each", counts, n)
		}
	}
}
