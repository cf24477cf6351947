package bolt

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/postern-auth/postern/storage"
)

func sampleToken() storage.Token {
	now := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	return storage.Token{
		Kind:      storage.RefreshToken,
		Signature: "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy",
		RequestID: "6f1c0a9e-2b7d-4c39-9d57-4b1a1f0c2e11",
		ClientID:  "web-app",
		Subject:   "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs",
		CreatedAt: now,
		ExpiresAt: now.Add(30 * 24 * time.Hour),
		Active:    true,
		Data:      bytes.Repeat([]byte(`{"scope":"openid profile email offline_access","claims":{}}`), 8),
	}
}

func TestTokenCodecRoundTrip(t *testing.T) {
	want := sampleToken()
	key := tokenKey(want.Kind, want.Signature)
	val := encodeToken(want)
	got, err := decodeToken(key, val)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != want.Kind || got.Signature != want.Signature || got.RequestID != want.RequestID ||
		got.ClientID != want.ClientID || got.Subject != want.Subject || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || got.Active != want.Active || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("round trip = %+v, want %+v", got, want)
	}
	// The decoded record must not share memory with the value (which in
	// bbolt is the memory map).
	for i := range val {
		val[i] = 0xAA
	}
	if !bytes.Equal(got.Data, want.Data) {
		t.Fatal("decoded Data aliases the encoded value")
	}
}

func TestDecodeRejectsCorruption(t *testing.T) {
	tok := sampleToken()
	key := tokenKey(tok.Kind, tok.Signature)
	val := encodeToken(tok)
	for name, v := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{formatV1 + 1}, val[1:]...),
		"truncated": val[:len(val)-1],
		"trailing":  append(bytes.Clone(val), 0),
	} {
		if _, err := decodeToken(key, v); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
	if _, err := decodeToken([]byte{200}, val); !errors.Is(err, errCorrupt) {
		t.Errorf("bad key: err = %v, want errCorrupt", err)
	}
}

func TestZeroTimeRoundTrip(t *testing.T) {
	k := storage.Key{ID: "k", CreatedAt: time.Now()}
	got, err := decodeKey(encodeKey(k))
	if err != nil {
		t.Fatal(err)
	}
	if !got.RetireAt.IsZero() {
		t.Fatalf("RetireAt = %v, want zero", got.RetireAt)
	}
}

func TestIndexKeysDoNotAlias(t *testing.T) {
	// "a" + "\x00b" and "a\x00" + "b" must differ, and one owner's prefix
	// must not be a prefix of another owner's keys.
	tk := tokenKey(storage.AccessToken, "sig")
	a := indexKey("alice", tk)
	b := indexKey("alice\x00access", tk)
	if bytes.HasPrefix(b, lp("alice")) || bytes.HasPrefix(a, lp("alice\x00access")) {
		t.Fatal("index prefixes alias")
	}
	if bytes.Equal(tokenKey("ab", "c"), tokenKey("a", "bc")) {
		t.Fatal("token keys alias")
	}
	if sortNanos(time.Time{}) != 0 || sortNanos(time.Unix(1, 0)) <= sortNanos(time.Unix(0, 0)) {
		t.Fatal("sortNanos does not order")
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, c := range []struct{ in, want []byte }{
		{[]byte{1, 'a'}, []byte{1, 'b'}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
	} {
		if got := prefixEnd(c.in); !bytes.Equal(got, c.want) {
			t.Errorf("prefixEnd(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	tok := sampleToken()
	f.Add(tokenKey(tok.Kind, tok.Signature), encodeToken(tok))
	f.Add([]byte{0}, []byte{formatV1})
	f.Fuzz(func(t *testing.T, key, val []byte) {
		got, err := decodeToken(key, val)
		if err != nil {
			return
		}
		// Whatever decodes survives a round trip unchanged. (Not byte for
		// byte: an overlong varint decodes fine and re-encodes shorter.)
		again, err := decodeToken(tokenKey(got.Kind, got.Signature), encodeToken(got))
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if again.Kind != got.Kind || again.Signature != got.Signature || again.RequestID != got.RequestID ||
			again.ClientID != got.ClientID || again.Subject != got.Subject || !again.CreatedAt.Equal(got.CreatedAt) ||
			!again.ExpiresAt.Equal(got.ExpiresAt) || again.Active != got.Active || !bytes.Equal(again.Data, got.Data) {
			t.Fatalf("round trip changed %+v into %+v", got, again)
		}
	})
}

// BenchmarkCodec compares the record format with encoding/json, the obvious
// alternative, on a typical refresh token.
func BenchmarkCodec(b *testing.B) {
	tok := sampleToken()
	key := tokenKey(tok.Kind, tok.Signature)
	bin := encodeToken(tok)
	js, _ := json.Marshal(tok)
	b.Logf("value size: binary %d bytes, json %d bytes (Data %d)", len(bin), len(js), len(tok.Data))
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeToken(key, encodeToken(tok)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := json.Marshal(tok)
			if err != nil {
				b.Fatal(err)
			}
			var got storage.Token
			if err := json.Unmarshal(v, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
