package authz

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestRetrySealer(t *testing.T) {
	s, err := newRetrySealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a := retryAnswer{ClientID: "spa", AccessToken: "pst_at_secret-access", RefreshToken: "pst_rt_secret-refresh",
		TokenType: "bearer", Scope: "read", AccessExpiresAt: time.Unix(1_800_000_000, 0).UTC(), Extra: map[string]any{"id_token": "x.y.z"}}
	sealed, err := s.seal("sig-1", a)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{a.AccessToken, a.RefreshToken, "x.y.z"} {
		if bytes.Contains(sealed, []byte(secret)) {
			t.Fatalf("sealed answer holds %q in the clear", secret)
		}
	}
	got, err := s.open("sig-1", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != a.AccessToken || got.RefreshToken != a.RefreshToken || !got.AccessExpiresAt.Equal(a.AccessExpiresAt) || got.Extra["id_token"] != "x.y.z" {
		t.Errorf("round trip = %+v, want %+v", got, a)
	}
	other, err := newRetrySealer(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() (retryAnswer, error){
		"another token's record": func() (retryAnswer, error) { return s.open("sig-2", sealed) },
		"another secret":         func() (retryAnswer, error) { return other.open("sig-1", sealed) },
		"tampered":               func() (retryAnswer, error) { return s.open("sig-1", tampered) },
		"truncated":              func() (retryAnswer, error) { return s.open("sig-1", sealed[:10]) },
	} {
		if _, err := open(); !errors.Is(err, errRetrySeal) {
			t.Errorf("%s: open = %v, want errRetrySeal", name, err)
		}
	}
}
