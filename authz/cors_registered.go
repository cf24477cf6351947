package authz

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// A SPA registered at runtime (portal, RFC 7591) needs CORS as much as a
// configured one, but a request names an origin, not a client, so the
// origins of every registered public client are kept in memory and
// reloaded from the store now and then. Reloading is lazy and bounded:
//
//   - an origin not in the set reloads it when the set is older than
//     originsMissAge, so a SPA registered on another replica works within
//     that time, and a flood of foreign origins costs at most one scan per
//     originsMissAge;
//   - an origin in the set reloads it when older than originsHitAge, so a
//     client deleted on another replica loses CORS too, without a scan
//     every two seconds while its page is busy;
//   - a change made through this process (changed) makes the next lookup
//     reload, whatever the age;
//   - while one reload runs, other lookups answer from the old set rather
//     than queue behind it.
//
// A failed reload keeps the old set: a store outage never opens CORS to
// anyone new, and the origins of clients deleted meanwhile stay until the
// store is back.

const (
	originsMissAge = 2 * time.Second
	originsHitAge  = time.Minute
	// originsLoadTimeout bounds one scan; it runs on behalf of whichever
	// request found the set stale, and must not end with that request.
	originsLoadTimeout = 10 * time.Second
)

// clientLister is what registeredOrigins needs of the store.
type clientLister interface {
	AllClients(ctx context.Context) ([]storage.Client, error)
}

// registeredOrigins is the set of web origins of registered public clients'
// redirect URIs.
type registeredOrigins struct {
	store clientLister
	// config hides a registered client of the same ID: the configuration
	// wins on a clash, so such a registration gives no origin.
	config map[string]*clients.Client
	log    *slog.Logger
	now    func() time.Time

	load sync.Mutex // held by the one reload that runs

	mu        sync.Mutex // guards what follows
	set       map[string]bool
	loadedAt  time.Time // when the last reload started; zero: never
	gen       uint64    // bumped by changed
	loadedGen uint64    // gen when the last reload started
	failing   bool      // the last reload failed (logged once per outage)
}

func newRegisteredOrigins(store clientLister, config map[string]*clients.Client, log *slog.Logger, now func() time.Time) *registeredOrigins {
	return &registeredOrigins{store: store, config: config, log: log, now: now}
}

// allowed reports whether origin (lowercased) is a registered public
// client's, reloading the set first when it is stale for this answer.
func (o *registeredOrigins) allowed(ctx context.Context, origin string) bool {
	o.mu.Lock()
	in := o.set[origin]
	stale := o.staleLocked(in)
	o.mu.Unlock()
	if !stale || !o.load.TryLock() {
		return in
	}
	o.reload(ctx)
	o.load.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.set[origin]
}

func (o *registeredOrigins) staleLocked(in bool) bool {
	if o.loadedAt.IsZero() || o.gen != o.loadedGen {
		return true
	}
	maxAge := originsMissAge
	if in {
		maxAge = originsHitAge
	}
	return o.now().Sub(o.loadedAt) >= maxAge
}

// changed says a registered client was created, deleted or given new
// redirect URIs through this process: the next lookup reloads. A reload
// already running may have read the store before the change, so it does
// not count. (Rotating a secret or subscribing changes no origin.)
func (o *registeredOrigins) changed() {
	o.mu.Lock()
	o.gen++
	o.mu.Unlock()
}

// reload scans the store; the caller holds o.load. The start time and
// generation are taken before the scan, so a change committed during it
// makes the set stale again.
func (o *registeredOrigins) reload(ctx context.Context) {
	o.mu.Lock()
	started, gen := o.now(), o.gen
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), originsLoadTimeout)
	defer cancel()
	recs, err := o.store.AllClients(ctx)
	var set map[string]bool
	if err == nil {
		set = o.originsOf(ctx, recs)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	// A failure counts as a reload for the age, so a store outage costs
	// one scan per originsMissAge, not one per request.
	o.loadedAt, o.loadedGen = started, gen
	switch {
	case err != nil && !o.failing:
		o.failing = true
		o.log.ErrorContext(ctx, "CORS origins of registered clients not reloaded; keeping the previous ones until the store answers", "err", err)
	case err == nil && o.failing:
		o.failing = false
		o.log.InfoContext(ctx, "CORS origins of registered clients reloaded again")
	}
	if err == nil {
		o.set = set
	}
}

// originsOf is the web origins of the public clients among recs. A
// registration that does not decode gives none (the directory refuses it
// as a client too) and is logged.
func (o *registeredOrigins) originsOf(ctx context.Context, recs []storage.Client) map[string]bool {
	set := map[string]bool{}
	for _, rec := range recs {
		if _, hidden := o.config[rec.ID]; hidden {
			continue
		}
		reg, err := clients.DecodeRegistration(rec.Data)
		if err != nil {
			o.log.WarnContext(ctx, "registered client skipped for CORS", "client_id", rec.ID, "err", err)
			continue
		}
		if reg.AuthMethod == clients.AuthNone {
			addWebOrigins(set, reg.RedirectURIs)
		}
	}
	return set
}
