package postgres

import (
	"math"
	"time"
)

// bin is a string stored as bytea (see the package documentation): pgx
// sends and reads it through the bytes interfaces, so no text conversion
// touches it. Use (*bin)(&s) to scan into a string field.
type bin string

func (b bin) BytesValue() ([]byte, error) { return []byte(b), nil }

func (b *bin) ScanBytes(v []byte) error {
	*b = bin(v) // copies: v is only valid during the call
	return nil
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// nanos is t in Unix nanoseconds, clamped to what an int64 holds (years
// 1678 to 2262), which keeps order for every instant the server deals in;
// the zero time sorts first.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// optNanos is nanos with NULL for the zero time, for fields where zero
// means "not set" and must come back as zero.
func optNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := nanos(t)
	return &n
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromOptNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return fromNanos(*n)
}
