package authz

import "testing"

func TestDecodeCacheRequiresIdenticalBytes(t *testing.T) {
	c := newDecodeCache(4)
	c.put("k", &decodedRequest{data: []byte(`{"id":"a"}`), sr: storedRequest{ID: "a"}})
	if d, ok := c.get("k", []byte(`{"id":"a"}`)); !ok || d.sr.ID != "a" {
		t.Fatalf("hit expected, got %v %v", d, ok)
	}
	// The same token key with other stored bytes (rewritten record) misses.
	if _, ok := c.get("k", []byte(`{"id":"b"}`)); ok {
		t.Fatal("cache served a decode of different bytes")
	}
	for i := range 10 {
		c.put(string(rune('a'+i)), &decodedRequest{})
	}
	if len(c.m) > 4 {
		t.Fatalf("cache holds %d entries, bound is 4", len(c.m))
	}
}

func TestDecodedSessionsAreCopies(t *testing.T) {
	d := &decodedRequest{sess: Session{Subject: "alice", Claims: map[string]any{"email": "a@example.com"}}}
	var s1, s2 Session
	d.copySession(&s1)
	s1.Claims["email"] = "mallory@example.com"
	d.copySession(&s2)
	if s2.Claims["email"] != "a@example.com" {
		t.Fatal("a request's change to its session leaked into the cache")
	}
}
