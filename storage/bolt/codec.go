package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/postern-auth/postern/storage"
)

// Values use a small hand-rolled binary format rather than JSON: Token.Data
// is most of every record and JSON would base64 it (a third larger) and go
// through reflection on the hottest path (see BenchmarkCodec). Each value
// starts with a format byte so that a later layout can be told apart from
// this one without migrating the file in one go.
const formatV1 byte = 1

var errCorrupt = errors.New("corrupt record")

type encoder struct{ buf []byte }

func (e *encoder) uvarint(v uint64) { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *encoder) string(s string)  { e.uvarint(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *encoder) bool(b bool)      { e.buf = append(e.buf, boolByte(b)) }
func (e *encoder) time(t time.Time) {
	// Seconds and nanoseconds rather than UnixNano, which cannot represent
	// the zero time that Key.RetireAt uses for "not retiring".
	e.buf = binary.AppendVarint(e.buf, t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// decoder reads what encoder wrote. It copies everything out, because bbolt
// values point into the memory map and are only valid inside the transaction.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.buf = nil
}

func (d *decoder) byte() byte {
	if len(d.buf) == 0 {
		d.fail()
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) raw() []byte {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail()
		return nil
	}
	b := d.buf[:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) bytes() []byte {
	b := d.raw()
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) version() {
	if v := d.byte(); v != formatV1 && d.err == nil {
		d.err = fmt.Errorf("unknown record format %d", v)
	}
}

func (d *decoder) finish() error {
	if d.err == nil && len(d.buf) != 0 {
		d.err = errCorrupt
	}
	return d.err
}

// encodeToken leaves out Kind and Signature: they are the record's key.
func encodeToken(t storage.Token) []byte {
	e := encoder{buf: make([]byte, 0, 32+len(t.RequestID)+len(t.ClientID)+len(t.Subject)+len(t.Data))}
	e.buf = append(e.buf, formatV1)
	e.string(t.RequestID)
	e.string(t.ClientID)
	e.string(t.Subject)
	e.time(t.CreatedAt)
	e.time(t.ExpiresAt)
	e.bool(t.Active)
	e.bytes(t.Data)
	return e.buf
}

func decodeToken(key, val []byte) (storage.Token, error) {
	kind, sig, err := parseTokenKey(key)
	if err != nil {
		return storage.Token{}, err
	}
	d := decoder{buf: val}
	d.version()
	t := storage.Token{
		Kind:      kind,
		Signature: sig,
		RequestID: d.string(),
		ClientID:  d.string(),
		Subject:   d.string(),
		CreatedAt: d.time(),
		ExpiresAt: d.time(),
		Active:    d.bool(),
		Data:      d.bytes(),
	}
	if err := d.finish(); err != nil {
		return storage.Token{}, fmt.Errorf("token %s: %w", kind, err)
	}
	return t, nil
}

func encodeRetry(r storage.Retry) []byte {
	e := encoder{buf: make([]byte, 0, 24+len(r.Successor)+len(r.Sealed))}
	e.buf = append(e.buf, formatV1)
	e.string(r.Successor)
	e.time(r.Until)
	e.bytes(r.Sealed)
	return e.buf
}

func decodeRetry(val []byte) (storage.Retry, error) {
	d := decoder{buf: val}
	d.version()
	r := storage.Retry{Successor: d.string(), Until: d.time(), Sealed: d.bytes()}
	if err := d.finish(); err != nil {
		return storage.Retry{}, fmt.Errorf("retry: %w", err)
	}
	return r, nil
}

func encodeRevocation(r storage.Revocation) []byte {
	e := encoder{buf: make([]byte, 0, 40+len(r.ID)+len(r.Subject)+len(r.ClientID))}
	e.buf = append(e.buf, formatV1)
	e.time(r.Time)
	e.string(string(r.Kind))
	e.string(r.ID)
	e.string(r.Subject)
	e.string(r.ClientID)
	e.time(r.Until)
	return e.buf
}

func decodeRevocation(seq uint64, val []byte) (storage.Revocation, error) {
	d := decoder{buf: val}
	d.version()
	r := storage.Revocation{Seq: seq, Time: d.time(), Kind: storage.RevocationKind(d.string()), ID: d.string(),
		Subject: d.string(), ClientID: d.string(), Until: d.time()}
	if err := d.finish(); err != nil {
		return storage.Revocation{}, fmt.Errorf("revocation %d: %w", seq, err)
	}
	return r, nil
}

func encodeKey(k storage.Key) []byte {
	e := encoder{buf: []byte{formatV1}}
	e.string(k.ID)
	e.string(k.Algorithm)
	e.time(k.CreatedAt)
	e.time(k.RetireAt)
	e.bool(k.Active)
	e.bytes(k.Public)
	e.bytes(k.Private)
	return e.buf
}

func decodeKey(val []byte) (storage.Key, error) {
	d := decoder{buf: val}
	d.version()
	k := storage.Key{
		ID:        d.string(),
		Algorithm: d.string(),
		CreatedAt: d.time(),
		RetireAt:  d.time(),
		Active:    d.bool(),
		Public:    d.bytes(),
		Private:   d.bytes(),
	}
	if err := d.finish(); err != nil {
		return storage.Key{}, fmt.Errorf("key: %w", err)
	}
	return k, nil
}

func encodeEvent(ev storage.Event) []byte {
	e := encoder{buf: []byte{formatV1}}
	for _, s := range []string{ev.ID, ev.Type, ev.Subject, ev.ClientID, ev.RequestID, ev.IP, ev.UserAgent, ev.Detail} {
		e.string(s)
	}
	e.time(ev.Time)
	return e.buf
}

func decodeEvent(val []byte) (storage.Event, error) {
	d := decoder{buf: val}
	d.version()
	ev := storage.Event{
		ID:        d.string(),
		Type:      d.string(),
		Subject:   d.string(),
		ClientID:  d.string(),
		RequestID: d.string(),
		IP:        d.string(),
		UserAgent: d.string(),
		Detail:    d.string(),
		Time:      d.time(),
	}
	if err := d.finish(); err != nil {
		return storage.Event{}, fmt.Errorf("event: %w", err)
	}
	return ev, nil
}

// Keys are built from length-prefixed parts. Subjects, client and request IDs
// come from outside; with a plain separator, subject "alice\x00x" would sort
// inside alice's prefix range and a listing for alice would pick up its
// tokens. A uvarint length is self-delimiting, so lp(a) is a prefix of
// lp(b)+... only if a == b.
func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func lp(s string) []byte { return appendLP(make([]byte, 0, binary.MaxVarintLen64+len(s)), s) }

// tokenKey is lp(kind) + signature.
func tokenKey(kind storage.Kind, sig string) []byte {
	return append(appendLP(make([]byte, 0, 1+len(kind)+len(sig)), string(kind)), sig...)
}

func parseTokenKey(k []byte) (storage.Kind, string, error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return "", "", fmt.Errorf("token key: %w", errCorrupt)
	}
	return kindOf(k[w : w+int(n)]), string(k[w+int(n):]), nil
}

// kindOf returns the known kinds without allocating: listings decode
// thousands of keys.
func kindOf(b []byte) storage.Kind {
	switch string(b) {
	case string(storage.AccessToken):
		return storage.AccessToken
	case string(storage.RefreshToken):
		return storage.RefreshToken
	case string(storage.AuthorizationCode):
		return storage.AuthorizationCode
	case string(storage.PKCE):
		return storage.PKCE
	}
	return storage.Kind(b)
}

// indexKey is lp(owner) + tail, so that a Seek on lp(owner) lists an owner.
func indexKey(owner string, tail []byte) []byte {
	return append(appendLP(make([]byte, 0, binary.MaxVarintLen64+len(owner)+len(tail)), owner), tail...)
}

var maxNanoTime = time.Unix(0, math.MaxInt64)

// sortNanos is t as big-endian-sortable unix nanoseconds, clamped to
// [1970, 2262]. Clamping keeps order for every instant the server deals in;
// the zero time sorts first, which is what "no expiry set" deserves.
func sortNanos(t time.Time) uint64 {
	switch {
	case t.Before(time.Unix(0, 0)):
		return 0
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return uint64(t.UnixNano())
}

// timeKey is the 8-byte sortable time followed by tail.
func timeKey(t time.Time, tail []byte) []byte {
	k := make([]byte, 8, 8+len(tail))
	binary.BigEndian.PutUint64(k, sortNanos(t))
	return append(k, tail...)
}
