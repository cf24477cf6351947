package authz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ory/fosite"

	"github.com/postern-auth/postern/catalog"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// clientDirectory finds a client by ID in its two sources: the
// configuration's clients first (read-only, and they win on an ID clash),
// then the runtime registrations in the store (portal, RFC 7591).
//
// A registration is read from the store on every lookup, never served from
// memory alone: on PostgreSQL another replica may have deleted the app or
// rotated its secret a moment ago. Only the decoding is cached, keyed by
// the stored bytes.
type clientDirectory struct {
	config    map[string]*clients.Client
	store     storage.Store
	apis      APIGrants
	lifetimes clients.Lifetimes
	now       func() time.Time

	mu      sync.Mutex
	decoded map[string]decodedClient
}

// APIGrants says what subscribing to catalogue APIs gives a client: the
// scopes it may then request and its rate-limit tier; the catalogue
// implements it.
type APIGrants interface {
	Grants(apis []string) (scopes []string, tier string)
}

// catalogGrants answers APIGrants from the catalogue: an API's scopes, and
// the tier of the first subscribed API that names one.
type catalogGrants struct{ c *catalog.Catalog }

func (g catalogGrants) Grants(apis []string) (scopes []string, tier string) {
	for _, id := range apis {
		api, ok := g.c.API(id)
		if !ok {
			continue // removed from the configuration: it gives nothing now
		}
		for _, sc := range api.Scopes {
			scopes = append(scopes, sc.Name)
		}
		if tier == "" {
			tier = api.Tier
		}
	}
	return scopes, tier
}

type decodedClient struct {
	data []byte
	reg  clients.Registration
}

// maxDecodedClients bounds the decode cache; when full it starts over.
const maxDecodedClients = 4096

// errUnknownClient: no client of that ID in either source.
var errUnknownClient = errors.New("unknown client")

func newClientDirectory(config map[string]*clients.Client, store storage.Store, apis APIGrants, lt clients.Lifetimes, now func() time.Time) *clientDirectory {
	return &clientDirectory{config: config, store: store, apis: apis, lifetimes: lt, now: now, decoded: map[string]decodedClient{}}
}

// get returns the client, errUnknownClient, or the store's error (an
// unavailable store is not an unknown client).
func (d *clientDirectory) get(ctx context.Context, id string) (*clients.Client, error) {
	if c, ok := d.config[id]; ok {
		return c, nil
	}
	if id == "" || len(id) > 128 {
		return nil, errUnknownClient
	}
	rec, err := d.store.GetClient(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, errUnknownClient
	case err != nil:
		return nil, fmt.Errorf("look up client %q: %w", id, err)
	}
	return d.runtime(rec)
}

// runtime builds the Client of a stored registration.
func (d *clientDirectory) runtime(rec storage.Client) (*clients.Client, error) {
	reg, err := d.decode(rec)
	if err != nil {
		return nil, err
	}
	var scopes []string
	var tier string
	if d.apis != nil {
		scopes, tier = d.apis.Grants(rec.APIs)
	}
	return reg.Runtime(rec.ID, rec.Owner, scopes, tier, d.lifetimes, d.now()), nil
}

func (d *clientDirectory) decode(rec storage.Client) (clients.Registration, error) {
	d.mu.Lock()
	e, ok := d.decoded[rec.ID]
	d.mu.Unlock()
	if ok && bytes.Equal(e.data, rec.Data) {
		return e.reg, nil
	}
	reg, err := clients.DecodeRegistration(rec.Data)
	if err != nil {
		return clients.Registration{}, fmt.Errorf("client %q: %w", rec.ID, err)
	}
	d.mu.Lock()
	if len(d.decoded) >= maxDecodedClients {
		clear(d.decoded)
	}
	d.decoded[rec.ID] = decodedClient{data: slices.Clone(rec.Data), reg: reg}
	d.mu.Unlock()
	return reg, nil
}

// find is get for pages that only show a client's name: any failure is
// "not found".
func (d *clientDirectory) find(ctx context.Context, id string) (*clients.Client, bool) {
	c, err := d.get(ctx, id)
	return c, err == nil
}

// fositeGet is get in fosite's terms: an unknown client is
// fosite.ErrNotFound; an unavailable store stays recognisable in the chain.
func (d *clientDirectory) fositeGet(ctx context.Context, id string) (*clients.Client, error) {
	c, err := d.get(ctx, id)
	if errors.Is(err, errUnknownClient) {
		return nil, fosite.ErrNotFound.WithHint("Unknown client.")
	}
	return c, err
}
