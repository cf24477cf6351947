// Package storagetest is the conformance suite for storage.Store: every
// backend runs RunTests, so the server can rely on one set of semantics no
// matter where its records live. The suite only speaks through the interface;
// what it cannot observe there (file layout, locking, sweeping) the backend
// tests itself.
//
// Semantics the interface leaves implicit and this suite pins down:
//   - An expired record is absent: GetToken, Redeem, DeleteToken and every
//     listing treat it as not found, and CreateToken may reuse its key, so
//     results never depend on when the last sweep ran.
//   - ExpiresAt equal to now is not yet expired ("expired before now").
//   - Returned times are in UTC and keep nanoseconds.
//   - Redeem returns the record as stored afterwards (Active false), both on
//     success and with ErrInactive.
//   - Empty subjects are never indexed: SubjectTokens("") is empty.
//   - A registered client needs an ID (CreateClient without one fails);
//     its owner may be empty, a key like any other.
//   - DeleteClient's count, like RevokeGrant's, includes the client's
//     expired tokens that no sweep had removed yet.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// RunTests runs the suite. newStore must return an empty store; RunTests
// closes it when the sub-test ends, so newStore should register only the
// clean-up of whatever lies underneath (files, databases).
func RunTests(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Store)
	}{
		{"TokenRoundTrip", testTokenRoundTrip},
		{"TokenKindsAreIndependent", testTokenKindsAreIndependent},
		{"CreateTokenDuplicate", testCreateTokenDuplicate},
		{"GetTokenMissing", testGetTokenMissing},
		{"GetTokenExpired", testGetTokenExpired},
		{"CreateTokenOverExpired", testCreateTokenOverExpired},
		{"DeleteToken", testDeleteToken},
		{"Redeem", testRedeem},
		{"RedeemTwice", testRedeemTwice},
		{"RedeemMissingOrExpired", testRedeemMissingOrExpired},
		{"RedeemCollisionChangesNothing", testRedeemCollision},
		{"RedeemConcurrent", testRedeemConcurrent},
		{"RetryRoundTrip", testRetryRoundTrip},
		{"RetryWithoutOne", testRetryWithoutOne},
		{"RetryVoidWithSuccessor", testRetryVoidWithSuccessor},
		{"RetryDiesWithGrant", testRetryDiesWithGrant},
		{"RetryWindowEnds", testRetryWindowEnds},
		{"RetryConcurrent", testRetryConcurrent},
		{"CreateTokenConcurrent", testCreateTokenConcurrent},
		{"RevokeGrant", testRevokeGrant},
		{"RevokeGrantRecordsEvent", testRevokeGrantRecordsEvent},
		{"AppendRevocation", testAppendRevocation},
		{"RevocationsSwept", testRevocationsSwept},
		{"RevocationsConcurrent", testRevocationsConcurrent},
		{"GrantTokens", testGrantTokens},
		{"SubjectTokens", testSubjectTokens},
		{"ClientTokens", testClientTokens},
		{"DeleteExpired", testDeleteExpired},
		{"UseOnce", testUseOnce},
		{"UseOnceExpired", testUseOnceExpired},
		{"Keys", testKeys},
		{"UpdateKeysError", testUpdateKeysError},
		{"UpdateKeysConcurrent", testUpdateKeysConcurrent},
		{"Events", testEvents},
		{"EventIDs", testEventIDs},
		{"Consents", testConsents},
		{"EventsCapped", testEventsCapped},
		{"LoginFailures", testLoginFailures},
		{"LoginFailuresReset", testLoginFailuresReset},
		{"LoginFailuresExpired", testLoginFailuresExpired},
		{"LoginFailuresDeleteExpired", testLoginFailuresDeleteExpired},
		{"LoginFailuresClear", testLoginFailuresClear},
		{"LoginFailuresKeysIndependent", testLoginFailuresKeysIndependent},
		{"LoginFailuresConcurrent", testLoginFailuresConcurrent},
		{"RevokeSession", testRevokeSession},
		{"RevokeSessionExpired", testRevokeSessionExpired},
		{"RevokeSessionDeleteExpired", testRevokeSessionDeleteExpired},
		{"RevokeSessionConcurrent", testRevokeSessionConcurrent},
		{"EndSubjectSessions", testEndSubjectSessions},
		{"EndSubjectSessionsExpired", testEndSubjectSessionsExpired},
		{"EndSubjectSessionsDeleteExpired", testEndSubjectSessionsDeleteExpired},
		{"EndSubjectSessionsConcurrent", testEndSubjectSessionsConcurrent},
		{"Blobs", testBlobs},
		{"Leases", testLeases},
		{"LeaseExpires", testLeaseExpires},
		{"LeaseConcurrent", testLeaseConcurrent},
		{"Clients", testClients},
		{"UpdateClient", testUpdateClient},
		{"UpdateClientConcurrent", testUpdateClientConcurrent},
		{"ListClients", testListClients},
		{"AllClients", testAllClients},
		{"DeleteClient", testDeleteClient},
		{"DeleteClientRetry", testDeleteClientRetry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.run(t, s)
		})
	}
}

var allKinds = []storage.Kind{storage.AccessToken, storage.RefreshToken, storage.AuthorizationCode, storage.PKCE}

// base is a time with nanoseconds in a zone other than UTC, so that a backend
// which drops either is caught by the round trip.
func base() time.Time {
	zone := time.FixedZone("UTC+3", 3*60*60)
	return time.Now().Truncate(time.Second).Add(123456789 * time.Nanosecond).In(zone)
}

// tok returns an unexpired, active token with every field set.
func tok(kind storage.Kind, sig, requestID, clientID, subject string) storage.Token {
	now := base()
	return storage.Token{
		Kind:      kind,
		Signature: sig,
		RequestID: requestID,
		ClientID:  clientID,
		Subject:   subject,
		CreatedAt: now.Add(-time.Minute),
		ExpiresAt: now.Add(time.Hour),
		Active:    true,
		Data:      []byte(`{"request":"` + sig + `","bin":"` + "\x00\xff" + `"}`),
	}
}

func expired(t storage.Token) storage.Token {
	t.ExpiresAt = time.Now().Add(-time.Hour)
	return t
}

func mustCreate(t *testing.T, s storage.Store, toks ...storage.Token) {
	t.Helper()
	for _, tk := range toks {
		if err := s.CreateToken(t.Context(), tk); err != nil {
			t.Fatalf("CreateToken(%s %q): %v", tk.Kind, tk.Signature, err)
		}
	}
}

func checkTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", field, got, want)
	}
	if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", field, got.Location())
	}
}

// checkToken compares every field; time equality by instant.
func checkToken(t *testing.T, got, want storage.Token) {
	t.Helper()
	if got.Kind != want.Kind || got.Signature != want.Signature {
		t.Errorf("key = (%s, %q), want (%s, %q)", got.Kind, got.Signature, want.Kind, want.Signature)
	}
	if got.RequestID != want.RequestID {
		t.Errorf("RequestID = %q, want %q", got.RequestID, want.RequestID)
	}
	if got.ClientID != want.ClientID {
		t.Errorf("ClientID = %q, want %q", got.ClientID, want.ClientID)
	}
	if got.Subject != want.Subject {
		t.Errorf("Subject = %q, want %q", got.Subject, want.Subject)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	if got.Active != want.Active {
		t.Errorf("Active = %v, want %v", got.Active, want.Active)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("Data = %q, want %q", got.Data, want.Data)
	}
}

func wantErr(t *testing.T, op string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", op, err, want)
	}
}

func checkGet(t *testing.T, s storage.Store, want storage.Token) {
	t.Helper()
	got, err := s.GetToken(t.Context(), want.Kind, want.Signature)
	if err != nil {
		t.Fatalf("GetToken(%s %q): %v", want.Kind, want.Signature, err)
	}
	checkToken(t, got, want)
}

func checkMissing(t *testing.T, s storage.Store, kind storage.Kind, sig string) {
	t.Helper()
	_, err := s.GetToken(t.Context(), kind, sig)
	wantErr(t, fmt.Sprintf("GetToken(%s %q)", kind, sig), err, storage.ErrNotFound)
}

// keys renders a listing as sorted "kind/sig" strings for comparison.
func keys(toks []storage.Token) []string {
	out := make([]string, 0, len(toks))
	for _, tk := range toks {
		out = append(out, string(tk.Kind)+"/"+tk.Signature)
	}
	sort.Strings(out)
	return out
}

func checkList(t *testing.T, what string, got []storage.Token, err error, want ...storage.Token) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if g, w := keys(got), keys(want); !slices.Equal(g, w) {
		t.Fatalf("%s = %v, want %v", what, g, w)
	}
	byKey := map[string]storage.Token{}
	for _, w := range want {
		byKey[string(w.Kind)+"/"+w.Signature] = w
	}
	for _, g := range got {
		checkToken(t, g, byKey[string(g.Kind)+"/"+g.Signature])
	}
}

func testTokenRoundTrip(t *testing.T, s storage.Store) {
	for _, kind := range allKinds {
		want := tok(kind, "sig-"+string(kind), "req-1", "client-1", "alice")
		mustCreate(t, s, want)
		checkGet(t, s, want)
	}
	// Active false round-trips too, and reads as redeemed.
	used := tok(storage.RefreshToken, "used", "req-1", "client-1", "alice")
	used.Active = false
	mustCreate(t, s, used)
	got, err := s.GetToken(t.Context(), used.Kind, used.Signature)
	wantErr(t, "GetToken(inactive)", err, storage.ErrInactive)
	checkToken(t, got, used)
	// Empty subject and empty data are legal (client credentials).
	cc := tok(storage.AccessToken, "cc", "req-cc", "client-1", "")
	cc.Data = nil
	mustCreate(t, s, cc)
	checkGet(t, s, cc)
}

func testTokenKindsAreIndependent(t *testing.T, s storage.Store) {
	var toks []storage.Token
	for i, kind := range allKinds {
		tk := tok(kind, "same-signature", fmt.Sprintf("req-%d", i), "client-1", "alice")
		toks = append(toks, tk)
		mustCreate(t, s, tk)
	}
	for _, tk := range toks {
		checkGet(t, s, tk)
	}
	if err := s.DeleteToken(t.Context(), storage.RefreshToken, "same-signature"); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	checkMissing(t, s, storage.RefreshToken, "same-signature")
	for _, tk := range toks {
		if tk.Kind != storage.RefreshToken {
			checkGet(t, s, tk)
		}
	}
}

func testCreateTokenDuplicate(t *testing.T, s storage.Store) {
	first := tok(storage.AccessToken, "dup", "req-1", "client-1", "alice")
	mustCreate(t, s, first)
	second := tok(storage.AccessToken, "dup", "req-2", "client-2", "bob")
	second.Data = []byte("other")
	err := s.CreateToken(t.Context(), second)
	wantErr(t, "second CreateToken", err, storage.ErrAlreadyExists)
	checkGet(t, s, first)
	// The loser must not have been indexed either.
	got, err := s.SubjectTokens(t.Context(), "bob")
	checkList(t, "SubjectTokens(bob)", got, err)
	got, err = s.GrantTokens(t.Context(), "req-2")
	checkList(t, "GrantTokens(req-2)", got, err)
}

func testGetTokenMissing(t *testing.T, s storage.Store) {
	checkMissing(t, s, storage.AccessToken, "nope")
	mustCreate(t, s, tok(storage.AccessToken, "present", "req-1", "client-1", "alice"))
	checkMissing(t, s, storage.RefreshToken, "present")
}

func testGetTokenExpired(t *testing.T, s storage.Store) {
	for _, kind := range allKinds {
		mustCreate(t, s, expired(tok(kind, "old", "req-1", "client-1", "alice")))
		checkMissing(t, s, kind, "old")
	}
	// A redeemed token that expired is just as gone.
	code := expired(tok(storage.AuthorizationCode, "old-used", "req-1", "client-1", "alice"))
	code.Active = false
	mustCreate(t, s, code)
	checkMissing(t, s, storage.AuthorizationCode, "old-used")
}

func testCreateTokenOverExpired(t *testing.T, s storage.Store) {
	old := expired(tok(storage.AccessToken, "reused", "req-old", "client-old", "old-subject"))
	mustCreate(t, s, old)
	fresh := tok(storage.AccessToken, "reused", "req-new", "client-new", "new-subject")
	mustCreate(t, s, fresh)
	checkGet(t, s, fresh)
	// The old record's index entries must not point at the new one.
	for _, l := range []struct {
		name string
		fn   func() ([]storage.Token, error)
	}{
		{"GrantTokens(req-old)", func() ([]storage.Token, error) { return s.GrantTokens(t.Context(), "req-old") }},
		{"SubjectTokens(old-subject)", func() ([]storage.Token, error) { return s.SubjectTokens(t.Context(), "old-subject") }},
		{"ClientTokens(client-old)", func() ([]storage.Token, error) { return s.ClientTokens(t.Context(), "client-old") }},
	} {
		got, err := l.fn()
		checkList(t, l.name, got, err)
	}
	got, err := s.SubjectTokens(t.Context(), "new-subject")
	checkList(t, "SubjectTokens(new-subject)", got, err, fresh)
}

func testDeleteToken(t *testing.T, s storage.Store) {
	a := tok(storage.AccessToken, "a", "req-1", "client-1", "alice")
	b := tok(storage.AccessToken, "b", "req-1", "client-1", "alice")
	mustCreate(t, s, a, b)
	if err := s.DeleteToken(t.Context(), a.Kind, a.Signature); err != nil {
		t.Fatalf("DeleteToken: %v", err)
	}
	checkMissing(t, s, a.Kind, a.Signature)
	checkGet(t, s, b)
	err := s.DeleteToken(t.Context(), a.Kind, a.Signature)
	wantErr(t, "DeleteToken again", err, storage.ErrNotFound)
	err = s.DeleteToken(t.Context(), storage.RefreshToken, "never")
	wantErr(t, "DeleteToken missing", err, storage.ErrNotFound)

	got, err := s.GrantTokens(t.Context(), "req-1")
	checkList(t, "GrantTokens", got, err, b)
	got, err = s.SubjectTokens(t.Context(), "alice")
	checkList(t, "SubjectTokens", got, err, b)
	got, err = s.ClientTokens(t.Context(), "client-1")
	checkList(t, "ClientTokens", got, err, b)

	// Recreating the key under other owners must not resurrect the old
	// index entries.
	a2 := tok(a.Kind, a.Signature, "req-2", "client-2", "bob")
	mustCreate(t, s, a2)
	got, err = s.SubjectTokens(t.Context(), "alice")
	checkList(t, "SubjectTokens after recreate", got, err, b)
	got, err = s.GrantTokens(t.Context(), "req-1")
	checkList(t, "GrantTokens after recreate", got, err, b)
	got, err = s.ClientTokens(t.Context(), "client-1")
	checkList(t, "ClientTokens after recreate", got, err, b)
}

func testRedeem(t *testing.T, s storage.Store) {
	code := tok(storage.AuthorizationCode, "code", "req-1", "client-1", "alice")
	mustCreate(t, s, code)
	issue := []storage.Token{
		tok(storage.AccessToken, "at", "req-1", "client-1", "alice"),
		tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice"),
	}
	got, err := s.Redeem(t.Context(), code.Kind, code.Signature, issue, nil)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	used := code
	used.Active = false
	checkToken(t, got, used)
	for _, tk := range issue {
		checkGet(t, s, tk)
	}

	got, err = s.GetToken(t.Context(), code.Kind, code.Signature)
	wantErr(t, "GetToken(redeemed)", err, storage.ErrInactive)
	checkToken(t, got, used)

	// The redeemed code stays listed with its grant.
	list, err := s.GrantTokens(t.Context(), "req-1")
	checkList(t, "GrantTokens", list, err, used, issue[0], issue[1])
	list, err = s.SubjectTokens(t.Context(), "alice")
	checkList(t, "SubjectTokens", list, err, used, issue[0], issue[1])

	// Redeeming with nothing to issue is allowed.
	rt := issue[1]
	if _, err := s.Redeem(t.Context(), rt.Kind, rt.Signature, nil, nil); err != nil {
		t.Fatalf("Redeem(no issue): %v", err)
	}
	_, err = s.GetToken(t.Context(), rt.Kind, rt.Signature)
	wantErr(t, "GetToken(redeemed refresh)", err, storage.ErrInactive)
}

func testRedeemTwice(t *testing.T, s storage.Store) {
	rt := tok(storage.RefreshToken, "rt", "req-1", "client-1", "alice")
	mustCreate(t, s, rt)
	if _, err := s.Redeem(t.Context(), rt.Kind, rt.Signature,
		[]storage.Token{tok(storage.RefreshToken, "rt-2", "req-1", "client-1", "alice")}, nil); err != nil {
		t.Fatalf("first Redeem: %v", err)
	}
	replayed := tok(storage.RefreshToken, "rt-replay", "req-1", "client-1", "alice")
	got, err := s.Redeem(t.Context(), rt.Kind, rt.Signature, []storage.Token{replayed}, nil)
	wantErr(t, "second Redeem", err, storage.ErrInactive)
	used := rt
	used.Active = false
	checkToken(t, got, used)
	checkMissing(t, s, replayed.Kind, replayed.Signature)
}

func testRedeemMissingOrExpired(t *testing.T, s storage.Store) {
	issued := tok(storage.AccessToken, "at", "req-1", "client-1", "alice")
	_, err := s.Redeem(t.Context(), storage.AuthorizationCode, "missing", []storage.Token{issued}, nil)
	wantErr(t, "Redeem(missing)", err, storage.ErrNotFound)

	old := expired(tok(storage.AuthorizationCode, "old", "req-1", "client-1", "alice"))
	mustCreate(t, s, old)
	_, err = s.Redeem(t.Context(), old.Kind, old.Signature, []storage.Token{issued}, nil)
	wantErr(t, "Redeem(expired)", err, storage.ErrNotFound)
	checkMissing(t, s, issued.Kind, issued.Signature)

	// Same signature, other kind: still missing.
	code := tok(storage.AuthorizationCode, "code", "req-1", "client-1", "alice")
	mustCreate(t, s, code)
	_, err = s.Redeem(t.Context(), storage.RefreshToken, code.Signature, []storage.Token{issued}, nil)
	wantErr(t, "Redeem(wrong kind)", err, storage.ErrNotFound)
	checkGet(t, s, code)
	checkMissing(t, s, issued.Kind, issued.Signature)
}

func testRedeemCollision(t *testing.T, s storage.Store) {
	code := tok(storage.AuthorizationCode, "code", "req-1", "client-1", "alice")
	taken := tok(storage.AccessToken, "taken", "req-other", "client-2", "bob")
	mustCreate(t, s, code, taken)

	fresh := tok(storage.RefreshToken, "fresh", "req-1", "client-1", "alice")
	clash := tok(storage.AccessToken, "taken", "req-1", "client-1", "alice")
	_, err := s.Redeem(t.Context(), code.Kind, code.Signature, []storage.Token{fresh, clash}, nil)
	wantErr(t, "Redeem(colliding issue)", err, storage.ErrAlreadyExists)
	checkGet(t, s, code) // still active
	checkGet(t, s, taken)
	checkMissing(t, s, fresh.Kind, fresh.Signature)

	// Two issued tokens with the same key collide with each other.
	_, err = s.Redeem(t.Context(), code.Kind, code.Signature, []storage.Token{fresh, fresh}, nil)
	wantErr(t, "Redeem(duplicate issue)", err, storage.ErrAlreadyExists)
	checkGet(t, s, code)
	checkMissing(t, s, fresh.Kind, fresh.Signature)

	// Nothing leaked into the indexes.
	list, err := s.GrantTokens(t.Context(), "req-1")
	checkList(t, "GrantTokens", list, err, code)

	// The code is still redeemable.
	if _, err := s.Redeem(t.Context(), code.Kind, code.Signature, []storage.Token{fresh}, nil); err != nil {
		t.Fatalf("Redeem after collision: %v", err)
	}
	checkGet(t, s, fresh)
}

func testRedeemConcurrent(t *testing.T, s storage.Store) {
	const n = 50
	code := tok(storage.AuthorizationCode, "code", "req-1", "client-1", "alice")
	mustCreate(t, s, code)

	issued := make([]storage.Token, n)
	errs := make([]error, n)
	recs := make([]storage.Token, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		issued[i] = tok(storage.AccessToken, fmt.Sprintf("at-%d", i), "req-1", "client-1", "alice")
		wg.Go(func() {
			<-start
			recs[i], errs[i] = s.Redeem(t.Context(), code.Kind, code.Signature, []storage.Token{issued[i]}, nil)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("redemptions %d and %d both succeeded", winner, i)
			}
			winner = i
		case errors.Is(err, storage.ErrInactive):
			if recs[i].Signature != code.Signature || recs[i].RequestID != code.RequestID || recs[i].Active {
				t.Errorf("redemption %d: ErrInactive with record %+v, want the code's record", i, recs[i])
			}
		default:
			t.Errorf("redemption %d: %v, want nil or ErrInactive", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no redemption succeeded")
	}
	for i, tk := range issued {
		if i == winner {
			checkGet(t, s, tk)
		} else {
			checkMissing(t, s, tk.Kind, tk.Signature)
		}
	}
}

func testCreateTokenConcurrent(t *testing.T, s storage.Store) {
	const writers, total, subjects = 32, 2000, 7
	all := make([]storage.Token, total)
	for i := range all {
		all[i] = tok(allKinds[i%len(allKinds)], fmt.Sprintf("sig-%04d", i), fmt.Sprintf("req-%d", i%100),
			"client-1", fmt.Sprintf("subject-%d", i%subjects))
	}
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < total; i += writers {
				if err := s.CreateToken(t.Context(), all[i]); err != nil {
					errs <- fmt.Errorf("CreateToken(%s): %w", all[i].Signature, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, tk := range all {
		checkGet(t, s, tk)
	}
	n := 0
	for i := range subjects {
		got, err := s.SubjectTokens(t.Context(), fmt.Sprintf("subject-%d", i))
		if err != nil {
			t.Fatalf("SubjectTokens: %v", err)
		}
		n += len(got)
	}
	if n != total {
		t.Fatalf("SubjectTokens over all subjects listed %d tokens, want %d", n, total)
	}
	got, err := s.ClientTokens(t.Context(), "client-1")
	if err != nil || len(got) != total {
		t.Fatalf("ClientTokens = %d tokens, %v; want %d", len(got), err, total)
	}
}

func testRevokeGrant(t *testing.T, s storage.Store) {
	code := tok(storage.AuthorizationCode, "code", "grant-a", "client-1", "alice")
	pkce := tok(storage.PKCE, "code", "grant-a", "client-1", "alice")
	mustCreate(t, s, code, pkce)
	at := tok(storage.AccessToken, "at-a", "grant-a", "client-1", "alice")
	rt := tok(storage.RefreshToken, "rt-a", "grant-a", "client-1", "alice")
	if _, err := s.Redeem(t.Context(), code.Kind, code.Signature, []storage.Token{at, rt}, nil); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	// Same subject and client, another grant; and a grant whose ID has
	// grant-a as a prefix.
	other := tok(storage.AccessToken, "at-b", "grant-b", "client-1", "alice")
	prefixed := tok(storage.AccessToken, "at-aa", "grant-aa", "client-1", "alice")
	mustCreate(t, s, other, prefixed)

	n, err := s.RevokeGrant(t.Context(), "grant-a")
	if err != nil {
		t.Fatalf("RevokeGrant: %v", err)
	}
	if n != 4 {
		t.Errorf("RevokeGrant removed %d, want 4", n)
	}
	for _, tk := range []storage.Token{code, pkce, at, rt} {
		checkMissing(t, s, tk.Kind, tk.Signature)
	}
	checkGet(t, s, other)
	checkGet(t, s, prefixed)

	list, err := s.GrantTokens(t.Context(), "grant-a")
	checkList(t, "GrantTokens(grant-a)", list, err)
	list, err = s.SubjectTokens(t.Context(), "alice")
	checkList(t, "SubjectTokens(alice)", list, err, other, prefixed)
	list, err = s.ClientTokens(t.Context(), "client-1")
	checkList(t, "ClientTokens(client-1)", list, err, other, prefixed)

	n, err = s.RevokeGrant(t.Context(), "grant-a")
	if err != nil || n != 0 {
		t.Errorf("second RevokeGrant = %d, %v; want 0, nil", n, err)
	}
	n, err = s.RevokeGrant(t.Context(), "never-existed")
	if err != nil || n != 0 {
		t.Errorf("RevokeGrant(unknown) = %d, %v; want 0, nil", n, err)
	}

	// Recreating a revoked key elsewhere must not show up under the grant.
	mustCreate(t, s, tok(at.Kind, at.Signature, "grant-c", "client-2", "bob"))
	list, err = s.GrantTokens(t.Context(), "grant-a")
	checkList(t, "GrantTokens(grant-a) after recreate", list, err)
}

func testGrantTokens(t *testing.T, s storage.Store) {
	code := tok(storage.AuthorizationCode, "code", "grant-a", "client-1", "alice")
	mustCreate(t, s, code)
	at := tok(storage.AccessToken, "at", "grant-a", "client-1", "alice")
	if _, err := s.Redeem(t.Context(), code.Kind, code.Signature, []storage.Token{at}, nil); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	used := code
	used.Active = false
	cc := tok(storage.AccessToken, "cc", "grant-a", "client-1", "") // no subject, still in the grant
	mustCreate(t, s, cc,
		tok(storage.AccessToken, "other", "grant-b", "client-1", "alice"),
		expired(tok(storage.RefreshToken, "old", "grant-a", "client-1", "alice")))

	list, err := s.GrantTokens(t.Context(), "grant-a")
	checkList(t, "GrantTokens(grant-a)", list, err, used, at, cc)
	list, err = s.GrantTokens(t.Context(), "grant")
	checkList(t, "GrantTokens(grant)", list, err)
	list, err = s.GrantTokens(t.Context(), "unknown")
	checkList(t, "GrantTokens(unknown)", list, err)
}

func testSubjectTokens(t *testing.T, s storage.Store) {
	a1 := tok(storage.AccessToken, "a1", "req-1", "client-1", "alice")
	a2 := tok(storage.RefreshToken, "a2", "req-2", "client-2", "alice")
	mustCreate(t, s, a1, a2,
		expired(tok(storage.AccessToken, "a-old", "req-3", "client-1", "alice")),
		tok(storage.AccessToken, "a-long", "req-4", "client-1", "alice2"),
		tok(storage.AccessToken, "a-short", "req-5", "client-1", "alic"),
		tok(storage.AccessToken, "nul", "req-6", "client-1", "alice\x00x"),
		tok(storage.AccessToken, "b1", "req-7", "client-1", "bob"),
		tok(storage.AccessToken, "cc", "req-8", "client-1", ""))

	list, err := s.SubjectTokens(t.Context(), "alice")
	checkList(t, "SubjectTokens(alice)", list, err, a1, a2)
	list, err = s.SubjectTokens(t.Context(), "nobody")
	checkList(t, "SubjectTokens(nobody)", list, err)
	list, err = s.SubjectTokens(t.Context(), "")
	checkList(t, `SubjectTokens("")`, list, err)
}

func testClientTokens(t *testing.T, s storage.Store) {
	c1 := tok(storage.AccessToken, "c1", "req-1", "client-1", "alice")
	c2 := tok(storage.AccessToken, "c2", "req-2", "client-1", "") // client credentials
	c3 := tok(storage.RefreshToken, "c3", "req-3", "client-1", "bob")
	mustCreate(t, s, c1, c2, c3,
		expired(tok(storage.AccessToken, "c-old", "req-4", "client-1", "alice")),
		tok(storage.AccessToken, "c-long", "req-5", "client-10", "alice"),
		tok(storage.AccessToken, "other", "req-6", "client-2", "alice"))

	list, err := s.ClientTokens(t.Context(), "client-1")
	checkList(t, "ClientTokens(client-1)", list, err, c1, c2, c3)
	list, err = s.ClientTokens(t.Context(), "client-9")
	checkList(t, "ClientTokens(client-9)", list, err)
}

func testDeleteExpired(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now()
	var old []storage.Token
	for i, kind := range allKinds {
		tk := tok(kind, fmt.Sprintf("old-%d", i), "grant-old", "client-old", "subject-old")
		tk.ExpiresAt = now.Add(-time.Duration(i+1) * time.Minute)
		old = append(old, tk)
	}
	old[2].Active = false // redeemed ones expire too
	live := tok(storage.AccessToken, "live", "grant-live", "client-live", "subject-live")
	edge := tok(storage.AccessToken, "edge", "grant-live", "client-live", "subject-live")
	edge.ExpiresAt = now // expired *before* now only
	mustCreate(t, s, append(old, live, edge)...)
	if err := s.UseOnce(ctx, "jti", "old-jti", now.Add(-time.Second)); err != nil {
		t.Fatalf("UseOnce: %v", err)
	}
	if err := s.UseOnce(ctx, "jti", "live-jti", now.Add(time.Hour)); err != nil {
		t.Fatalf("UseOnce: %v", err)
	}

	n, err := s.DeleteExpired(ctx, now)
	if err != nil {
		t.Fatalf("DeleteExpired: %v", err)
	}
	if want := len(old) + 1; n != want {
		t.Errorf("DeleteExpired removed %d records, want %d", n, want)
	}
	n, err = s.DeleteExpired(ctx, now)
	if err != nil || n != 0 {
		t.Errorf("second DeleteExpired = %d, %v; want 0, nil", n, err)
	}
	checkGet(t, s, live)
	err = s.UseOnce(ctx, "jti", "live-jti", now.Add(time.Hour))
	wantErr(t, "UseOnce(live-jti) after sweep", err, storage.ErrAlreadyExists)

	// Index entries went with the records: recreating the keys under
	// other owners must not list them under the old ones.
	for _, tk := range old {
		fresh := tok(tk.Kind, tk.Signature, "grant-new", "client-new", "subject-new")
		mustCreate(t, s, fresh)
	}
	list, err := s.GrantTokens(ctx, "grant-old")
	checkList(t, "GrantTokens(grant-old)", list, err)
	list, err = s.SubjectTokens(ctx, "subject-old")
	checkList(t, "SubjectTokens(subject-old)", list, err)
	list, err = s.ClientTokens(ctx, "client-old")
	checkList(t, "ClientTokens(client-old)", list, err)

	// Sweeping at a later instant takes what has expired by then: the live
	// and edge tokens, the fresh ones and the live marker.
	n, err = s.DeleteExpired(ctx, now.Add(1000*time.Hour))
	if err != nil {
		t.Fatalf("DeleteExpired(later): %v", err)
	}
	if want := 2 + len(old) + 1; n != want {
		t.Errorf("DeleteExpired(later) removed %d records, want %d", n, want)
	}
	if err := s.UseOnce(ctx, "jti", "live-jti", now.Add(time.Hour)); err != nil {
		t.Errorf("UseOnce after its marker was swept: %v", err)
	}
}

func testUseOnce(t *testing.T, s storage.Store) {
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	if err := s.UseOnce(ctx, "jti", "id-1", exp); err != nil {
		t.Fatalf("UseOnce: %v", err)
	}
	wantErr(t, "UseOnce replay", s.UseOnce(ctx, "jti", "id-1", exp), storage.ErrAlreadyExists)
	// A replay must not extend or shorten anything either.
	wantErr(t, "UseOnce replay, other exp", s.UseOnce(ctx, "jti", "id-1", exp.Add(-59*time.Minute)), storage.ErrAlreadyExists)
	if n, err := s.DeleteExpired(ctx, exp.Add(-time.Minute)); err != nil || n != 0 {
		t.Fatalf("a replay moved the marker's expiry: DeleteExpired before it removed %d (%v)", n, err)
	}

	for _, c := range []struct{ ns, id string }{
		{"saml", "id-1"},   // other namespace
		{"jti", "id-2"},    // other id
		{"jt", "iid-1"},    // concatenations must not alias
		{"jti\x00", "d-1"}, // nor separators
		{"", "jtiid-1"},
	} {
		if err := s.UseOnce(ctx, c.ns, c.id, exp); err != nil {
			t.Errorf("UseOnce(%q, %q): %v", c.ns, c.id, err)
		}
	}
	wantErr(t, "UseOnce(saml) replay", s.UseOnce(ctx, "saml", "id-1", exp), storage.ErrAlreadyExists)
}

func testUseOnceExpired(t *testing.T, s storage.Store) {
	ctx := t.Context()
	past := time.Now().Add(-time.Second)
	if err := s.UseOnce(ctx, "jti", "id-1", past); err != nil {
		t.Fatalf("UseOnce: %v", err)
	}
	// Its marker has expired, so the ID is usable again; and now it holds.
	if err := s.UseOnce(ctx, "jti", "id-1", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("UseOnce after expiry: %v", err)
	}
	wantErr(t, "UseOnce replay", s.UseOnce(ctx, "jti", "id-1", time.Now().Add(time.Hour)), storage.ErrAlreadyExists)
	// Replacing the expired marker left a single live one to sweep.
	n, err := s.DeleteExpired(ctx, time.Now().Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Errorf("DeleteExpired = %d, %v; want 1, nil", n, err)
	}
}

// key builds the same key for the same arguments, whenever it is called.
func key(id string, active bool) storage.Key {
	now := time.Date(2030, 1, 2, 3, 4, 5, 987654321, time.FixedZone("UTC-7", -7*60*60))
	k := storage.Key{
		ID:        id,
		Algorithm: "RS256",
		CreatedAt: now.Add(-time.Hour),
		Active:    active,
		Public:    []byte(`{"kty":"RSA","kid":"` + id + `"}`),
		Private:   []byte("encrypted\x00" + id),
	}
	if !active {
		k.RetireAt = now.Add(24 * time.Hour)
	}
	return k
}

func checkKeys(t *testing.T, got []storage.Key, want ...storage.Key) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	byID := map[string]storage.Key{}
	for _, k := range got {
		byID[k.ID] = k
	}
	for _, w := range want {
		g, ok := byID[w.ID]
		if !ok {
			t.Errorf("key %q missing", w.ID)
			continue
		}
		if g.Algorithm != w.Algorithm || g.Active != w.Active ||
			!bytes.Equal(g.Public, w.Public) || !bytes.Equal(g.Private, w.Private) {
			t.Errorf("key %q = %+v, want %+v", w.ID, g, w)
		}
		checkTime(t, "Key.CreatedAt", g.CreatedAt, w.CreatedAt)
		if !g.RetireAt.Equal(w.RetireAt) {
			t.Errorf("key %q RetireAt = %v, want %v", w.ID, g.RetireAt, w.RetireAt)
		}
		if w.RetireAt.IsZero() != g.RetireAt.IsZero() {
			t.Errorf("key %q RetireAt.IsZero() = %v, want %v", w.ID, g.RetireAt.IsZero(), w.RetireAt.IsZero())
		}
	}
}

func testKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	got, err := s.Keys(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("Keys on empty store = %v, %v; want none", got, err)
	}
	k1, k2 := key("k1", false), key("k2", true)
	err = s.UpdateKeys(ctx, func(old []storage.Key) ([]storage.Key, error) {
		if len(old) != 0 {
			t.Errorf("first UpdateKeys saw %d keys", len(old))
		}
		return []storage.Key{k1, k2}, nil
	})
	if err != nil {
		t.Fatalf("UpdateKeys: %v", err)
	}
	got, err = s.Keys(ctx)
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	checkKeys(t, got, k1, k2)

	// fn sees the current set, and what it returns replaces it wholesale.
	k3 := key("k3", true)
	err = s.UpdateKeys(ctx, func(old []storage.Key) ([]storage.Key, error) {
		checkKeys(t, old, k1, k2)
		return []storage.Key{k3}, nil
	})
	if err != nil {
		t.Fatalf("UpdateKeys: %v", err)
	}
	got, err = s.Keys(ctx)
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	checkKeys(t, got, k3)
}

func testUpdateKeysError(t *testing.T, s storage.Store) {
	ctx := t.Context()
	k1 := key("k1", true)
	if err := s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) { return []storage.Key{k1}, nil }); err != nil {
		t.Fatalf("UpdateKeys: %v", err)
	}
	boom := errors.New("rotation failed")
	err := s.UpdateKeys(ctx, func([]storage.Key) ([]storage.Key, error) {
		return []storage.Key{key("k2", true)}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateKeys err = %v, want %v", err, boom)
	}
	got, err := s.Keys(ctx)
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	checkKeys(t, got, k1)
}

func testUpdateKeysConcurrent(t *testing.T, s storage.Store) {
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.UpdateKeys(t.Context(), func(old []storage.Key) ([]storage.Key, error) {
				return append(old, key(fmt.Sprintf("k%d", i), false)), nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateKeys %d: %v", i, err)
		}
	}
	got, err := s.Keys(t.Context())
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	var want []storage.Key
	for i := range n {
		want = append(want, key(fmt.Sprintf("k%d", i), false))
	}
	checkKeys(t, got, want...)
}

func testEvents(t *testing.T, s storage.Store) {
	ctx := t.Context()
	t0 := base()
	var alice []storage.Event
	for i := range 5 {
		e := storage.Event{
			Time:      t0.Add(time.Duration(i) * time.Second),
			Type:      "login",
			Subject:   "alice",
			ClientID:  "client-1",
			RequestID: fmt.Sprintf("req-%d", i),
			IP:        "192.0.2.1",
			UserAgent: "test/1.0",
			Detail:    fmt.Sprintf("event %d", i),
		}
		alice = append(alice, e)
	}
	// Appended out of order: ListEvents orders by time, not arrival.
	for _, i := range []int{2, 0, 4, 1, 3} {
		if err := s.AppendEvent(ctx, alice[i]); err != nil {
			t.Fatalf("AppendEvent: %v", err)
		}
	}
	bob := storage.Event{Time: t0.Add(10 * time.Second), Type: "refresh_token_reuse", Subject: "bob"}
	other := storage.Event{Time: t0.Add(10 * time.Second), Type: "login", Subject: "alice2"}
	for _, e := range []storage.Event{bob, other} {
		if err := s.AppendEvent(ctx, e); err != nil {
			t.Fatalf("AppendEvent: %v", err)
		}
	}

	got, err := s.ListEvents(ctx, "alice", 3)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	checkEvents(t, got, alice[4], alice[3], alice[2])
	got, err = s.ListEvents(ctx, "alice", 100)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	checkEvents(t, got, alice[4], alice[3], alice[2], alice[1], alice[0])
	got, err = s.ListEvents(ctx, "bob", 100)
	if err != nil {
		t.Fatalf("ListEvents(bob): %v", err)
	}
	checkEvents(t, got, bob)
	got, err = s.ListEvents(ctx, "nobody", 100)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListEvents(nobody) = %v, %v; want none", got, err)
	}
}

// checkEvents compares in order, every field but a store-assigned ID.
func checkEvents(t *testing.T, got []storage.Event, want ...storage.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		checkTime(t, fmt.Sprintf("event %d Time", i), g.Time, w.Time)
		if w.ID != "" && g.ID != w.ID {
			t.Errorf("event %d ID = %q, want %q", i, g.ID, w.ID)
		}
		g.ID, w.ID = "", ""
		g.Time, w.Time = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("event %d = %+v, want %+v", i, g, w)
		}
	}
}

func testEventIDs(t *testing.T, s storage.Store) {
	ctx := t.Context()
	t0 := base()
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Same instant on purpose: IDs must still be distinct.
			errs[i] = s.AppendEvent(ctx, storage.Event{Time: t0, Type: "login_failed", Subject: "alice"})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("AppendEvent %d: %v", i, err)
		}
	}
	mine := storage.Event{ID: "caller-chosen", Time: t0.Add(time.Second), Type: "grant_revoked", Subject: "alice"}
	if err := s.AppendEvent(ctx, mine); err != nil {
		t.Fatalf("AppendEvent(with ID): %v", err)
	}
	got, err := s.ListEvents(ctx, "alice", 100)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if len(got) != n+1 {
		t.Fatalf("got %d events, want %d", len(got), n+1)
	}
	if got[0].ID != mine.ID {
		t.Errorf("newest event ID = %q, want %q", got[0].ID, mine.ID)
	}
	seen := map[string]bool{}
	for _, e := range got {
		if e.ID == "" {
			t.Errorf("event without ID: %+v", e)
		}
		if seen[e.ID] {
			t.Errorf("duplicate event ID %q", e.ID)
		}
		seen[e.ID] = true
	}
}
