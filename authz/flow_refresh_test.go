package authz

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/storage"
)

// withRetryWindow turns the retry window on for every client of an
// outcomeEnv.
func withRetryWindow(w time.Duration) func(*Config) {
	return func(cfg *Config) {
		cfg.RetryKey = bytes.Repeat([]byte{9}, 32)
		for _, c := range cfg.Clients {
			c.Lifetimes.RefreshRetryWindow = w
		}
	}
}

// A refresh that loses the redemption to a concurrent one with the same
// token answers with the winner's pair: none errs, none gets another pair.
func TestRefreshRetryLoserGetsWinnersAnswer(t *testing.T) {
	e := newOutcomeEnv(t, identity.ThrottleOptions{}, withRetryWindow(30*time.Second))
	rt := e.signIn(t)
	var winner *httptest.ResponseRecorder
	// The other request runs to the end while this one waits at its
	// redemption (the hook runs once, so the other redeems for real).
	e.store.beforeRedeem = func(storage.Kind, string) { winner = e.post(refreshForm(rt), "mobile") }
	loser := e.post(refreshForm(rt), "mobile")
	if winner == nil || winner.Code != http.StatusOK || loser.Code != http.StatusOK {
		t.Fatalf("winner %v, loser %d %s; want both 200", winner, loser.Code, loser.Body)
	}
	w, l := decodeToken(t, winner), decodeToken(t, loser)
	if w.AccessToken == "" || w.AccessToken != l.AccessToken || w.RefreshToken != l.RefreshToken {
		t.Errorf("the loser answered another pair:\n winner %+v\n loser  %+v", w, l)
	}
	if n := e.events(t, "refresh_token_reuse"); n != 0 {
		t.Errorf("%d reuse events, want none", n)
	}
	if n := e.events(t, "refresh_retried"); n != 1 {
		t.Errorf("%d refresh_retried events, want 1", n)
	}
}

// Not knowing whether a retry stands is no proof of reuse: a store that
// fails the lookup answers 503, and the grant survives.
func TestRefreshRetryLookupFailureIsNoReuse(t *testing.T) {
	e := newOutcomeEnv(t, identity.ThrottleOptions{}, withRetryWindow(30*time.Second))
	rt := e.signIn(t)
	if rec := e.post(refreshForm(rt), "mobile"); rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	e.store.retryOfErr = storage.ErrUnavailable
	rec := e.post(refreshForm(rt), "mobile")
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("retry while the store fails: %d %s, want 503", rec.Code, rec.Body)
	}
	e.store.retryOfErr = nil
	rec = e.post(refreshForm(rt), "mobile")
	if rec.Code != http.StatusOK {
		t.Errorf("retry once the store answers: %d %s, want the kept answer", rec.Code, rec.Body)
	}
	if n := e.events(t, "refresh_token_reuse"); n != 0 {
		t.Errorf("%d reuse events, want none", n)
	}
}

// The kept answer is bound to its token: sealed under another key (another
// system secret) it stands for nothing, and the presentation is reuse.
func TestRefreshRetrySealedToSecret(t *testing.T) {
	e := newOutcomeEnv(t, identity.ThrottleOptions{}, withRetryWindow(30*time.Second))
	rt := e.signIn(t)
	if rec := e.post(refreshForm(rt), "mobile"); rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	other, err := newRetrySealer(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.fs.retry = other
	rec := e.post(refreshForm(rt), "mobile")
	if rec.Code != http.StatusBadRequest {
		t.Errorf("retry whose answer does not open: %d %s, want 400 invalid_grant", rec.Code, rec.Body)
	}
	if n := e.events(t, "refresh_token_reuse"); n != 1 {
		t.Errorf("%d reuse events, want 1", n)
	}
}

// The account page says in words what a retry was.
func TestRefreshRetryEventInWords(t *testing.T) {
	e := newOutcomeEnv(t, identity.ThrottleOptions{}, withRetryWindow(30*time.Second))
	got := e.srv.describeEvent(context.Background(), storage.Event{Type: "refresh_retried", ClientID: "mobile"})
	if want := "mobile repeated a refresh it had lost the answer to and was given the same tokens again"; got != want {
		t.Errorf("describeEvent = %q, want %q", got, want)
	}
}
