package identity

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/postern-auth/postern/passhash"
)

// Parallel guesses for one username cannot all be checked before the first
// failure is counted: while one is being checked (argon2 held open here),
// every other attempt is told the account is busy.
func TestParallelGuessesAreBounded(t *testing.T) {
	const n = 40
	hash, err := passhash.HashPassword("right-password")
	if err != nil {
		t.Fatal(err)
	}
	var derives atomic.Int32
	release := make(chan struct{})
	held := passhash.NewLimiter(n, func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		derives.Add(1)
		<-release
		return argon2.IDKey(pw, salt, time, memory, threads, keyLen)
	})
	d := NewDirectory([]User{{Username: "alice", PasswordHash: hash}}, NewThrottle(ThrottleOptions{}), held)
	var wg sync.WaitGroup
	var busy atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := d.Authenticate(context.Background(), "alice", "guess-"+strings.Repeat("x", i), "198.51.100.1")
			var te *ThrottledError
			if errors.As(err, &te) && te.Busy {
				busy.Add(1)
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); busy.Load() < n-1 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
	}
	got, inCheck := busy.Load(), derives.Load()
	close(release)
	wg.Wait()
	if got != n-1 || inCheck != 1 {
		t.Errorf("while one guess was being checked: %d busy refusals, %d password checks running; want %d and 1", got, inCheck, n-1)
	}
}

func TestOverlongUsernameIsRefusedEarly(t *testing.T) {
	th := NewThrottle(ThrottleOptions{})
	d := NewDirectory(nil, th, passhash.NewLimiter(0, nil))
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
