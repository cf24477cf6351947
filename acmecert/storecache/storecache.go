// Package storecache keeps autocert's cache in the server's store (package
// storage), sealed with the system secret, and makes ordering a certificate
// one replica's job through a lease in the store. It is apart from acmecert
// so that the gateway, which must not import storage, can use acmecert
// with a directory cache.
package storecache

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/postern-auth/postern/storage"
)

// Store is the part of storage.Store the cache needs (which satisfies it).
type Store interface {
	GetBlob(ctx context.Context, name string) ([]byte, error)
	PutBlob(ctx context.Context, name string, data []byte) error
	DeleteBlob(ctx context.Context, name string) error
	TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Sealer encrypts what the cache keeps (private keys among it), bound to
// its name; keys.BlobSealer is one.
type Sealer interface {
	Seal(name string, plaintext []byte) ([]byte, error)
	Open(name string, sealed []byte) ([]byte, error)
}

// Names in the store. Blobs carry autocert's own keys after the prefix.
const (
	blobPrefix  = "acme/"
	leasePrefix = "acme-order/"
)

const (
	// leaseTTL bounds how long a replica that died while ordering keeps
	// the others from ordering; an order takes seconds, autocert gives
	// one at most 10 minutes.
	leaseTTL = 10 * time.Minute
	// pollEvery is how often a replica waiting for another's order looks
	// for its result.
	pollEvery = 500 * time.Millisecond
	// renewalWait bounds how long a replica holding a still-valid
	// certificate waits for another replica's renewal before going on with
	// the one it has (a handshake may be waiting on it).
	renewalWait = 30 * time.Second
)

// Cache is an autocert.Cache in the server's store: every replica on
// one store reads the same certificates and account key, sealed under
// their names. It also makes the order of a certificate one replica's job:
// a replica that finds no certificate (or one due for renewal) takes the
// name's lease in the store and gets a cache miss, so autocert orders; the
// others wait until the certificate appears, then use it. Put releases the
// lease; so does Manager once a failed order returns.
type Cache struct {
	blobs       string // name prefix of blobs: blobPrefix + namespace + "/"
	leases      string // likewise of leases
	store       Store
	sealer      Sealer
	holder      string
	renewBefore time.Duration

	mu   sync.Mutex
	held map[string]bool
}

var _ autocert.Cache = (*Cache)(nil)

// New keeps the cache in store under namespace (one per ACME directory:
// acmecert.Config.CacheNamespace). holder names this process in the
// store's leases (unique per process); renewBefore is
// tls.acme.renew_before, from which the cache tells a certificate due for
// renewal.
func New(store Store, sealer Sealer, namespace, holder string, renewBefore time.Duration) *Cache {
	return &Cache{blobs: blobPrefix + namespace + "/", leases: leasePrefix + namespace + "/", store: store, sealer: sealer, holder: holder, renewBefore: renewBefore, held: map[string]bool{}}
}

// Get implements autocert.Cache.
func (c *Cache) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := c.read(ctx, key)
	if (err != nil && !errors.Is(err, autocert.ErrCacheMiss)) || !leased(key) {
		return data, err
	}
	waitUntil := time.Now().Add(renewalWait)
	for {
		if !errors.Is(err, autocert.ErrCacheMiss) && (key == accountKey || !c.due(data)) {
			return data, nil
		}
		got, lerr := c.store.TryLease(ctx, c.leases+key, c.holder, leaseTTL)
		if lerr != nil {
			return nil, fmt.Errorf("acme cache: lease %s: %w", key, lerr)
		}
		if got {
			c.mu.Lock()
			c.held[key] = true
			c.mu.Unlock()
			return data, err // a miss (or a due certificate): this process orders
		}
		if data != nil && time.Now().After(waitUntil) {
			return data, nil // still valid; the other replica's renewal shows later
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("acme cache: waiting for another replica's order of %s: %w", key, ctx.Err())
		case <-time.After(pollEvery):
		}
		next, nerr := c.read(ctx, key)
		if nerr != nil && !errors.Is(nerr, autocert.ErrCacheMiss) {
			return nil, nerr
		}
		if nerr == nil {
			data, err = next, nil
		}
	}
}

// read returns the opened blob or autocert.ErrCacheMiss.
func (c *Cache) read(ctx context.Context, key string) ([]byte, error) {
	sealed, err := c.store.GetBlob(ctx, c.blobs+key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, autocert.ErrCacheMiss
	}
	if err != nil {
		return nil, fmt.Errorf("acme cache: read %s: %w", key, err)
	}
	data, err := c.sealer.Open(c.blobs+key, sealed)
	if err != nil {
		return nil, fmt.Errorf("acme cache: %w", err)
	}
	return data, nil
}

// Put implements autocert.Cache.
func (c *Cache) Put(ctx context.Context, key string, data []byte) error {
	sealed, err := c.sealer.Seal(c.blobs+key, data)
	if err != nil {
		return fmt.Errorf("acme cache: %w", err)
	}
	if err := c.store.PutBlob(ctx, c.blobs+key, sealed); err != nil {
		return fmt.Errorf("acme cache: write %s: %w", key, err)
	}
	if leased(key) {
		c.release(ctx, key)
	}
	return nil
}

// Delete implements autocert.Cache.
func (c *Cache) Delete(ctx context.Context, key string) error {
	if err := c.store.DeleteBlob(ctx, c.blobs+key); err != nil {
		return fmt.Errorf("acme cache: delete %s: %w", key, err)
	}
	return nil
}

// release gives up the lease on key if this process holds it. A failure
// is left to the lease's expiry.
func (c *Cache) release(ctx context.Context, key string) {
	c.mu.Lock()
	held := c.held[key]
	delete(c.held, key)
	c.mu.Unlock()
	if held {
		_ = c.store.ReleaseLease(context.WithoutCancel(ctx), c.leases+key, c.holder)
	}
}

// ReleaseOrder ends the leases held for domain; acmecert.Manager calls it
// once a GetCertificate call returned, so that after a failed order the
// other replicas need not wait for the lease to run out.
func (c *Cache) ReleaseOrder(ctx context.Context, domain string) {
	c.release(ctx, domain)
	c.release(ctx, domain+"+rsa")
	c.release(ctx, accountKey)
}

// accountKey is autocert's name of the ACME account key.
const accountKey = "acme_account+key"

// leased tells the keys whose creation is one replica's job: certificates
// ("example.com", "example.com+rsa"), ordered, and the account key, made
// once so that every replica orders under one account. Challenge tokens
// are made by whoever orders and need no lease.
func leased(key string) bool {
	if key == accountKey {
		return true
	}
	_, suffix, found := strings.Cut(key, "+")
	return !found || suffix == "rsa"
}

// due reports whether the cached certificate (autocert's PEM: key, then
// chain) is within renewBefore of its end, when autocert renews it.
func (c *Cache) due(data []byte) bool {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return true // unreadable: autocert treats it as a miss
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return true
		}
		return !time.Now().Before(leaf.NotAfter.Add(-c.renewBefore))
	}
}
