package passhash

import (
	"context"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/postern-auth/postern/passhash/passhashtest"
)

func TestHashPasswordRoundTrip(t *testing.T) {
	const pw = "correct horse battery staple"
	phc, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=65536,t=1,p=2$"; !strings.HasPrefix(phc, want) {
		t.Fatalf("HashPassword = %q, want prefix %q", phc, want)
	}
	if err := ValidatePasswordHash(phc); err != nil {
		t.Fatalf("ValidatePasswordHash(own output): %v", err)
	}
	h, err := Parse(phc)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.salt) != argonSaltLen || len(h.key) != argonKeyLen {
		t.Errorf("salt %d bytes, key %d bytes; want %d, %d", len(h.salt), len(h.key), argonSaltLen, argonKeyLen)
	}

	for _, tc := range []struct {
		name string
		pw   string
		want bool
	}{
		{"right", pw, true},
		{"wrong", "Tr0ub4dor&3", false},
		{"near miss", pw[:len(pw)-1] + "f", false},
		{"prefix", pw[:len(pw)-1], false},
		{"extra char", pw + " ", false},
		{"case", strings.ToUpper(pw), false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyPassword(phc, tc.pw)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("VerifyPassword = %v, want %v", got, tc.want)
			}
		})
	}

	again, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if again == phc {
		t.Error("two hashes of the same password are equal; salt is not random")
	}
}

func TestHashPasswordRefusesEmpty(t *testing.T) {
	if _, err := HashPassword(""); err == nil {
		t.Fatal("HashPassword(\"\") succeeded")
	}
}

// The reference implementation's test vector (phc-winner-argon2, test.c)
// proves we read hashes other tools produce, not just our own.
func TestVerifyPasswordReferenceVector(t *testing.T) {
	const phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	ok, err := VerifyPassword(phc, "password")
	if err != nil || !ok {
		t.Fatalf("VerifyPassword(reference) = %v, %v; want true, nil", ok, err)
	}
	if ok, _ := VerifyPassword(phc, "passwore"); ok {
		t.Fatal("reference vector matched a wrong password")
	}
}

func TestMalformedPasswordHash(t *testing.T) {
	const salt = "MDEyMzQ1Njc4OWFiY2RlZg"                     // 16 bytes
	const key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 32 bytes
	valid := "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key
	if err := ValidatePasswordHash(valid); err != nil {
		t.Fatalf("baseline %q rejected: %v", valid, err)
	}
	for _, tc := range []struct {
		name, phc, msg string
	}{
		{"empty", "", "empty"},
		{"plaintext", "hunter2", "must start with '$'"},
		{"bcrypt", "$2b$10$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", `"2b" is not supported`},
		{"argon2i", "$argon2i$v=19$m=65536,t=1,p=2$" + salt + "$" + key, `"argon2i" is not supported`},
		{"argon2d", "$argon2d$v=19$m=65536,t=1,p=2$" + salt + "$" + key, `"argon2d" is not supported`},
		{"upper case alg", "$ARGON2ID$v=19$m=65536,t=1,p=2$" + salt + "$" + key, "not supported"},
		{"only prefix", "$argon2id$", "want 5"},
		{"missing hash", "$argon2id$v=19$m=65536,t=1,p=2$" + salt, "got 4"},
		{"missing version", "$argon2id$m=65536,t=1,p=2$" + salt + "$" + key, "got 4"},
		{"extra field", valid + "$x", "got 6"},
		{"trailing dollar", valid + "$", "got 6"},
		{"old version", "$argon2id$v=16$m=65536,t=1,p=2$" + salt + "$" + key, "v=16 is not supported"},
		{"version not first", "$argon2id$m=65536$v=19,t=1,p=2$" + salt + "$" + key, "version"},
		{"two params", "$argon2id$v=19$m=65536,t=1$" + salt + "$" + key, "got 2"},
		{"four params", "$argon2id$v=19$m=65536,t=1,p=2,k=1$" + salt + "$" + key, "got 4"},
		{"param order", "$argon2id$v=19$t=1,m=65536,p=2$" + salt + "$" + key, "parameter 1 must be m="},
		{"param spaces", "$argon2id$v=19$m=65536, t=1,p=2$" + salt + "$" + key, "parameter 2 must be t="},
		{"param empty", "$argon2id$v=19$m=,t=1,p=2$" + salt + "$" + key, "empty value"},
		{"param sign", "$argon2id$v=19$m=+65536,t=1,p=2$" + salt + "$" + key, "not a decimal"},
		{"param negative", "$argon2id$v=19$m=65536,t=-1,p=2$" + salt + "$" + key, "not a decimal"},
		{"param hex", "$argon2id$v=19$m=0x10000,t=1,p=2$" + salt + "$" + key, "not a decimal"},
		{"param leading zero", "$argon2id$v=19$m=065536,t=1,p=2$" + salt + "$" + key, "leading zero"},
		{"param overflow", "$argon2id$v=19$m=4294967296,t=1,p=2$" + salt + "$" + key, "out of range"},
		{"salt bad base64", "$argon2id$v=19$m=65536,t=1,p=2$!!!!$" + key, "salt is not"},
		{"salt padded", "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "==$" + key, "salt is not"},
		{"salt url alphabet", "$argon2id$v=19$m=65536,t=1,p=2$MDEyMzQ1Njc4OWFiY2Rl_g$" + key, "salt is not"},
		{"hash url alphabet", "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key[:41] + "-A", "hash is not"},
		{"salt too short", "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$" + key, "salt is 4 bytes"},
		{"salt empty", "$argon2id$v=19$m=65536,t=1,p=2$$" + key, "salt is 0 bytes"},
		{"hash too short", "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$AAAAAAAAAAAA", "hash is 9 bytes"},
		{"hash empty", "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$", "hash is 0 bytes"},
		{"hash non-canonical", "$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key[:42] + "B", "hash is not"},
		{"trailing newline", valid + "\n", "whitespace"},
		{"leading space", " " + valid, "whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePasswordHash(tc.phc)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ValidatePasswordHash(%q) = %v, want ErrMalformed", tc.phc, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			ok, err := VerifyPassword(tc.phc, "password")
			if ok || !errors.Is(err, ErrMalformed) {
				t.Errorf("VerifyPassword = %v, %v; want false, ErrMalformed", ok, err)
			}
		})
	}
}

func TestPasswordHashParameterLimits(t *testing.T) {
	const tail = "$MDEyMzQ1Njc4OWFiY2RlZg$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		params string
		ok     bool
		msg    string
	}{
		{"m=1048576,t=1,p=2", true, ""},
		{"m=1048577,t=1,p=2", false, "exceeds the limit of 1048576 KiB"},
		{"m=4294967295,t=1,p=2", false, "exceeds the limit"},
		{"m=65536,t=10,p=2", true, ""},
		{"m=65536,t=11,p=2", false, "t=11 exceeds"},
		{"m=65536,t=0,p=2", false, "t=0"},
		{"m=65536,t=1,p=16", true, ""},
		{"m=65536,t=1,p=17", false, "p=17 exceeds"},
		{"m=65536,t=1,p=255", false, "p=255 exceeds"},
		{"m=65536,t=1,p=0", false, "p=0"},
		{"m=16,t=1,p=2", true, ""},
		{"m=15,t=1,p=2", false, "below the minimum"},
		{"m=0,t=1,p=1", false, "below the minimum"},
	} {
		t.Run(tc.params, func(t *testing.T) {
			err := ValidatePasswordHash("$argon2id$v=19$" + tc.params + tail)
			if tc.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrMalformed saying %q", err, tc.msg)
			}
		})
	}
}

// No prefix of a valid hash may panic or verify. A prefix cut inside the
// hash field can still be well formed (argon2 takes the tag length from the
// stored hash), so it is a mismatch rather than an error; every prefix that
// ends earlier must be an error.
func TestTruncatedPasswordHash(t *testing.T) {
	phc := passhashtest.Cheap(t, "pw")
	hashField := strings.LastIndex(phc, "$") + 1
	for i := range len(phc) {
		ok, err := VerifyPassword(phc[:i], "pw")
		if ok || (i <= hashField && err == nil) {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false and an error", phc[:i], ok, err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	phc, err := HashPassword("benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := VerifyPassword(phc, "benchmark password"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// The Limiter is the process's bound: with every slot held, a further check
// waits (here: gives up with its context) instead of deriving.
func TestLimiterBoundsConcurrentChecks(t *testing.T) {
	const slots = 2
	entered, release := make(chan struct{}, slots+1), make(chan struct{})
	l := NewLimiter(slots, func(pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		entered <- struct{}{}
		<-release
		return argon2.IDKey(pw, salt, time, memory, threads, keyLen)
	})
	h, err := Parse(passhashtest.Cheap(t, "pw"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, slots)
	for range slots {
		go func() {
			ok, _ := l.Match(context.Background(), h, []byte("pw"))
			done <- ok
		}()
	}
	for range slots {
		<-entered
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if ok, err := l.Match(ctx, h, []byte("pw")); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Match with every slot held = %v, %v; want false, context.Canceled", ok, err)
	}
	close(release)
	for range slots {
		if !<-done {
			t.Error("a held check did not match")
		}
	}
	if len(entered) != 0 {
		t.Error("a derivation ran beyond the limit")
	}
}
