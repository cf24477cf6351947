package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrUnavailable means the authorization server could not be asked (down,
// slow, misconfigured) and nothing cached answers the question. The
// gateway then fails closed with 503.
var ErrUnavailable = errors.New("authorization server unavailable")

// ErrInvalidToken means the token is not (or no longer) acceptable.
var ErrInvalidToken = errors.New("invalid token")

// endpoints are the server URLs the gateway uses, from RFC 8414 discovery.
type endpoints struct {
	Introspection string `json:"introspection_endpoint"`
	JWKS          string `json:"jwks_uri"`
	Issuer        string `json:"issuer"`
	// RevocationFeed is Postern's own member; other servers have none.
	RevocationFeed string `json:"postern_revocation_feed_endpoint"`
}

// discovery fetches the metadata once and keeps it; after a failure it
// waits discoveryRetryInterval before asking again, so an outage costs
// each request a fast 503 rather than a connection attempt.
type discovery struct {
	issuer string
	client *http.Client
	now    func() time.Time

	flight    singleflight.Group
	mu        sync.Mutex
	got       *endpoints
	lastError time.Time
}

func (d *discovery) get(ctx context.Context) (*endpoints, error) {
	d.mu.Lock()
	got, failedAt := d.got, d.lastError
	d.mu.Unlock()
	if got != nil {
		return got, nil
	}
	if !failedAt.IsZero() && d.now().Sub(failedAt) < discoveryRetryInterval {
		return nil, fmt.Errorf("%w: discovery failed recently", ErrUnavailable)
	}
	v, err, _ := d.flight.Do("discovery", func() (any, error) {
		ep, err := d.fetch(context.WithoutCancel(ctx))
		d.mu.Lock()
		defer d.mu.Unlock()
		if err != nil {
			d.lastError = d.now()
			return nil, err
		}
		d.got = ep
		return ep, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*endpoints), nil
}

func (d *discovery) fetch(ctx context.Context) (*endpoints, error) {
	ctx, cancel := context.WithTimeout(ctx, authServerTimeout)
	defer cancel()
	u := strings.TrimSuffix(d.issuer, "/") + "/.well-known/oauth-authorization-server"
	var ep endpoints
	if err := getJSON(ctx, d.client, u, &ep); err != nil {
		return nil, fmt.Errorf("%w: discovery: %w", ErrUnavailable, err)
	}
	// RFC 8414 §3.3: the document must name the issuer we asked about, or
	// someone else's endpoints could be substituted.
	if ep.Issuer != d.issuer {
		return nil, fmt.Errorf("%w: discovery at %s names issuer %q, want %q", ErrUnavailable, u, ep.Issuer, d.issuer)
	}
	if ep.Introspection == "" || ep.JWKS == "" {
		return nil, fmt.Errorf("%w: discovery at %s lacks introspection_endpoint or jwks_uri", ErrUnavailable, u)
	}
	return &ep, nil
}

// getJSON fetches a JSON document with a bounded body.
func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxAuthResponseBytes))
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAuthResponseBytes)).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
