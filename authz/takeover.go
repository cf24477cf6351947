package authz

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// TakeOver is called when s replaces old (a configuration reload). What the
// new configuration ended is void at once (tokens of removed users and
// clients no longer decode); TakeOver tells the caches through the
// revocation feed: a subject event for every user removed or whose password
// changed, a client event for every client removed or whose secret or keys
// changed. It then ends old's feed streams, whose readers resume on s.
func (s *Server) TakeOver(ctx context.Context, old *Server) error {
	defer old.CloseStreams()
	lt := old.cfg.Lifetimes
	until := s.cfg.Now().Add(max(lt.AccessToken, lt.ImplicitAccessToken))
	var errs []error
	for _, name := range s.users.EndedSince(old.users) {
		_, err := s.store.AppendRevocation(ctx, storage.Revocation{Kind: storage.RevokedSubject, ID: name, Until: until})
		errs = append(errs, err)
	}
	for _, id := range clientsEnded(old.clients, s.clients) {
		_, err := s.store.AppendRevocation(ctx, storage.Revocation{Kind: storage.RevokedClient, ID: id, Until: until})
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("record the revocations of a reload: %w", err)
	}
	return nil
}

// clientsEnded lists the clients of old whose tokens the new configuration
// ended: removed, or with another secret or other keys.
func clientsEnded(old, next map[string]*clients.Client) []string {
	var ended []string
	for id, o := range old {
		n, ok := next[id]
		if !ok || !bytes.Equal(o.SecretHash, n.SecretHash) || o.JWKSURI != n.JWKSURI || !sameKeys(o, n) {
			ended = append(ended, id)
		}
	}
	slices.Sort(ended)
	return ended
}

func sameKeys(a, b *clients.Client) bool {
	if a.JWKS == nil || b.JWKS == nil {
		return a.JWKS == b.JWKS
	}
	if len(a.JWKS.Keys) != len(b.JWKS.Keys) {
		return false
	}
	for i := range a.JWKS.Keys {
		if a.JWKS.Keys[i].KeyID != b.JWKS.Keys[i].KeyID {
			return false
		}
		ta, errA := a.JWKS.Keys[i].Thumbprint(crypto.SHA256)
		tb, errB := b.JWKS.Keys[i].Thumbprint(crypto.SHA256)
		if errA != nil || errB != nil || !bytes.Equal(ta, tb) {
			return false
		}
	}
	return true
}
