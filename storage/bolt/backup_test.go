package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/postern-auth/postern/storage"
)

// TestSnapshotUnderWrites copies the store while writers keep creating
// tokens: every token created before the copy began is in it, and the copy
// passes Verify.
func TestSnapshotUnderWrites(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "postern.db"), Options{})
	defer closeTest(t, s)
	exp := time.Now().Add(time.Hour)

	var mu sync.Mutex
	var created []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sig := fmt.Sprintf("w%d-%d", w, i)
				if err := s.CreateToken(ctx, testToken(sig, "alice", exp)); err != nil {
					t.Errorf("CreateToken: %v", err)
					return
				}
				mu.Lock()
				created = append(created, sig)
				mu.Unlock()
			}
		}()
	}
	for {
		mu.Lock()
		n := len(created)
		mu.Unlock()
		if n >= 200 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	before := append([]string(nil), created...)
	mu.Unlock()

	copyPath := filepath.Join(t.TempDir(), "copy.db")
	var snap Snapshot
	err := s.Snapshot(ctx, func(sn *Snapshot) error {
		snap = *sn
		f, err := os.Create(copyPath)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := sn.WriteTo(f)
		if err == nil && n != sn.Size {
			err = fmt.Errorf("wrote %d bytes, Size said %d", n, sn.Size)
		}
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.Tokens < len(before) || snap.Newest.Kind != storage.AccessToken || snap.Newest.RequestID == "" {
		t.Errorf("snapshot says %d tokens, newest %+v; %d were created before it", snap.Tokens, snap.Newest, len(before))
	}

	rep, err := Verify(copyPath)
	if err != nil {
		t.Fatalf("Verify of a fresh copy: %v", err)
	}
	if rep.TxID != snap.TxID || rep.Records != snap.Tokens || rep.Entries < 4*snap.Tokens {
		t.Errorf("Verify report %+v does not match the snapshot (tx %d, %d tokens)", rep, snap.TxID, snap.Tokens)
	}

	c := openTest(t, copyPath, Options{SweepInterval: -1})
	defer closeTest(t, c)
	for _, sig := range before {
		if _, err := c.GetToken(ctx, storage.AccessToken, sig); err != nil {
			t.Fatalf("token %s created before the snapshot is not in the copy: %v", sig, err)
		}
	}
}

// copyOf writes a store with tokens, snapshots it and returns the copy's
// bytes and path.
func copyOf(t *testing.T) (string, []byte) {
	t.Helper()
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "postern.db"), Options{})
	exp := time.Now().Add(time.Hour)
	for i := range 300 {
		if err := s.CreateToken(ctx, testToken(fmt.Sprintf("sig-%03d", i), fmt.Sprintf("user-%d", i%7), exp)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		c := storage.Client{ID: fmt.Sprintf("app-%d", i), Owner: "dev-1", CreatedAt: exp, APIs: []string{"billing"}}
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := s.Snapshot(ctx, func(sn *Snapshot) error { _, err := sn.WriteTo(&buf); return err }); err != nil {
		t.Fatal(err)
	}
	closeTest(t, s)
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(path); err != nil {
		t.Fatalf("Verify of an intact copy: %v", err)
	}
	return path, buf.Bytes()
}

func writeVariant(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "variant.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVerifyTruncated(t *testing.T) {
	_, b := copyOf(t)
	for _, n := range []int{len(b) - 4096, len(b) / 2, 4096 * 2, 100} {
		_, err := Verify(writeVariant(t, b[:n]))
		if !errors.Is(err, ErrInconsistent) {
			t.Errorf("copy cut to %d of %d bytes: Verify = %v, want ErrInconsistent", n, len(b), err)
		}
	}
}

// TestVerifyBitFlipInIndex flips one bit of an index entry where it sits in
// the file: bbolt's checker does not read keys' meaning, Postern's does.
func TestVerifyBitFlipInIndex(t *testing.T) {
	_, b := copyOf(t)
	entry := indexKey("user-3", tokenKey(storage.AccessToken, "sig-150"))
	at := bytes.Index(b, entry)
	if at < 0 || bytes.Contains(b[at+1:], entry) {
		t.Fatalf("index entry found at %d (want exactly once)", at)
	}
	// The last byte: the signature's "0" becomes "1"; keys stay in order
	// ("sig-151" sorts after it), so only the meaning breaks.
	c := bytes.Clone(b)
	c[at+len(entry)-1] ^= 0x01
	rep, err := Verify(writeVariant(t, c))
	if !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Verify = %v, want ErrInconsistent", err)
	}
	joined := strings.Join(rep.Problems, "\n")
	if !strings.Contains(joined, "has no subjects entry") || !strings.Contains(joined, "subjects entry") {
		t.Errorf("problems do not name the subjects index:\n%s", joined)
	}
}

func TestVerifyIndexRules(t *testing.T) {
	tk := tokenKey(storage.AccessToken, "sig-010")
	for _, tc := range []struct {
		name, want string
		edit       func(tx *bbolt.Tx) error
	}{
		{"record without its grant entry", "has no grants entry", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketGrants).Delete(indexKey("req-sig-010", tk))
		}},
		{"record without its expiry entry", "has no expiry entry", func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketExpiry).Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if bytes.Equal(k[8:], tk) {
					return c.Delete()
				}
			}
			return errors.New("no expiry entry found")
		}},
		{"entry naming no token", "names no token", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketClients).Put(indexKey("client-1", tokenKey(storage.AccessToken, "gone")), nil)
		}},
		{"entry under another owner", "does not match", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketSubjects).Put(indexKey("mallory", tk), nil)
		}},
		{"undecodable record", "corrupt record", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketTokens).Put(tk, []byte{formatV1, 200})
		}},
		{"retry without its token", "names no token", func(tx *bbolt.Tx) error {
			k := tokenKey(storage.RefreshToken, "gone")
			until := time.Now().Add(time.Minute)
			if err := tx.Bucket(bucketRetry).Put(k, encodeRetry(storage.Retry{Successor: "x", Until: until})); err != nil {
				return err
			}
			return tx.Bucket(bucketRetryExp).Put(timeKey(until, k), nil)
		}},
		{"revocation that would never be swept", "has no revexp entry", func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketRevocations)
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			return b.Put(seqKey(seq), encodeRevocation(storage.Revocation{Kind: storage.RevokedSubject, ID: "alice"}))
		}},
		{"expiry entry naming no revocation", "names no revocation", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketRevExp).Put(timeKey(time.Now(), seqKey(99)), nil)
		}},
		{"client without its owner entry", "has no regowners entry", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketRegOwners).Delete(ownerKey("dev-1", "app-1"))
		}},
		{"owner entry naming no client", "names no client", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketRegOwners).Put(ownerKey("dev-1", "gone"), nil)
		}},
		{"owner entry under another owner", "does not match its client", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketRegOwners).Put(ownerKey("mallory", "app-1"), nil)
		}},
		{"client under another ID's key", "holds client", func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketRegClients)
			return b.Put(clientKey("app-2"), b.Get(clientKey("app-1")))
		}},
		{"undecodable client", "regclients", func(tx *bbolt.Tx) error {
			return tx.Bucket(bucketRegClients).Put(clientKey("app-1"), []byte{formatV1, 200})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := copyOf(t)
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tc.edit); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(path)
			if !errors.Is(err, ErrInconsistent) {
				t.Fatalf("Verify = %v, want ErrInconsistent", err)
			}
			if joined := strings.Join(rep.Problems, "\n"); !strings.Contains(joined, tc.want) {
				t.Errorf("problems do not say %q:\n%s", tc.want, joined)
			}
		})
	}
}

func TestVerifyLiveStoreIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "postern.db")
	s := openTest(t, path, Options{})
	defer closeTest(t, s)
	if _, err := Verify(path); !errors.Is(err, storage.ErrLocked) {
		t.Errorf("Verify of a store in use = %v, want ErrLocked", err)
	}
}

// DeleteClient leaves nothing behind that the conformance suite cannot
// see: no index entry, retry or owner entry of what it removed. The
// closed file, with the client's tokens of every kind and a retry gone,
// passes Verify.
func TestDeleteClientLeavesConsistentFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "postern.db")
	s := openTest(t, path, Options{})
	exp := time.Now().Add(time.Hour)
	if err := s.CreateClient(ctx, storage.Client{ID: "app", Owner: "dev", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []storage.Kind{storage.AccessToken, storage.RefreshToken, storage.AuthorizationCode, storage.PKCE, storage.OpenIDSession} {
		tk := testToken("sig-"+string(kind), "alice", exp)
		tk.Kind, tk.ClientID = kind, "app"
		if err := s.CreateToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	next := testToken("rt-2", "alice", exp)
	next.Kind, next.ClientID = storage.RefreshToken, "app"
	if _, err := s.Redeem(ctx, storage.RefreshToken, "sig-refresh", []storage.Token{next},
		&storage.Retry{Successor: "rt-2", Until: exp, Sealed: []byte("answer")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteClient(ctx, "app"); err != nil || n != 6 {
		t.Fatalf("DeleteClient = %d, %v; want 6", n, err)
	}
	closeTest(t, s)
	rep, err := Verify(path)
	if err != nil {
		t.Fatalf("Verify after DeleteClient: %v\n%s", err, strings.Join(rep.Problems, "\n"))
	}
	err = func() error {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
		if err != nil {
			return err
		}
		defer db.Close()
		return db.View(func(tx *bbolt.Tx) error {
			for _, name := range [][]byte{bucketTokens, bucketRetry, bucketRegClients, bucketRegOwners} {
				if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
					return fmt.Errorf("bucket %s still holds %x", name, k)
				}
			}
			return nil
		})
	}()
	if err != nil {
		t.Error(err)
	}
}
