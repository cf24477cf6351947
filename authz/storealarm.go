package authz

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-auth/postern/storage"
)

// storeAlarmInterval is the least time between two log lines about the same
// store trouble. A full disk or a database that is down fails every request
// until someone acts; one line per interval (with a count of the refusals in
// between) says so without burying the rest of the log.
const storeAlarmInterval = 30 * time.Second

// storeAlarm reports requests refused because the store could not answer
// or write (storage.ErrUnavailable): each is counted in
// postern_storage_unavailable_total by reason, and logged at most once per
// storeAlarmInterval per reason.
type storeAlarm struct {
	log   *slog.Logger
	count *prometheus.CounterVec
	now   func() time.Time

	mu     sync.Mutex
	last   map[string]time.Time // reason → when it was last logged
	hushed map[string]int       // reason → refusals since then, not logged
}

func newStoreAlarm(log *slog.Logger, count *prometheus.CounterVec, now func() time.Time) *storeAlarm {
	return &storeAlarm{log: log, count: count, now: now, last: map[string]time.Time{}, hushed: map[string]int{}}
}

// report records that endpoint refused a request because of err, which
// wraps storage.ErrUnavailable.
func (a *storeAlarm) report(endpoint string, err error) {
	reason, msg := "unavailable", "store unavailable: requests that need it are answered 503 temporarily_unavailable until it answers again"
	if errors.Is(err, storage.ErrNoSpace) {
		reason, msg = "no_space", "store cannot write, no space left on its disk: requests that write are answered 503 temporarily_unavailable until space returns"
	}
	a.count.WithLabelValues(reason).Inc()
	now := a.now()
	a.mu.Lock()
	if last, ok := a.last[reason]; ok && now.Sub(last) < storeAlarmInterval {
		a.hushed[reason]++
		a.mu.Unlock()
		return
	}
	hushed := a.hushed[reason]
	a.last[reason], a.hushed[reason] = now, 0
	a.mu.Unlock()
	a.log.Error(msg, "endpoint", endpoint, "error", storeCause(err).Error(), "refusals_not_logged", hushed)
}

// storeCause is what the store said, without fosite's wrapping around it
// (a fosite error prints as its bare code).
func storeCause(err error) error {
	for {
		var rfc *fosite.RFC6749Error
		if !errors.As(err, &rfc) || rfc.Unwrap() == nil {
			return err
		}
		err = rfc.Unwrap()
	}
}
