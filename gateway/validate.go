package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
)

// validator turns a bearer token into an Identity: from the cache, or by
// checking it once (locally for JWT access tokens, by introspection for the
// rest) while concurrent requests with the same token wait for that one
// answer instead of asking the server again.
type validator struct {
	cache       *tokenCache
	ttl         time.Duration
	negativeTTL time.Duration
	flight      singleflight.Group
	introspect  func(ctx context.Context, token string) (*Identity, error)
	verifyJWT   func(ctx context.Context, token string) (*Identity, error)
	now         func() time.Time
	metrics     *metrics
	// rev is what the revocation feed told (feed.go).
	rev *revocations

	// testHookMiss, when set, runs on every cache miss before the
	// request joins (or starts) the flight for its token.
	testHookMiss func()
}

// check is the per-request entry point.
func (v *validator) check(ctx context.Context, token string) (*Identity, error) {
	key := tokenKey(sha256.Sum256([]byte(token)))
	if id, ok := v.cache.get(key, v.now(), v.rev.informed.Load()); ok {
		v.metrics.cacheResult(id != nil, true)
		if id == nil {
			return nil, ErrInvalidToken
		}
		return id, nil
	}
	v.metrics.cacheResult(false, false)
	if v.testHookMiss != nil {
		v.testHookMiss()
	}
	ch := v.flight.DoChan(string(key[:]), func() (any, error) {
		// The first caller's cancellation must not fail everyone waiting,
		// so the check runs detached from it (bounded by its own timeouts).
		return v.resolve(context.WithoutCancel(ctx), key, token)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Identity), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// resolve runs once per token per flight. It looks at the cache again: a
// request that missed just as the previous flight finished finds the
// answer there instead of asking the server twice.
func (v *validator) resolve(ctx context.Context, key tokenKey, token string) (*Identity, error) {
	if id, ok := v.cache.get(key, v.now(), v.rev.informed.Load()); ok {
		if id == nil {
			return nil, ErrInvalidToken
		}
		return id, nil
	}
	start := v.now()
	var id *Identity
	var err error
	jwt := looksLikeAccessJWT(token)
	if jwt {
		id, err = v.verifyJWT(ctx, token)
	} else {
		start := time.Now()
		id, err = v.introspect(ctx, token)
		v.metrics.introspection(time.Since(start), err)
	}
	now := v.now()
	// Held across the check and the put, so an event applied meanwhile
	// either shows here or evicts what is put (feed.go).
	v.rev.mu.RLock()
	defer v.rev.mu.RUnlock()
	if err == nil && v.rev.revoked(id, start, jwt) {
		id, err = nil, ErrInvalidToken
	}
	switch {
	case err == nil:
		if v.ttl > 0 {
			expires, ttlUntil := positiveExpiry(now, v.ttl, id.Expiry)
			v.cache.put(key, id, expires, ttlUntil, now)
		}
	case errors.Is(err, ErrInvalidToken) && !jwt && v.negativeTTL > 0:
		// JWT failures are cheap to recompute and some are temporary
		// (nbf), so only the server's "not active" is remembered.
		until := now.Add(v.negativeTTL)
		v.cache.put(key, nil, until, until, now)
	}
	return id, err
}
