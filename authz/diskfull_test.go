package authz

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/storage"
)

// errDiskFull is a write failure as a backend reports a full disk (bolt:
// ENOSPC from a page write, wrapped in storage.ErrNoSpace).
var errDiskFull = fmt.Errorf("%w: %w", storage.ErrNoSpace, &fs.PathError{Op: "write", Path: "postern.db", Err: syscall.ENOSPC})

// syncBuffer is a log sink the server may write to from any goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDiskFullTokenRequests: with the store's disk full every grant is
// answered 503 temporarily_unavailable with Retry-After, each refusal is
// counted in /metrics, the log says so once per interval rather than once
// per request, and when space returns the very same requests succeed: the
// failed ones used up nothing.
func TestDiskFullTokenRequests(t *testing.T) {
	var logs syncBuffer
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	e := newOutcomeEnv(t, identity.ThrottleOptions{}, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	rt := e.signIn(t)
	code := e.issueCode(t)
	requests := []struct {
		grant  string
		form   url.Values
		client string
	}{
		{"client_credentials", url.Values{"grant_type": {"client_credentials"}}, "billing"},
		{"password", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}}, "mobile"},
		{"refresh_token", refreshForm(rt), "mobile"},
		{"authorization_code", codeForm(code), "webapp"},
	}

	e.store.failWrites(errDiskFull)
	for round := range 2 {
		for _, r := range requests {
			rec := e.post(r.form, r.client)
			if b := decodeToken(t, rec); rec.Code != http.StatusServiceUnavailable || b.Error != "temporarily_unavailable" {
				t.Errorf("%s on a full disk (round %d): %d %q (%s), want 503 temporarily_unavailable", r.grant, round, rec.Code, b.Error, b.Description)
			}
			if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("%s on a full disk: Retry-After %q", r.grant, rec.Header().Get("Retry-After"))
			}
		}
	}
	if got, want := storeUnavailableCount(t, e.srv, "no_space"), 2*len(requests); got != want {
		t.Errorf("postern_storage_unavailable_total{reason=\"no_space\"} = %d, want %d", got, want)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d log lines about the full disk for %d refusals within one interval, want 1:\n%s", n, 2*len(requests), logs.String())
	}
	clock.Add(int64(storeAlarmInterval))
	e.post(requests[0].form, requests[0].client)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 2 {
		t.Errorf("%d log lines about the full disk after the interval, want 2", n)
	}

	e.store.failWrites(nil)
	for _, r := range requests {
		if rec := e.post(r.form, r.client); rec.Code != http.StatusOK {
			t.Errorf("%s once space returned: %d %s", r.grant, rec.Code, rec.Body)
		}
	}
}

var unavailableMetric = regexp.MustCompile(`(?m)^postern_storage_unavailable_total\{reason="([a-z_]+)"\} (\d+)$`)

func storeUnavailableCount(t *testing.T, srv *Server, reason string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, m := range unavailableMetric.FindAllStringSubmatch(rec.Body.String(), -1) {
		if m[1] == reason {
			n, _ := strconv.Atoi(m[2])
			return n
		}
	}
	return 0
}
