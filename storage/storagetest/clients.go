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

// client returns a registered client with every field set.
func client(id, owner string, created time.Time) storage.Client {
	return storage.Client{
		ID:        id,
		Owner:     owner,
		CreatedAt: created,
		UpdatedAt: created.Add(time.Minute),
		APIs:      []string{"billing", "search\x00bin"},
		Data:      []byte(`{"client_name":"` + id + `","bin":"` + "\x00\xff" + `"}`),
	}
}

func mustCreateClient(t *testing.T, s storage.Store, cs ...storage.Client) {
	t.Helper()
	for _, c := range cs {
		if err := s.CreateClient(t.Context(), c); err != nil {
			t.Fatalf("CreateClient(%q): %v", c.ID, err)
		}
	}
}

// checkClient compares every field; time equality by instant, and times
// must come back in UTC.
func checkClient(t *testing.T, got, want storage.Client) {
	t.Helper()
	if got.ID != want.ID || got.Owner != want.Owner {
		t.Errorf("client (%q, owner %q), want (%q, owner %q)", got.ID, got.Owner, want.ID, want.Owner)
	}
	checkTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	if !slices.Equal(got.APIs, want.APIs) {
		t.Errorf("APIs = %q, want %q", got.APIs, want.APIs)
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Errorf("Data = %q, want %q", got.Data, want.Data)
	}
}

func checkGetClient(t *testing.T, s storage.Store, want storage.Client) {
	t.Helper()
	got, err := s.GetClient(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("GetClient(%q): %v", want.ID, err)
	}
	checkClient(t, got, want)
}

func clientIDs(cs []storage.Client) []string {
	ids := make([]string, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

func checkListClients(t *testing.T, s storage.Store, owner string, want ...string) {
	t.Helper()
	got, err := s.ListClients(t.Context(), owner)
	if err != nil {
		t.Fatalf("ListClients(%q): %v", owner, err)
	}
	if ids := clientIDs(got); !slices.Equal(ids, want) {
		t.Errorf("ListClients(%q) = %q, want %q", owner, ids, want)
	}
}

func testClients(t *testing.T, s storage.Store) {
	now := base()
	for _, c := range []storage.Client{
		client("app-1", "alice", now),
		client("app-\x00bin", "owner-\x00\xff", now),
		// A pipeline's registration: no owner, nothing subscribed, no
		// data, times not set.
		{ID: "pipeline-1"},
	} {
		mustCreateClient(t, s, c)
		checkGetClient(t, s, c)
	}

	dup := client("app-1", "mallory", now.Add(time.Hour))
	dup.Data = []byte("takeover")
	err := s.CreateClient(t.Context(), dup)
	wantErr(t, "CreateClient(duplicate)", err, storage.ErrAlreadyExists)
	checkGetClient(t, s, client("app-1", "alice", now))
	checkListClients(t, s, "mallory")

	_, err = s.GetClient(t.Context(), "missing")
	wantErr(t, "GetClient(missing)", err, storage.ErrNotFound)
	// IDs are whole keys: no prefix, no case folding.
	for _, id := range []string{"app-", "APP-1", "app-1 "} {
		_, err = s.GetClient(t.Context(), id)
		wantErr(t, fmt.Sprintf("GetClient(%q)", id), err, storage.ErrNotFound)
	}
	if err := s.CreateClient(t.Context(), storage.Client{Owner: "alice"}); err == nil {
		t.Error("CreateClient without an ID succeeded")
	}
}

func testUpdateClient(t *testing.T, s storage.Store) {
	now := base()
	later := now.Add(time.Hour)
	boom := errors.New("rotation failed")
	for _, tc := range []struct {
		name string
		fn   func(storage.Client) (storage.Client, error)
		// want is the stored client after the call, from the one created.
		want    func(storage.Client) storage.Client
		wantErr error
	}{
		{"replaces what fn returns", func(c storage.Client) (storage.Client, error) {
			c.APIs = append(c.APIs, "maps")
			c.Data = []byte("rotated\x00")
			c.UpdatedAt = later
			return c, nil
		}, func(c storage.Client) storage.Client {
			c.APIs = append(c.APIs, "maps")
			c.Data = []byte("rotated\x00")
			c.UpdatedAt = later
			return c
		}, nil},
		{"empties APIs and data", func(c storage.Client) (storage.Client, error) {
			c.APIs, c.Data = nil, nil
			return c, nil
		}, func(c storage.Client) storage.Client {
			c.APIs, c.Data = nil, nil
			return c
		}, nil},
		{"keeps ID, Owner and CreatedAt", func(c storage.Client) (storage.Client, error) {
			c.ID, c.Owner, c.CreatedAt = "other", "mallory", later
			c.Data = []byte("changed")
			return c, nil
		}, func(c storage.Client) storage.Client {
			c.Data = []byte("changed")
			return c
		}, nil},
		{"fn's error changes nothing", func(c storage.Client) (storage.Client, error) {
			c.APIs, c.Data, c.UpdatedAt = nil, []byte("half done"), later
			return c, boom
		}, func(c storage.Client) storage.Client { return c }, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "app " + tc.name
			orig := client(id, "alice", now)
			mustCreateClient(t, s, orig)
			var seen storage.Client
			got, err := s.UpdateClient(t.Context(), id, func(c storage.Client) (storage.Client, error) {
				seen = c
				return tc.fn(c)
			})
			checkClient(t, seen, orig)
			want := tc.want(orig)
			if tc.wantErr != nil {
				wantErr(t, "UpdateClient", err, tc.wantErr)
			} else {
				if err != nil {
					t.Fatalf("UpdateClient: %v", err)
				}
				checkClient(t, got, want)
			}
			checkGetClient(t, s, want)
			_, err = s.GetClient(t.Context(), "other")
			wantErr(t, "GetClient(other)", err, storage.ErrNotFound)
			checkListClients(t, s, "mallory")
		})
	}
	checkListClients(t, s, "alice", "app empties APIs and data", "app fn's error changes nothing",
		"app keeps ID, Owner and CreatedAt", "app replaces what fn returns")

	called := false
	_, err := s.UpdateClient(t.Context(), "missing", func(c storage.Client) (storage.Client, error) {
		called = true
		return c, nil
	})
	wantErr(t, "UpdateClient(missing)", err, storage.ErrNotFound)
	if called {
		t.Error("UpdateClient(missing) called fn")
	}
}

// Concurrent updaters each append to APIs; none is lost, as two secret
// rotations or subscriptions at once must not lose one another.
func testUpdateClientConcurrent(t *testing.T, s storage.Store) {
	mustCreateClient(t, s, storage.Client{ID: "app", Owner: "alice", CreatedAt: base()})
	const n = 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.UpdateClient(t.Context(), "app", func(c storage.Client) (storage.Client, error) {
				c.APIs = append(c.APIs, fmt.Sprintf("api-%02d", i))
				return c, nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("UpdateClient %d: %v", i, err)
		}
	}
	got, err := s.GetClient(t.Context(), "app")
	if err != nil {
		t.Fatalf("GetClient: %v", err)
	}
	apis := slices.Clone(got.APIs)
	sort.Strings(apis)
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("api-%02d", i))
	}
	if !slices.Equal(apis, want) {
		t.Errorf("APIs after %d concurrent appends = %q, want each once", n, got.APIs)
	}
}

func testListClients(t *testing.T, s storage.Store) {
	t0 := base()
	// Created out of order; a1 and a2 share a CreatedAt, so ID decides.
	mustCreateClient(t, s,
		client("a3", "alice", t0.Add(2*time.Hour)),
		client("a2", "alice", t0),
		client("b1", "bob", t0),
		client("a1", "alice", t0),
		client("az", "alice", t0.Add(-time.Hour)),
		// Owners that share a prefix with alice.
		client("x1", "ali", t0),
		client("x2", "alice\x00", t0),
		client("x3", "alicex", t0),
		// The empty owner is a key like any other; the zero time is the
		// oldest.
		client("p2", "", t0),
		storage.Client{ID: "p1"},
		client("p0", "", t0.Add(time.Hour)),
	)
	for _, tc := range []struct {
		owner string
		want  []string
	}{
		{"alice", []string{"az", "a1", "a2", "a3"}},
		{"bob", []string{"b1"}},
		{"ali", []string{"x1"}},
		{"alice\x00", []string{"x2"}},
		{"alicex", []string{"x3"}},
		{"", []string{"p1", "p2", "p0"}},
		{"nobody", nil},
	} {
		checkListClients(t, s, tc.owner, tc.want...)
	}
	got, err := s.ListClients(t.Context(), "alice")
	if err != nil || len(got) != 4 {
		t.Fatalf("ListClients(alice) = %d, %v", len(got), err)
	}
	checkClient(t, got[3], client("a3", "alice", t0.Add(2*time.Hour)))
}

// AllClients lists every owner's clients, the empty owner's too, by ID
// bytewise (not by length or creation), as stored now: an update shows, a
// deleted client is gone.
func testAllClients(t *testing.T, s storage.Store) {
	ctx := t.Context()
	checkAll := func(want ...storage.Client) {
		t.Helper()
		got, err := s.AllClients(ctx)
		if err != nil {
			t.Fatalf("AllClients: %v", err)
		}
		if ids, wantIDs := clientIDs(got), clientIDs(want); !slices.Equal(ids, wantIDs) {
			t.Fatalf("AllClients = %q, want %q", ids, wantIDs)
		}
		for i := range want {
			checkClient(t, got[i], want[i])
		}
	}
	checkAll()

	t0 := base()
	// IDs whose order differs from their lengths' and their creation's.
	b := client("b", "bob", t0.Add(-time.Hour))
	aa := client("aa", "alice", t0)
	a0 := client("a\x00", "", t0.Add(time.Hour))
	zz := client("zz", "", t0)
	bare := storage.Client{ID: "a\xff"}
	mustCreateClient(t, s, zz, b, bare, aa, a0)
	checkAll(a0, aa, bare, b, zz)

	updated, err := s.UpdateClient(ctx, "aa", func(c storage.Client) (storage.Client, error) {
		c.Data = []byte(`{"client_name":"renamed"}`)
		c.APIs = nil
		return c, nil
	})
	if err != nil {
		t.Fatalf("UpdateClient: %v", err)
	}
	for _, id := range []string{"b", "a\x00"} {
		if _, err := s.DeleteClient(ctx, id); err != nil {
			t.Fatalf("DeleteClient(%q): %v", id, err)
		}
	}
	checkAll(updated, bare, zz)
	for _, id := range []string{"a\xff", "aa", "zz"} {
		if _, err := s.DeleteClient(ctx, id); err != nil {
			t.Fatalf("DeleteClient(%q): %v", id, err)
		}
	}
	checkAll()
}

// DeleteClient removes the client and every token issued to it, of every
// kind and grant, and tells the caches when a live access token was among
// them.
func testDeleteClient(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := base()
	// Tokens of other clients, some whose IDs have a deleted one's as a
	// prefix, all sharing subject and grant with them.
	var others []storage.Token
	for _, c := range []string{"other", "app-00", "app-0\x00", "app-10", "app-1\x00", "app-20", "app-2\x00"} {
		for _, kind := range append(allKinds, storage.OpenIDSession) {
			others = append(others, tok(kind, "keep-"+c, "shared-grant", c, "alice"))
		}
	}
	mustCreate(t, s, others...)

	for i, tc := range []struct {
		name string
		// tokens issued to the client, given its ID
		tokens    func(id string) []storage.Token
		wantN     int
		wantUntil time.Time // zero: no event
	}{
		{"every kind", func(id string) []storage.Token {
			at := tok(storage.AccessToken, id+"-at", id+"-g1", id, "alice")
			later := tok(storage.AccessToken, id+"-at2", id+"-g2", id, "")
			later.ExpiresAt = now.Add(2 * time.Hour)
			// Later still, but no cache holds these.
			rt := tok(storage.RefreshToken, id+"-rt", id+"-g1", id, "alice")
			rt.ExpiresAt = now.Add(5 * time.Hour)
			gone := expired(tok(storage.AccessToken, id+"-old", id+"-g3", id, "bob"))
			var toks []storage.Token
			for _, kind := range []storage.Kind{storage.AuthorizationCode, storage.PKCE, storage.OpenIDSession} {
				toks = append(toks, tok(kind, id+"-code", id+"-g1", id, "alice"))
			}
			return append(toks, at, later, rt, gone)
		}, 7, now.Add(2 * time.Hour)},
		{"no live access token", func(id string) []storage.Token {
			return []storage.Token{
				tok(storage.RefreshToken, id+"-rt", id+"-g", id, "alice"),
				tok(storage.AuthorizationCode, id+"-code", id+"-g", id, "alice"),
				expired(tok(storage.AccessToken, id+"-old", id+"-g", id, "alice")),
			}
		}, 3, time.Time{}},
		{"no tokens", func(string) []storage.Token { return nil }, 0, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case its own client and developer, so that one failing
			// leaves the next its own ground.
			id, dev := fmt.Sprintf("app-%d", i), fmt.Sprintf("dev-%d", i)
			mustCreateClient(t, s, client(id, dev, now), client("sibling-"+id, dev, now))
			toks := tc.tokens(id)
			mustCreate(t, s, toks...)
			_, head, err := s.RevocationRange(ctx)
			if err != nil {
				t.Fatal(err)
			}

			n, err := s.DeleteClient(ctx, id)
			if err != nil || n != tc.wantN {
				t.Fatalf("DeleteClient = %d, %v; want %d", n, err, tc.wantN)
			}
			_, err = s.GetClient(ctx, id)
			wantErr(t, "GetClient after DeleteClient", err, storage.ErrNotFound)
			checkListClients(t, s, dev, "sibling-"+id)
			for _, tk := range toks {
				checkMissing(t, s, tk.Kind, tk.Signature)
			}
			list, err := s.ClientTokens(ctx, id)
			checkList(t, "ClientTokens after DeleteClient", list, err)
			for _, tk := range others {
				if _, err := s.GetToken(ctx, tk.Kind, tk.Signature); err != nil {
					t.Errorf("another client's %s token: %v", tk.Kind, err)
				}
			}

			rs := revocations(t, s, head)
			switch {
			case tc.wantUntil.IsZero() && len(rs) != 0:
				t.Errorf("events %+v, want none: no live access token was removed", rs)
			case !tc.wantUntil.IsZero() && len(rs) != 1:
				t.Fatalf("events %+v, want one", rs)
			case !tc.wantUntil.IsZero():
				r := rs[0]
				if r.Kind != storage.RevokedClient || r.ID != id || r.ClientID != id {
					t.Errorf("event %+v, want a client event for %q", r, id)
				}
				checkTime(t, "Until", r.Until, tc.wantUntil)
			}

			_, err = s.DeleteClient(ctx, id)
			wantErr(t, "second DeleteClient", err, storage.ErrNotFound)
			// The ID is free again, and comes back with no tokens.
			again := client(id, "dev-again", now.Add(time.Hour))
			mustCreateClient(t, s, again)
			checkGetClient(t, s, again)
			checkListClients(t, s, "dev-again", id)
			list, err = s.ClientTokens(ctx, id)
			checkList(t, "ClientTokens of the client created again", list, err)
			if _, err := s.DeleteClient(ctx, id); err != nil {
				t.Fatalf("DeleteClient of the client created again: %v", err)
			}
		})
	}

	_, head, err := s.RevocationRange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, tok(storage.AccessToken, "unregistered", "g", "never-registered", "alice"))
	_, err = s.DeleteClient(ctx, "never-registered")
	wantErr(t, "DeleteClient(unknown)", err, storage.ErrNotFound)
	if _, err := s.GetToken(ctx, storage.AccessToken, "unregistered"); err != nil {
		t.Errorf("DeleteClient(unknown) touched tokens: %v", err)
	}
	if rs := revocations(t, s, head); len(rs) != 0 {
		t.Errorf("DeleteClient(unknown) recorded %+v", rs)
	}
}

// A refresh retry dies with its client, as with its grant.
func testDeleteClientRetry(t *testing.T, s storage.Store) {
	mustCreateClient(t, s, client("app", "dev", base()))
	rt := tok(storage.RefreshToken, "rt", "req-1", "app", "alice")
	mustCreate(t, s, rt)
	redeemWithRetry(t, s, rt, "rt-2", base().Add(time.Minute), []byte("answer"))
	if n, err := s.DeleteClient(t.Context(), "app"); err != nil || n != 3 {
		t.Fatalf("DeleteClient = %d, %v; want the refresh token, its successor and the access token", n, err)
	}
	checkNoRetry(t, s, "rt")
	// The same keys issued again, to another client: nothing of the old
	// retry shows through.
	rt = tok(storage.RefreshToken, "rt", "req-2", "other", "alice")
	mustCreate(t, s, rt)
	at, rt2 := tok(storage.AccessToken, "at-x", "req-2", "other", "alice"), tok(storage.RefreshToken, "rt-2", "req-2", "other", "alice")
	if _, err := s.Redeem(t.Context(), rt.Kind, rt.Signature, []storage.Token{at, rt2}, nil); err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	checkNoRetry(t, s, "rt")
}
