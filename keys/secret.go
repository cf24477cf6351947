package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/hkdf"
)

// MinSecretLen is the shortest system secret accepted, in bytes. The secret
// is used as given (it is not base64-decoded), so 32 bytes of text only carry
// 256 bits of entropy if they are random; `openssl rand -base64 32` gives 44
// characters that do.
const MinSecretLen = 32

// secretFileName is the development fallback inside the data directory.
const secretFileName = "secret"

// Secret is the system secret every other server key is derived from. The
// zero value holds no secret; Derive panics on it and Open rejects it.
//
// It prints as "[redacted]" through fmt and slog so it cannot leak into logs
// or error messages by accident.
type Secret struct {
	b []byte
}

// NewSecret wraps b (copied) as a system secret, for callers that obtain the
// secret some other way than LoadSecret, and for tests.
func NewSecret(b []byte) (Secret, error) {
	if len(b) < MinSecretLen {
		return Secret{}, fmt.Errorf("system secret is %d bytes, need at least %d", len(b), MinSecretLen)
	}
	return Secret{b: append([]byte(nil), b...)}, nil
}

// LoadSecret finds the system secret. In order:
//
//  1. envValue, the value of POSTERN_SECRET (passed in so this package reads
//     no environment);
//  2. the contents of secretFile (--secret-file);
//  3. <dataDir>/secret, generated on first use.
//
// Trailing whitespace is trimmed from every source, so the same secret gives
// the same keys whether it comes from a file ending in a newline or from the
// environment. The third source is for development only: the secret then
// lives next to the data it protects, so a copy of the data directory is
// enough to decrypt the signing keys. log may be nil.
func LoadSecret(envValue, secretFile, dataDir string, log *slog.Logger) (Secret, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if envValue != "" {
		s, err := NewSecret([]byte(strings.TrimRight(envValue, " \t\r\n")))
		if err != nil {
			return Secret{}, fmt.Errorf("POSTERN_SECRET: %w", err)
		}
		return s, nil
	}
	if secretFile != "" {
		s, err := readSecretFile(secretFile)
		if err != nil {
			return Secret{}, err
		}
		return s, nil
	}
	if dataDir == "" {
		return Secret{}, errors.New("no system secret: set POSTERN_SECRET or --secret-file")
	}

	path := filepath.Join(dataDir, secretFileName)
	s, err := readSecretFile(path)
	if err == nil {
		log.Warn("using the development system secret stored in the data directory; anyone with a copy of the data directory can decrypt the signing keys. Set POSTERN_SECRET or --secret-file in production",
			"path", path)
		if fi, statErr := os.Stat(path); statErr == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("system secret file is readable by other users", "path", path, "mode", fi.Mode().Perm().String())
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return Secret{}, err
	}

	s, created, err := generateSecretFile(dataDir, path)
	if err != nil {
		return Secret{}, err
	}
	if created {
		log.Warn("!!! GENERATED A NEW SYSTEM SECRET FOR DEVELOPMENT ONLY !!! It is stored next to the data it protects; in production set POSTERN_SECRET or --secret-file, and keep it: signing keys cannot be decrypted without it",
			"path", path)
	} else {
		// Another process generated it between our read and our write.
		log.Warn("using the development system secret stored in the data directory; set POSTERN_SECRET or --secret-file in production",
			"path", path)
	}
	return s, nil
}

func readSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("read secret file: %w", err)
	}
	s, err := NewSecret([]byte(strings.TrimRight(string(b), " \t\r\n")))
	if err != nil {
		return Secret{}, fmt.Errorf("secret file %s: %w", path, err)
	}
	return s, nil
}

// generateSecretFile writes a fresh secret to path unless one appears there
// first. The content is written to a temporary file and hard-linked into
// place, so a concurrently starting process never reads a half-written file
// and never overwrites the one that won; created reports whether ours did.
func generateSecretFile(dir, path string) (s Secret, created bool, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Secret{}, false, fmt.Errorf("generate system secret: %w", err)
	}
	text := base64.RawURLEncoding.EncodeToString(raw)

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Secret{}, false, fmt.Errorf("create data directory: %w", err)
	}
	// CreateTemp opens with mode 0600.
	tmp, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.WriteString(tmp, text+"\n"); err != nil {
		tmp.Close()
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			s, err := readSecretFile(path)
			return s, false, err
		}
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	syncDir(dir)
	return Secret{b: []byte(text)}, true, nil
}

// syncDir makes the new directory entry durable. Best effort: losing the
// file in a crash only means a new one is generated before any key is sealed
// with it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// maxDerive is the most HKDF-SHA256 can expand to (RFC 5869: 255 blocks).
const maxDerive = 255 * sha256.Size

// Derive returns n bytes of key material for one purpose. Distinct purposes
// give independent keys, so a key leaked or misused in one place (say, a
// cookie key) reveals nothing about another (the key-encryption key). The
// same secret and purpose always give the same bytes; include a version in
// the purpose so a key can be changed by changing the label.
//
// It panics if the secret is the zero value or n is not in 1..8160: both are
// programming errors, and returning predictable key material is worse.
func (s Secret) Derive(purpose string, n int) []byte {
	if len(s.b) == 0 {
		panic("keys: Derive called on an empty Secret")
	}
	if n <= 0 || n > maxDerive {
		panic(fmt.Sprintf("keys: Derive length %d out of range", n))
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(hkdf.New(sha256.New, s.b, nil, []byte(purpose)), out); err != nil {
		panic("keys: hkdf: " + err.Error()) // unreachable: n is within the HKDF limit
	}
	return out
}

func (s Secret) isZero() bool { return len(s.b) == 0 }

const redacted = "[redacted]"

// String, GoString, Format, LogValue and MarshalText keep the secret out of
// every printing and encoding path (%v, %+v, %#v, %s, %x, slog, JSON), so a
// config struct holding it can be dumped safely.
func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, redacted) }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
