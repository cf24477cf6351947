package flows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// Parallel guesses for one username cannot all be checked before the first
// failure is counted: only one is in flight at a time, the rest are told to
// wait.
func TestParallelGuessesAreBounded(t *testing.T) {
	d := NewDirectory([]User{{Username: "alice", Password: "right-password"}}, NewThrottle(ThrottleOptions{}))
	var wg sync.WaitGroup
	var mu sync.Mutex
	checked, throttled := 0, 0
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Authenticate(context.Background(), "alice", "guess-"+strings.Repeat("x", i), "198.51.100.1")
			var te *ThrottledError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.As(err, &te):
				throttled++
			case errors.Is(err, ErrBadCredentials):
				checked++
			default:
				t.Errorf("unexpected result: %v", err)
			}
		}()
	}
	wg.Wait()
	if checked > 6 || throttled < 34 {
		t.Errorf("%d guesses checked, %d throttled; want at most the free failures plus one checked", checked, throttled)
	}
}

func TestOverlongUsernameIsRefusedEarly(t *testing.T) {
	th := NewThrottle(ThrottleOptions{})
	d := NewDirectory(nil, th)
	long := strings.Repeat("u", MaxUsernameLen+1)
	if _, err := d.Authenticate(context.Background(), long, "pw", "198.51.100.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("err = %v", err)
	}
	th.local.mu.Lock()
	n := len(th.local.entries)
	th.local.mu.Unlock()
	if n != 0 {
		t.Errorf("an over-long username left %d throttle entries", n)
	}
}
