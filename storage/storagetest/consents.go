package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

func testConsents(t *testing.T, s storage.Store) {
	ctx := t.Context()
	at := time.Date(2026, 5, 1, 12, 0, 0, 123456789, time.UTC)
	if _, err := s.GetConsent(ctx, "alice", "spa"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetConsent before any: %v, want ErrNotFound", err)
	}
	put := func(c storage.Consent) {
		t.Helper()
		if err := s.PutConsent(ctx, c); err != nil {
			t.Fatalf("PutConsent(%+v): %v", c, err)
		}
	}
	put(storage.Consent{Subject: "alice", ClientID: "spa", Scopes: []string{"read"}, GrantedAt: at})
	put(storage.Consent{Subject: "alice", ClientID: "mobile", Scopes: []string{"read", "write"}, GrantedAt: at})
	// A subject that sorts inside alice's range with a naive separator.
	put(storage.Consent{Subject: "alice\x00x", ClientID: "spa", Scopes: []string{"admin"}, GrantedAt: at})
	put(storage.Consent{Subject: "bob", ClientID: "spa", Scopes: []string{"read"}, GrantedAt: at})
	// Replacing widens the scopes.
	put(storage.Consent{Subject: "alice", ClientID: "spa", Scopes: []string{"read", "write"}, GrantedAt: at.Add(time.Hour)})

	got, err := s.GetConsent(ctx, "alice", "spa")
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "alice" || got.ClientID != "spa" || !slices.Equal(got.Scopes, []string{"read", "write"}) || !got.GrantedAt.Equal(at.Add(time.Hour)) {
		t.Errorf("GetConsent = %+v", got)
	}
	list, err := s.ListConsents(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ClientID != "mobile" || list[1].ClientID != "spa" {
		t.Fatalf("ListConsents(alice) = %+v, want mobile then spa", list)
	}
	if err := s.DeleteConsent(ctx, "alice", "spa"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConsent(ctx, "alice", "spa"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetConsent after delete: %v", err)
	}
	if err := s.DeleteConsent(ctx, "alice", "spa"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second DeleteConsent: %v, want ErrNotFound", err)
	}
	if c, err := s.GetConsent(ctx, "bob", "spa"); err != nil || !slices.Equal(c.Scopes, []string{"read"}) {
		t.Errorf("bob's consent disturbed: %+v, %v", c, err)
	}
	if list, err := s.ListConsents(ctx, "carol"); err != nil || len(list) != 0 {
		t.Errorf("ListConsents(carol) = %+v, %v", list, err)
	}
}

func testEventsCapped(t *testing.T, s storage.Store) {
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := storage.MaxEventsPerSubject + 15
	for i := range n {
		ev := storage.Event{Time: base.Add(time.Duration(i) * time.Second), Type: "login", Subject: "alice"}
		if err := s.AppendEvent(ctx, ev); err != nil {
			t.Fatalf("AppendEvent %d: %v", i, err)
		}
	}
	if err := s.AppendEvent(ctx, storage.Event{Time: base, Type: "login", Subject: "bob"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(ctx, "alice", 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != storage.MaxEventsPerSubject {
		t.Fatalf("alice has %d events, want the newest %d", len(evs), storage.MaxEventsPerSubject)
	}
	if newest, oldest := evs[0].Time, evs[len(evs)-1].Time; !newest.Equal(base.Add(time.Duration(n-1)*time.Second)) || !oldest.Equal(base.Add(15*time.Second)) {
		t.Errorf("kept %s … %s, want the newest events", oldest, newest)
	}
	if bob, _ := s.ListEvents(ctx, "bob", 10); len(bob) != 1 {
		t.Errorf("bob's events disturbed: %d", len(bob))
	}
}
