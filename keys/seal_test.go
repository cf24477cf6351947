package keys

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSealRoundTrip(t *testing.T) {
	sl := mustSealer(t, testSecret)
	plain := []byte(`{"kty":"EC","d":"secret-scalar"}`)

	sealed, err := sl.seal("kid-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-scalar")) {
		t.Fatal("sealed output contains the plaintext")
	}
	again, err := sl.seal("kid-1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed, again) {
		t.Error("two seals of the same plaintext are identical: nonce not random")
	}
	got, err := sl.open("kid-1", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, plain) {
		t.Errorf("open = %q, want %q", got, plain)
	}
}

func TestOpenFailures(t *testing.T) {
	sl := mustSealer(t, testSecret)
	sealed, err := sl.seal("kid-1", []byte("private jwk"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}

	tests := []struct {
		name    string
		sealer  *sealer
		kid     string
		data    []byte
		wantErr error
	}{
		{name: "wrong secret", sealer: mustSealer(t, testSecret+"-other"), kid: "kid-1", data: sealed, wantErr: ErrWrongSecret},
		{name: "moved to another key (AAD)", sealer: sl, kid: "kid-2", data: sealed, wantErr: ErrCorrupt},
		{name: "ciphertext altered", sealer: sl, kid: "kid-1", data: flip(len(sealed) - 1), wantErr: ErrCorrupt},
		{name: "nonce altered", sealer: sl, kid: "kid-1", data: flip(sealHeader), wantErr: ErrCorrupt},
		{name: "truncated", sealer: sl, kid: "kid-1", data: sealed[:sealHeader+5], wantErr: ErrCorrupt},
		{name: "empty", sealer: sl, kid: "kid-1", data: nil, wantErr: ErrCorrupt},
		{name: "unknown version", sealer: sl, kid: "kid-1", data: flip(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := tt.sealer.open(tt.kid, tt.data)
			if err == nil {
				t.Fatalf("open succeeded: %q", pt)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.kid) {
				t.Errorf("err = %v does not name the key", err)
			}
		})
	}
}

func TestErrWrongSecretMessage(t *testing.T) {
	if !strings.Contains(ErrWrongSecret.Error(), "system secret differs from the one") {
		t.Errorf("message %q does not explain the cause", ErrWrongSecret)
	}
}

func TestNewSealerZeroSecret(t *testing.T) {
	if _, err := newSealer(Secret{}); err == nil {
		t.Fatal("newSealer accepted the zero Secret")
	}
}

func mustSealer(t testing.TB, secret string) *sealer {
	t.Helper()
	sl, err := newSealer(mustSecret(t, secret))
	if err != nil {
		t.Fatal(err)
	}
	return sl
}
