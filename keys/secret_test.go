package keys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

func TestLoadSecret(t *testing.T) {
	long := strings.Repeat("f", 40)
	tests := []struct {
		name    string
		env     string
		file    string // contents of --secret-file; "" means no flag
		inData  string // contents of <dataDir>/secret; "" means absent
		want    string // expected secret bytes; "" means generated
		wantErr string
	}{
		{name: "env wins over file and data dir", env: testSecret, file: long, inData: long, want: testSecret},
		{name: "env trailing newline trimmed", env: testSecret + "\n", want: testSecret},
		{name: "env too short", env: "q7Zx9", file: long, wantErr: "POSTERN_SECRET"},
		{name: "file wins over data dir", file: testSecret + "\n", inData: long, want: testSecret},
		{name: "file too short", file: "q7Zx9\n", wantErr: "secret-file"},
		{name: "file whitespace only", file: "   \n", wantErr: "secret-file"},
		{name: "data dir file reused", inData: long + "\r\n", want: long},
		{name: "data dir file too short", inData: "q7Zx9", wantErr: filepath.Join("data", "secret")},
		{name: "generated when nothing configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			var file string
			if tt.file != "" {
				file = filepath.Join(dir, "secret-file")
				writeFile(t, file, tt.file)
			}
			if tt.inData != "" {
				if err := os.MkdirAll(dataDir, 0o700); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(dataDir, "secret"), tt.inData)
			}

			s, err := LoadSecret(tt.env, file, dataDir, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				for _, leaked := range []string{"q7Zx9", long} {
					if strings.Contains(err.Error(), leaked) {
						t.Errorf("error %q contains the secret", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && string(s.b) != tt.want {
				t.Errorf("secret = %q, want %q", s.b, tt.want)
			}
			if len(s.b) < MinSecretLen {
				t.Errorf("secret is %d bytes", len(s.b))
			}
		})
	}
}

func TestLoadSecretNoSource(t *testing.T) {
	if _, err := LoadSecret("", "", "", nil); err == nil || !strings.Contains(err.Error(), "POSTERN_SECRET") {
		t.Fatalf("err = %v, want one naming POSTERN_SECRET", err)
	}
}

func TestLoadSecretMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	if _, err := LoadSecret("", path, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

func TestLoadSecretGenerates(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))

	s1, err := LoadSecret("", "", dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dataDir, "secret")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode = %v, want 0600", perm)
	}
	di, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("data dir mode = %v, want 0700", perm)
	}
	logged := logBuf.String()
	for _, want := range []string{"level=WARN", "development only", "POSTERN_SECRET", "--secret-file"} {
		if !strings.Contains(strings.ToLower(logged), strings.ToLower(want)) {
			t.Errorf("log %q lacks %q", logged, want)
		}
	}
	if strings.Contains(logged, string(s1.b)) {
		t.Error("log contains the secret")
	}
	entries, _ := os.ReadDir(dataDir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the secret (temp file left behind?)", len(entries))
	}

	s2, err := LoadSecret("", "", dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.b, s2.b) {
		t.Error("second LoadSecret generated a new secret instead of reusing the file")
	}
}

// Two processes starting at once on an empty data dir must agree on one
// secret, or one of them would seal keys the other cannot read.
func TestLoadSecretConcurrentGeneration(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	const n = 8
	got := make([]Secret, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := LoadSecret("", "", dataDir, nil)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if !bytes.Equal(got[0].b, got[i].b) {
			t.Fatalf("goroutine %d got a different secret", i)
		}
	}
}

func TestDerive(t *testing.T) {
	s := mustSecret(t, testSecret)
	other := mustSecret(t, testSecret+"x")

	a := s.Derive("token hmac v1", 32)
	if !bytes.Equal(a, s.Derive("token hmac v1", 32)) {
		t.Error("Derive is not deterministic")
	}
	if bytes.Equal(a, s.Derive("cookie v1", 32)) {
		t.Error("different purposes gave the same key")
	}
	if bytes.Equal(a, other.Derive("token hmac v1", 32)) {
		t.Error("different secrets gave the same key")
	}
	if got := len(s.Derive("x", 64)); got != 64 {
		t.Errorf("len = %d, want 64", got)
	}
	// A shorter output is a prefix of a longer one in HKDF; callers must
	// not rely on length to separate keys, only on the purpose.
	if !bytes.Equal(s.Derive("x", 16), s.Derive("x", 64)[:16]) {
		t.Error("HKDF prefix property broken")
	}
}

func TestDerivePanics(t *testing.T) {
	for name, f := range map[string]func(){
		"zero secret": func() { Secret{}.Derive("x", 32) },
		"zero length": func() { mustSecret(t, testSecret).Derive("x", 0) },
		"too long":    func() { mustSecret(t, testSecret).Derive("x", 255*32+1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestSecretRedacted(t *testing.T) {
	s := mustSecret(t, testSecret)
	type config struct {
		Secret Secret
		Ptr    *Secret
	}
	c := config{Secret: s, Ptr: &s}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, c), fmt.Sprintf(verb, &s))
	}
	outs = append(outs, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(s))
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "secret", s, "config", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s, "config", c)
	outs = append(outs, buf.String())

	hexSecret := fmt.Sprintf("%x", testSecret)
	for _, out := range outs {
		if strings.Contains(out, testSecret) || strings.Contains(strings.ToLower(out), hexSecret) || strings.Contains(out, "0123456789") {
			t.Errorf("secret leaked: %q", out)
		}
	}
	if s.String() != "[redacted]" || fmt.Sprintf("%#v", s) != "[redacted]" {
		t.Errorf("got %q / %q", s.String(), fmt.Sprintf("%#v", s))
	}
}

func TestNewSecretCopies(t *testing.T) {
	b := []byte(testSecret)
	s := mustSecret(t, string(b))
	before := s.Derive("x", 32)
	b[0] ^= 0xff
	if !bytes.Equal(before, s.Derive("x", 32)) {
		t.Error("Secret aliases the caller's slice")
	}
}

func mustSecret(t testing.TB, s string) Secret {
	t.Helper()
	sec, err := NewSecret([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
