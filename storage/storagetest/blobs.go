package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// Semantics of blobs and leases this file pins down, beyond the
// interface's documentation:
//   - A blob comes back byte for byte, any bytes (empty included); names
//     that share a prefix are independent.
//   - A lease is judged by the store's clock: one whose holder's time is
//     up goes to the next caller; a live one only to its own holder.

func checkBlob(t *testing.T, s storage.Store, name string, want []byte) {
	t.Helper()
	got, err := s.GetBlob(t.Context(), name)
	if want == nil {
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetBlob(%q) = %q, %v; want ErrNotFound", name, got, err)
		}
		return
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("GetBlob(%q) = %q, %v; want %q", name, got, err, want)
	}
}

func putBlob(t *testing.T, s storage.Store, name string, data []byte) {
	t.Helper()
	if err := s.PutBlob(t.Context(), name, data); err != nil {
		t.Fatalf("PutBlob(%q): %v", name, err)
	}
}

func testBlobs(t *testing.T, s storage.Store) {
	checkBlob(t, s, "example.com", nil)
	bin := []byte{0, 1, 2, 0xff, '\n'}
	putBlob(t, s, "example.com", bin)
	putBlob(t, s, "example.com+rsa", []byte("other"))
	putBlob(t, s, "empty", []byte{})
	checkBlob(t, s, "example.com", bin)
	checkBlob(t, s, "example.com+rsa", []byte("other"))
	checkBlob(t, s, "example", nil)
	checkBlob(t, s, "empty", []byte{})

	putBlob(t, s, "example.com", []byte("replaced"))
	checkBlob(t, s, "example.com", []byte("replaced"))

	for _, name := range []string{"example.com", "never-there"} {
		if err := s.DeleteBlob(t.Context(), name); err != nil {
			t.Fatalf("DeleteBlob(%q): %v", name, err)
		}
	}
	checkBlob(t, s, "example.com", nil)
	checkBlob(t, s, "example.com+rsa", []byte("other"))
}

func tryLease(t *testing.T, s storage.Store, name, holder string, ttl time.Duration, want bool) {
	t.Helper()
	got, err := s.TryLease(t.Context(), name, holder, ttl)
	if err != nil {
		t.Fatalf("TryLease(%q, %q): %v", name, holder, err)
	}
	if got != want {
		t.Errorf("TryLease(%q, %q) = %v, want %v", name, holder, got, want)
	}
}

func testLeases(t *testing.T, s storage.Store) {
	tryLease(t, s, "order:a", "one", time.Hour, true)
	tryLease(t, s, "order:a", "two", time.Hour, false)
	tryLease(t, s, "order:b", "two", time.Hour, true) // names are independent
	tryLease(t, s, "order:a", "one", time.Hour, true) // its holder extends it

	// Releasing someone else's lease changes nothing.
	if err := s.ReleaseLease(t.Context(), "order:a", "two"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	tryLease(t, s, "order:a", "two", time.Hour, false)
	if err := s.ReleaseLease(t.Context(), "order:a", "one"); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	tryLease(t, s, "order:a", "two", time.Hour, true)
	if err := s.ReleaseLease(t.Context(), "never-taken", "one"); err != nil {
		t.Fatalf("ReleaseLease of a lease nobody holds: %v", err)
	}
}

func testLeaseExpires(t *testing.T, s storage.Store) {
	// A negative ttl has run out as soon as it is taken: what a holder
	// that crashed leaves behind once its time is up.
	tryLease(t, s, "order:a", "crashed", -time.Second, true)
	tryLease(t, s, "order:a", "next", time.Hour, true)
	tryLease(t, s, "order:a", "crashed", time.Hour, false)
}

func testLeaseConcurrent(t *testing.T, s storage.Store) {
	const n = 8
	var wg sync.WaitGroup
	won := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("replica-%d", i)
			ok, err := s.TryLease(t.Context(), "order:shared", holder, time.Hour)
			if err != nil {
				t.Errorf("TryLease(%s): %v", holder, err)
			}
			if ok {
				won <- holder
			}
		}()
	}
	wg.Wait()
	close(won)
	var winners []string
	for w := range won {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Errorf("%d concurrent callers won the lease (%v), want exactly 1", len(winners), winners)
	}
}
