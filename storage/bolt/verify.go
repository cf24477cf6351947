package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/postern-auth/postern/storage"
)

// ErrInconsistent is wrapped by Verify's error when the file opened but
// something in it is wrong; any other error means it could not be read.
var ErrInconsistent = errors.New("store file is inconsistent")

// maxProblems bounds what a report lists: one broken page can break
// thousands of entries, and the first few say what happened.
const maxProblems = 20

// Report is what Verify found.
type Report struct {
	TxID    int   // the transaction the file shows
	Size    int64 // bytes the file's metadata accounts for
	Records int   // records decoded
	Entries int   // index entries checked
	// Problems lists the first maxProblems problems; Missed counts the rest.
	Problems []string
	Missed   int
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		return
	}
	r.Missed++
}

// check is one of Postern's consistency rules over a read transaction. A
// bucket that gets an index gets a check, added to checks.
type check struct {
	name string
	run  func(tx *bbolt.Tx, r *Report)
}

func checks() []check {
	return []check{
		{"token records and their grant, subject, client and expiry entries", checkTokenRecords},
		{"token index entries name a token that has them", checkTokenEntries},
		{"retries and their expiry entries", checkRetries},
		{"revocation events and their expiry entries", checkRevocations},
		{"registered clients and their owner entries", checkClients},
	}
}

// Verify opens the bbolt file at path read-only and checks it: bbolt's own
// consistency (Tx.Check: every page reachable or free, exactly once, keys in
// order) and then Postern's (every record decodes, every record has its
// index entries, every index entry names a record that has it). It is meant
// for copies (postern backup): a running server holds the file's lock and
// Verify gives up after a second. The error wraps ErrInconsistent when the
// file was read and found wrong.
//
// bbolt's checker stops on some damage (a page that names the wrong id)
// with a panic on a goroutine of its own, which no caller can recover;
// a program that must outlive a damaged file runs Verify in a child
// process, as postern backup --verify does.
func Verify(path string) (rep Report, err error) {
	// A file cut short is mapped past its end; touching that memory is a
	// fault, which this turns into a panic recovered below rather than a
	// crash of the whole process. (Pages bbolt's own checker walks on its
	// goroutine are covered by the size check before it runs.)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			msg := fmt.Sprintf("reading the file failed: %v", p)
			rep.problem("%s", msg)
			err = fmt.Errorf("verify %s: %w: %s", path, ErrInconsistent, msg)
		}
	}()

	fi, err := os.Stat(path)
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return rep, fmt.Errorf("verify %s: %w: empty file", path, ErrInconsistent)
	}
	// First only the meta pages: a file cut short is told as such before
	// anything reads the pages it lost (the freelist among them).
	db, err := openReadOnly(path, false)
	if err != nil {
		return rep, err
	}
	err = db.View(func(tx *bbolt.Tx) error {
		rep.TxID, rep.Size = tx.ID(), tx.Size()
		return nil
	})
	db.Close()
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", path, err)
	}
	if rep.Size > fi.Size() {
		rep.problem("file is %d bytes but its metadata accounts for %d: it was cut short", fi.Size(), rep.Size)
		return rep, fmt.Errorf("verify %s: %w: %s", path, ErrInconsistent, rep.Problems[0])
	}

	// The freelist loaded at open, here, rather than in the checker's
	// goroutine: scanPages needs it, and a fault in it is recovered.
	if db, err = openReadOnly(path, true); err != nil {
		return rep, err
	}
	defer db.Close()
	err = db.View(func(tx *bbolt.Tx) error {
		if scanPages(tx, &rep); len(rep.Problems) > 0 {
			// bbolt's checker trusts page headers and would loop over a
			// bogus overflow count or read past the map.
			return nil
		}
		for err := range tx.Check() {
			rep.problem("bbolt: %v", err)
		}
		if len(rep.Problems) > 0 {
			// Postern's checks would walk the same broken pages.
			return nil
		}
		if err := checkSchema(tx); err != nil {
			rep.problem("%v", err)
			return nil
		}
		for _, c := range checks() {
			c.run(tx, &rep)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify %s: %w", path, err)
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("verify %s: %w: %d problems, first: %s", path, ErrInconsistent, len(rep.Problems)+rep.Missed, rep.Problems[0])
	}
	return rep, nil
}

// pageElementSize is the size of a branch or leaf element in bbolt's page
// format, as is the page header.
const pageElementSize, pageHeaderSize = 16, 16

// scanPages walks the file's pages in order, before bbolt's checker does,
// on this goroutine (where a fault is recovered): every page that is not
// free must start a run of pages with a known type whose overflow stays
// below the high-water mark and whose elements fit in the run.
func scanPages(tx *bbolt.Tx, r *Report) {
	pageSize := tx.DB().Info().PageSize
	for id := 2; ; {
		p, err := tx.Page(id)
		if err != nil {
			r.problem("page %d: %v", id, err)
			return
		}
		if p == nil {
			return // past the high-water mark
		}
		switch p.Type {
		case "free":
			id++
			continue
		case "branch", "leaf":
			if room := (p.OverflowCount+1)*pageSize - pageHeaderSize; p.Count*pageElementSize > room {
				r.problem("page %d: %d elements do not fit in %d bytes", id, p.Count, room)
				return
			}
		case "freelist":
		default:
			r.problem("page %d: unknown page type %s", id, p.Type)
			return
		}
		if int64(id+p.OverflowCount+1)*int64(pageSize) > tx.Size() {
			r.problem("page %d: %d overflow pages run past the end of the data", id, p.OverflowCount)
			return
		}
		id += p.OverflowCount + 1
	}
}

func openReadOnly(path string, freelist bool) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o400, &bbolt.Options{ReadOnly: true, Timeout: defaultTimeout, PreLoadFreelist: freelist})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("verify %s: %w (a running postern holds it; verify a copy from postern backup)", path, storage.ErrLocked)
	case err != nil:
		return nil, fmt.Errorf("verify %s: %w: %w", path, ErrInconsistent, err)
	}
	return db, nil
}

func checkSchema(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketTokens, bucketGrants, bucketSubjects, bucketClients, bucketExpiry} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bucket %s is missing: not a postern store", name)
		}
	}
	if v := tx.Bucket(bucketMeta).Get(metaSchema); len(v) != 1 || v[0] != schemaVersion {
		return fmt.Errorf("schema version %v, want %d", v, schemaVersion)
	}
	return nil
}

// has reports whether b holds key k (index entries have empty values, so a
// Get cannot tell them from absent ones).
func has(b *bbolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return bytes.Equal(got, k)
}

func bucketName(b tokenBuckets, bk *bbolt.Bucket) string {
	switch bk {
	case b.grants:
		return string(bucketGrants)
	case b.subjects:
		return string(bucketSubjects)
	case b.clients:
		return string(bucketClients)
	case b.expiry:
		return string(bucketExpiry)
	}
	return "?"
}

func checkTokenRecords(tx *bbolt.Tx, r *Report) {
	b := openTokenBuckets(tx)
	_ = b.tokens.ForEach(func(k, v []byte) error {
		t, err := decodeToken(k, v)
		if err != nil {
			r.problem("tokens %x: %v", k, err)
			return nil
		}
		r.Records++
		_ = b.index(k, t, func(bk *bbolt.Bucket, entry []byte) error {
			if !has(bk, entry) {
				r.problem("%s token of grant %q has no %s entry", t.Kind, t.RequestID, bucketName(b, bk))
			}
			return nil
		})
		return nil
	})
}

// checkTokenEntries walks each index and asks the record an entry names
// for its own entries (tokenBuckets.index, the writer's list), so that this
// check and the writer cannot disagree on what a token's entries are.
func checkTokenEntries(tx *bbolt.Tx, r *Report) {
	b := openTokenBuckets(tx)
	for _, idx := range []struct {
		bucket *bbolt.Bucket
		key    func(entry []byte) ([]byte, bool) // the token key inside an entry
	}{
		{b.grants, afterLP}, {b.subjects, afterLP}, {b.clients, afterLP}, {b.expiry, afterTime},
	} {
		name := bucketName(b, idx.bucket)
		_ = idx.bucket.ForEach(func(entry, _ []byte) error {
			r.Entries++
			key, ok := idx.key(entry)
			if !ok {
				r.problem("%s entry %x is malformed", name, entry)
				return nil
			}
			v := b.tokens.Get(key)
			if v == nil {
				r.problem("%s entry %x names no token", name, entry)
				return nil
			}
			t, err := decodeToken(key, v)
			if err != nil {
				return nil // reported by checkTokenRecords
			}
			found := false
			_ = b.index(key, t, func(bk *bbolt.Bucket, want []byte) error {
				found = found || (bk == idx.bucket && bytes.Equal(want, entry))
				return nil
			})
			if !found {
				r.problem("%s entry %x does not match its %s token (grant %q)", name, entry, t.Kind, t.RequestID)
			}
			return nil
		})
	}
}

func checkRetries(tx *bbolt.Tx, r *Report) {
	b := openTokenBuckets(tx)
	if b.retry == nil || b.retryExp == nil {
		return // a file from before the refresh retry window
	}
	_ = b.retry.ForEach(func(k, v []byte) error {
		rt, err := decodeRetry(v)
		if err != nil {
			r.problem("retry %x: %v", k, err)
			return nil
		}
		r.Records++
		if b.tokens.Get(k) == nil {
			r.problem("retry %x names no token", k)
		}
		if !has(b.retryExp, timeKey(rt.Until, k)) {
			r.problem("retry %x has no retryexp entry", k)
		}
		return nil
	})
	_ = b.retryExp.ForEach(func(entry, _ []byte) error {
		r.Entries++
		key, ok := afterTime(entry)
		if !ok {
			r.problem("retryexp entry %x is malformed", entry)
			return nil
		}
		v := b.retry.Get(key)
		if v == nil {
			r.problem("retryexp entry %x names no retry", entry)
			return nil
		}
		if rt, err := decodeRetry(v); err == nil && !bytes.Equal(timeKey(rt.Until, key), entry) {
			r.problem("retryexp entry %x does not match its retry", entry)
		}
		return nil
	})
}

func checkRevocations(tx *bbolt.Tx, r *Report) {
	revs, exp := tx.Bucket(bucketRevocations), tx.Bucket(bucketRevExp)
	if revs == nil || exp == nil {
		return // a file from before the revocation feed
	}
	swept := map[string]bool{} // seqs that have an expiry entry
	_ = exp.ForEach(func(entry, _ []byte) error {
		r.Entries++
		seq, ok := afterTime(entry)
		if !ok || len(seq) != 8 {
			r.problem("revexp entry %x is malformed", entry)
			return nil
		}
		if revs.Get(seq) == nil {
			r.problem("revexp entry %x names no revocation", entry)
		}
		swept[string(seq)] = true
		return nil
	})
	head := revs.Sequence()
	_ = revs.ForEach(func(k, v []byte) error {
		r.Records++
		if len(k) != 8 {
			r.problem("revocation key %x is malformed", k)
			return nil
		}
		seq := binary.BigEndian.Uint64(k)
		if _, err := decodeRevocation(seq, v); err != nil {
			r.problem("revocation %d: %v", seq, err)
		}
		if seq > head {
			r.problem("revocation %d is beyond the sequence's head %d", seq, head)
		}
		if !swept[string(k)] {
			r.problem("revocation %d has no revexp entry (it would never be swept)", seq)
		}
		return nil
	})
	if v := tx.Bucket(bucketMeta).Get(metaRevFloor); v != nil && (len(v) != 8 || binary.BigEndian.Uint64(v) > head) {
		r.problem("the revocation floor %x is malformed or beyond the head %d", v, head)
	}
}

func checkClients(tx *bbolt.Tx, r *Report) {
	clients, owners := tx.Bucket(bucketRegClients), tx.Bucket(bucketRegOwners)
	if clients == nil || owners == nil {
		return // a file from before the developer portal
	}
	_ = clients.ForEach(func(k, v []byte) error {
		c, err := decodeClient(v)
		if err != nil {
			r.problem("regclients %x: %v", k, err)
			return nil
		}
		r.Records++
		if !bytes.Equal(k, clientKey(c.ID)) {
			r.problem("regclients %x holds client %q", k, c.ID)
		}
		if !has(owners, ownerKey(c.Owner, c.ID)) {
			r.problem("client %q has no regowners entry", c.ID)
		}
		return nil
	})
	_ = owners.ForEach(func(entry, _ []byte) error {
		r.Entries++
		id, ok := afterLP(entry)
		if !ok {
			r.problem("regowners entry %x is malformed", entry)
			return nil
		}
		v := clients.Get(clientKey(string(id)))
		if v == nil {
			r.problem("regowners entry %x names no client", entry)
			return nil
		}
		if c, err := decodeClient(v); err == nil && !bytes.Equal(ownerKey(c.Owner, c.ID), entry) {
			r.problem("regowners entry %x does not match its client (owner %q)", entry, c.Owner)
		}
		return nil
	})
}

// afterLP is the rest of an lp(owner) + tail key.
func afterLP(entry []byte) ([]byte, bool) {
	n, w := binary.Uvarint(entry)
	if w <= 0 || n > uint64(len(entry)-w) {
		return nil, false
	}
	return entry[w+int(n):], true
}

// afterTime is the rest of a timeKey.
func afterTime(entry []byte) ([]byte, bool) {
	if len(entry) < 8 {
		return nil, false
	}
	return entry[8:], true
}
