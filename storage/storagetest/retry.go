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

// redeemWithRetry redeems the refresh token rt for a successor pair and keeps
// a retry naming the successor refresh token.
func redeemWithRetry(t *testing.T, s storage.Store, rt storage.Token, next string, until time.Time, sealed []byte) (storage.Token, storage.Token) {
	t.Helper()
	at := tok(storage.AccessToken, "at-"+next, rt.RequestID, rt.ClientID, rt.Subject)
	rt2 := tok(storage.RefreshToken, next, rt.RequestID, rt.ClientID, rt.Subject)
	r := &storage.Retry{Successor: next, Until: until, Sealed: sealed}
	if _, err := s.Redeem(t.Context(), rt.Kind, rt.Signature, []storage.Token{at, rt2}, r); err != nil {
		t.Fatalf("Redeem with retry: %v", err)
	}
	return at, rt2
}

func checkRetry(t *testing.T, s storage.Store, sig string, want storage.Retry) {
	t.Helper()
	got, err := s.RetryOf(t.Context(), storage.RefreshToken, sig)
	if err != nil {
		t.Fatalf("RetryOf(%s): %v", sig, err)
	}
	if got.Successor != want.Successor || !bytes.Equal(got.Sealed, want.Sealed) {
		t.Errorf("RetryOf(%s) = successor %q sealed %q, want %q %q", sig, got.Successor, got.Sealed, want.Successor, want.Sealed)
	}
	checkTime(t, "Until", got.Until, want.Until)
}

func checkNoRetry(t *testing.T, s storage.Store, sig string) {
	t.Helper()
	_, err := s.RetryOf(t.Context(), storage.RefreshToken, sig)
	wantErr(t, "RetryOf("+sig+")", err, storage.ErrNotFound)
}

func testRetryRoundTrip(t *testing.T, s storage.Store) {
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	mustCreate(t, s, rt)
	until := base().Add(30 * time.Second)
	sealed := []byte("sealed\x00\xffanswer")
	redeemWithRetry(t, s, rt, "rt-2", until, sealed)
	checkRetry(t, s, "rt", storage.Retry{Successor: "rt-2", Until: until, Sealed: sealed})
	// The successor is active and was never redeemed: no retry of its own.
	checkNoRetry(t, s, "rt-2")
	checkNoRetry(t, s, "missing")
	// Kinds stay apart.
	if _, err := s.RetryOf(t.Context(), storage.AuthorizationCode, "rt"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("RetryOf(code rt) = %v, want ErrNotFound", err)
	}
}

func testRetryWithoutOne(t *testing.T, s storage.Store) {
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	mustCreate(t, s, rt)
	if _, err := s.Redeem(t.Context(), rt.Kind, rt.Signature,
		[]storage.Token{tok(storage.RefreshToken, "rt-2", "req-1", "client-1", "alice")}, nil); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	checkNoRetry(t, s, "rt")
	// A retry without a successor is a caller's bug, refused before it lands.
	rt3 := tok(storage.RefreshToken, "rt-3", "req-3", "client-1", "alice")
	mustCreate(t, s, rt3)
	if _, err := s.Redeem(t.Context(), rt3.Kind, rt3.Signature, nil, &storage.Retry{Until: base().Add(time.Minute)}); err == nil {
		t.Error("Redeem with a retry without successor succeeded")
	}
	checkGet(t, s, rt3)
}

// The retry is void as soon as the successor has been used (the client has
// its answer), is gone, or has expired.
func testRetryVoidWithSuccessor(t *testing.T, s storage.Store) {
	until := base().Add(30 * time.Second)
	for _, tc := range []struct {
		name string
		end  func(t *testing.T, rt2 storage.Token)
	}{
		{"redeemed", func(t *testing.T, rt2 storage.Token) {
			if _, err := s.Redeem(t.Context(), rt2.Kind, rt2.Signature, nil, nil); err != nil {
				t.Fatalf("Redeem successor: %v", err)
			}
		}},
		{"deleted", func(t *testing.T, rt2 storage.Token) {
			if err := s.DeleteToken(t.Context(), rt2.Kind, rt2.Signature); err != nil {
				t.Fatalf("DeleteToken successor: %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := tok(storage.RefreshToken, "rt-"+tc.name, "req-"+tc.name, "client-1", "alice")
			mustCreate(t, s, rt)
			_, rt2 := redeemWithRetry(t, s, rt, "next-"+tc.name, until, []byte("x"))
			checkRetry(t, s, rt.Signature, storage.Retry{Successor: rt2.Signature, Until: until, Sealed: []byte("x")})
			tc.end(t, rt2)
			checkNoRetry(t, s, rt.Signature)
		})
	}
	t.Run("expired", func(t *testing.T) {
		rt := tok(storage.RefreshToken, "rt-exp", "req-exp", "client-1", "alice")
		mustCreate(t, s, rt)
		rt2 := expired(tok(storage.RefreshToken, "next-exp", "req-exp", "client-1", "alice"))
		r := &storage.Retry{Successor: rt2.Signature, Until: until, Sealed: []byte("x")}
		if _, err := s.Redeem(t.Context(), rt.Kind, rt.Signature, []storage.Token{rt2}, r); err != nil {
			t.Fatalf("Redeem: %v", err)
		}
		checkNoRetry(t, s, rt.Signature)
	})
}

// A retry dies with its grant and with its own token.
func testRetryDiesWithGrant(t *testing.T, s storage.Store) {
	until := base().Add(30 * time.Second)
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	mustCreate(t, s, rt)
	redeemWithRetry(t, s, rt, "rt-2", until, []byte("x"))
	if _, err := s.RevokeGrant(t.Context(), "req-1"); err != nil {
		t.Fatalf("RevokeGrant: %v", err)
	}
	checkNoRetry(t, s, "rt")

	other := tok(storage.RefreshToken, "other", "req-2", "client-1", "alice")
	mustCreate(t, s, other)
	redeemWithRetry(t, s, other, "other-2", until, []byte("y"))
	if err := s.DeleteToken(t.Context(), other.Kind, other.Signature); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	checkNoRetry(t, s, "other")
	// A new token under the old key starts without the old retry.
	mustCreate(t, s, other)
	if _, err := s.Redeem(t.Context(), other.Kind, other.Signature, nil, nil); err != nil {
		t.Fatalf("Redeem recreated token: %v", err)
	}
	checkNoRetry(t, s, "other")
}

// The window ends the retry, whether or not the sweeper came by; the sweeper
// erases it and counts it.
func testRetryWindowEnds(t *testing.T, s storage.Store) {
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	mustCreate(t, s, rt)
	redeemWithRetry(t, s, rt, "rt-2", base().Add(-time.Second), []byte("x"))
	checkNoRetry(t, s, "rt")

	later := tok(storage.RefreshToken, "later", "req-2", "client-1", "alice")
	mustCreate(t, s, later)
	until := base().Add(time.Minute)
	_, later2 := redeemWithRetry(t, s, later, "later-2", until, []byte("y"))
	// Tokens live an hour: only retries lapse two minutes from now.
	n, err := s.DeleteExpired(t.Context(), base().Add(2*time.Minute))
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if n < 1 || n > 2 {
		t.Errorf("DeleteExpired removed %d records, want the lapsed retries (1 or 2)", n)
	}
	checkNoRetry(t, s, "later")
	// The token as issued, not rebuilt: base() may have crossed a second.
	checkGet(t, s, later2)
}

// Of concurrent redemptions each offering its own retry, the winner's is the
// one every loser reads after its ErrInactive.
func testRetryConcurrent(t *testing.T, s storage.Store) {
	const n = 20
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	mustCreate(t, s, rt)
	until := base().Add(30 * time.Second)
	errs := make([]error, n)
	got := make([]storage.Retry, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			next := fmt.Sprintf("rt-%d", i)
			issue := []storage.Token{tok(storage.RefreshToken, next, "req-1", "client-1", "alice")}
			r := &storage.Retry{Successor: next, Until: until, Sealed: []byte("answer " + next)}
			<-start
			_, errs[i] = s.Redeem(t.Context(), rt.Kind, rt.Signature, issue, r)
			if errors.Is(errs[i], storage.ErrInactive) {
				got[i], errs[i] = s.RetryOf(t.Context(), rt.Kind, rt.Signature)
			}
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err != nil {
			t.Fatalf("redemption %d: %v", i, err)
		}
		if got[i].Successor == "" {
			if winner >= 0 {
				t.Fatalf("redemptions %d and %d both won", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no redemption won")
	}
	want := fmt.Sprintf("rt-%d", winner)
	for i, r := range got {
		if i != winner && (r.Successor != want || string(r.Sealed) != "answer "+want) {
			t.Errorf("loser %d read retry %q %q, want the winner's %q", i, r.Successor, r.Sealed, want)
		}
	}
}
