package bolt

import (
	"reflect"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

// FuzzDecodeRecords feeds every stored-record decoder the same bytes: a
// damaged or hostile file must give errors, never a panic, and a record
// that decodes must survive encoding and decoding again unchanged (the
// bytes themselves may differ: a varint may be written longer than needed).
func FuzzDecodeRecords(f *testing.F) {
	now := time.Unix(1700000000, 123).UTC()
	tok := testToken("sig", "alice", now)
	f.Add(tokenKey(tok.Kind, tok.Signature), encodeToken(tok))
	f.Add([]byte{}, encodeRetry(storage.Retry{Successor: "s", Until: now, Sealed: []byte("x")}))
	f.Add([]byte{}, encodeRevocation(storage.Revocation{Time: now, Kind: storage.RevokedGrant, ID: "g", Subject: "alice", ClientID: "c", Until: now}))
	f.Add([]byte{}, encodeKey(storage.Key{ID: "k", Algorithm: "ES256", CreatedAt: now, Active: true, Public: []byte("p")}))
	f.Add([]byte{}, encodeEvent(storage.Event{ID: "e", Type: "t", Subject: "alice", Time: now}))
	f.Add([]byte{}, encodeConsent(storage.Consent{Subject: "alice", ClientID: "c", Scopes: []string{"read"}, GrantedAt: now}))
	f.Add([]byte{}, encodeClient(storage.Client{ID: "app", Owner: "alice", CreatedAt: now, UpdatedAt: now,
		APIs: []string{"billing", "search"}, Data: []byte(`{"redirect_uris":[]}`)}))
	f.Fuzz(func(t *testing.T, key, val []byte) {
		if tk, err := decodeToken(key, val); err == nil {
			again, err := decodeToken(key, encodeToken(tk))
			if err != nil || !reflect.DeepEqual(again, tk) {
				t.Errorf("token %+v comes back as %+v, %v", tk, again, err)
			}
		}
		if r, err := decodeRetry(val); err == nil {
			if again, err := decodeRetry(encodeRetry(r)); err != nil || !reflect.DeepEqual(again, r) {
				t.Errorf("retry %+v comes back as %+v, %v", r, again, err)
			}
		}
		if r, err := decodeRevocation(7, val); err == nil {
			if again, err := decodeRevocation(7, encodeRevocation(r)); err != nil || !reflect.DeepEqual(again, r) {
				t.Errorf("revocation %+v comes back as %+v, %v", r, again, err)
			}
		}
		if k, err := decodeKey(val); err == nil {
			if again, err := decodeKey(encodeKey(k)); err != nil || !reflect.DeepEqual(again, k) {
				t.Errorf("key %+v comes back as %+v, %v", k, again, err)
			}
		}
		if e, err := decodeEvent(val); err == nil {
			if again, err := decodeEvent(encodeEvent(e)); err != nil || !reflect.DeepEqual(again, e) {
				t.Errorf("event %+v comes back as %+v, %v", e, again, err)
			}
		}
		if c, err := decodeClient(val); err == nil {
			if again, err := decodeClient(encodeClient(c)); err != nil || !reflect.DeepEqual(again, c) {
				t.Errorf("client %+v comes back as %+v, %v", c, again, err)
			}
		}
		_, _ = decodeConsent(val)
		_, _ = decodeLoginFailure(val)
		_, _ = decodeSubjectEnd(val)
		_, _, _ = parseTokenKey(key)
		_, _ = afterLP(key)
	})
}
