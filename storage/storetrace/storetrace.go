// Package storetrace wraps a storage.Store so that every call is a span
// (store.<Method>) under the caller's span. Spans carry the method and the
// outcome only: keys, signatures, subjects and blobs never become
// attributes, since a signature is half a token and the rest is personal.
package storetrace

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/postern-auth/postern/storage"
)

// Wrap returns s with every method traced by tp. A store that hears of
// other processes' revocations (storage.RevocationNotifier) keeps offering
// it through the wrapper, so the feed still wakes at once.
func Wrap(s storage.Store, tp trace.TracerProvider) storage.Store {
	t := &store{next: s, tracer: tp.Tracer("github.com/postern-auth/postern/storage")}
	if n, ok := s.(storage.RevocationNotifier); ok {
		return notifier{store: t, n: n}
	}
	return t
}

type notifier struct {
	*store
	n storage.RevocationNotifier
}

func (n notifier) RevocationNotices() <-chan struct{} { return n.n.RevocationNotices() }

type store struct {
	next   storage.Store
	tracer trace.Tracer
}

// start opens the span of one call; end closes it with the outcome.
// "Not found" and the other sentinel answers are ordinary results, not
// span errors: only a store that could not answer marks the span failed.
func (s *store) start(ctx context.Context, method string) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, "store."+method, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("db.operation.name", method)))
}

func end(span trace.Span, err error) {
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrNotFound):
		span.SetAttributes(attribute.String("store.result", "not_found"))
	case errors.Is(err, storage.ErrAlreadyExists):
		span.SetAttributes(attribute.String("store.result", "already_exists"))
	case errors.Is(err, storage.ErrInactive):
		span.SetAttributes(attribute.String("store.result", "inactive"))
	default:
		span.SetStatus(codes.Error, "store call failed")
	}
	span.End()
}

func call0(s *store, ctx context.Context, method string, f func(context.Context) error) error {
	ctx, span := s.start(ctx, method)
	err := f(ctx)
	end(span, err)
	return err
}

func call1[T any](s *store, ctx context.Context, method string, f func(context.Context) (T, error)) (T, error) {
	ctx, span := s.start(ctx, method)
	v, err := f(ctx)
	end(span, err)
	return v, err
}

func (s *store) CreateToken(ctx context.Context, t storage.Token) error {
	return call0(s, ctx, "CreateToken", func(ctx context.Context) error { return s.next.CreateToken(ctx, t) })
}

func (s *store) GetToken(ctx context.Context, kind storage.Kind, signature string) (storage.Token, error) {
	return call1(s, ctx, "GetToken", func(ctx context.Context) (storage.Token, error) { return s.next.GetToken(ctx, kind, signature) })
}

func (s *store) DeleteToken(ctx context.Context, kind storage.Kind, signature string) error {
	return call0(s, ctx, "DeleteToken", func(ctx context.Context) error { return s.next.DeleteToken(ctx, kind, signature) })
}

func (s *store) Redeem(ctx context.Context, kind storage.Kind, signature string, issue []storage.Token, retry *storage.Retry) (storage.Token, error) {
	return call1(s, ctx, "Redeem", func(ctx context.Context) (storage.Token, error) {
		return s.next.Redeem(ctx, kind, signature, issue, retry)
	})
}

func (s *store) RetryOf(ctx context.Context, kind storage.Kind, signature string) (storage.Retry, error) {
	return call1(s, ctx, "RetryOf", func(ctx context.Context) (storage.Retry, error) { return s.next.RetryOf(ctx, kind, signature) })
}

func (s *store) RevokeGrant(ctx context.Context, requestID string) (int, error) {
	return call1(s, ctx, "RevokeGrant", func(ctx context.Context) (int, error) { return s.next.RevokeGrant(ctx, requestID) })
}

func (s *store) GrantTokens(ctx context.Context, requestID string) ([]storage.Token, error) {
	return call1(s, ctx, "GrantTokens", func(ctx context.Context) ([]storage.Token, error) { return s.next.GrantTokens(ctx, requestID) })
}

func (s *store) SubjectTokens(ctx context.Context, subject string) ([]storage.Token, error) {
	return call1(s, ctx, "SubjectTokens", func(ctx context.Context) ([]storage.Token, error) { return s.next.SubjectTokens(ctx, subject) })
}

func (s *store) ClientTokens(ctx context.Context, clientID string) ([]storage.Token, error) {
	return call1(s, ctx, "ClientTokens", func(ctx context.Context) ([]storage.Token, error) { return s.next.ClientTokens(ctx, clientID) })
}

func (s *store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return call1(s, ctx, "DeleteExpired", func(ctx context.Context) (int, error) { return s.next.DeleteExpired(ctx, now) })
}

func (s *store) UseOnce(ctx context.Context, namespace, id string, exp time.Time) error {
	return call0(s, ctx, "UseOnce", func(ctx context.Context) error { return s.next.UseOnce(ctx, namespace, id, exp) })
}

func (s *store) AddLoginFailure(ctx context.Context, key string, now time.Time, forgetAfter time.Duration) (storage.LoginFailures, error) {
	return call1(s, ctx, "AddLoginFailure", func(ctx context.Context) (storage.LoginFailures, error) {
		return s.next.AddLoginFailure(ctx, key, now, forgetAfter)
	})
}

func (s *store) LoginFailures(ctx context.Context, key string) (storage.LoginFailures, error) {
	return call1(s, ctx, "LoginFailures", func(ctx context.Context) (storage.LoginFailures, error) { return s.next.LoginFailures(ctx, key) })
}

func (s *store) ClearLoginFailures(ctx context.Context, key string) error {
	return call0(s, ctx, "ClearLoginFailures", func(ctx context.Context) error { return s.next.ClearLoginFailures(ctx, key) })
}

func (s *store) RevokeSession(ctx context.Context, id string, until time.Time) error {
	return call0(s, ctx, "RevokeSession", func(ctx context.Context) error { return s.next.RevokeSession(ctx, id, until) })
}

func (s *store) SessionRevoked(ctx context.Context, id string) (bool, error) {
	return call1(s, ctx, "SessionRevoked", func(ctx context.Context) (bool, error) { return s.next.SessionRevoked(ctx, id) })
}

func (s *store) EndSubjectSessions(ctx context.Context, subject string, at, until time.Time) error {
	return call0(s, ctx, "EndSubjectSessions", func(ctx context.Context) error { return s.next.EndSubjectSessions(ctx, subject, at, until) })
}

func (s *store) SubjectSessionsEndedAt(ctx context.Context, subject string) (time.Time, error) {
	return call1(s, ctx, "SubjectSessionsEndedAt", func(ctx context.Context) (time.Time, error) {
		return s.next.SubjectSessionsEndedAt(ctx, subject)
	})
}

func (s *store) AppendRevocation(ctx context.Context, r storage.Revocation) (storage.Revocation, error) {
	return call1(s, ctx, "AppendRevocation", func(ctx context.Context) (storage.Revocation, error) { return s.next.AppendRevocation(ctx, r) })
}

func (s *store) Revocations(ctx context.Context, after uint64, limit int) ([]storage.Revocation, error) {
	return call1(s, ctx, "Revocations", func(ctx context.Context) ([]storage.Revocation, error) { return s.next.Revocations(ctx, after, limit) })
}

func (s *store) RevocationRange(ctx context.Context) (floor, head uint64, err error) {
	ctx, span := s.start(ctx, "RevocationRange")
	floor, head, err = s.next.RevocationRange(ctx)
	end(span, err)
	return floor, head, err
}

func (s *store) Keys(ctx context.Context) ([]storage.Key, error) {
	return call1(s, ctx, "Keys", s.next.Keys)
}

func (s *store) UpdateKeys(ctx context.Context, fn func(old []storage.Key) ([]storage.Key, error)) error {
	return call0(s, ctx, "UpdateKeys", func(ctx context.Context) error { return s.next.UpdateKeys(ctx, fn) })
}

func (s *store) AppendEvent(ctx context.Context, e storage.Event) error {
	return call0(s, ctx, "AppendEvent", func(ctx context.Context) error { return s.next.AppendEvent(ctx, e) })
}

func (s *store) ListEvents(ctx context.Context, subject string, limit int) ([]storage.Event, error) {
	return call1(s, ctx, "ListEvents", func(ctx context.Context) ([]storage.Event, error) { return s.next.ListEvents(ctx, subject, limit) })
}

func (s *store) PutConsent(ctx context.Context, c storage.Consent) error {
	return call0(s, ctx, "PutConsent", func(ctx context.Context) error { return s.next.PutConsent(ctx, c) })
}

func (s *store) GetConsent(ctx context.Context, subject, clientID string) (storage.Consent, error) {
	return call1(s, ctx, "GetConsent", func(ctx context.Context) (storage.Consent, error) { return s.next.GetConsent(ctx, subject, clientID) })
}

func (s *store) ListConsents(ctx context.Context, subject string) ([]storage.Consent, error) {
	return call1(s, ctx, "ListConsents", func(ctx context.Context) ([]storage.Consent, error) { return s.next.ListConsents(ctx, subject) })
}

func (s *store) DeleteConsent(ctx context.Context, subject, clientID string) error {
	return call0(s, ctx, "DeleteConsent", func(ctx context.Context) error { return s.next.DeleteConsent(ctx, subject, clientID) })
}

func (s *store) GetBlob(ctx context.Context, name string) ([]byte, error) {
	return call1(s, ctx, "GetBlob", func(ctx context.Context) ([]byte, error) { return s.next.GetBlob(ctx, name) })
}

func (s *store) PutBlob(ctx context.Context, name string, data []byte) error {
	return call0(s, ctx, "PutBlob", func(ctx context.Context) error { return s.next.PutBlob(ctx, name, data) })
}

func (s *store) DeleteBlob(ctx context.Context, name string) error {
	return call0(s, ctx, "DeleteBlob", func(ctx context.Context) error { return s.next.DeleteBlob(ctx, name) })
}

func (s *store) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return call1(s, ctx, "TryLease", func(ctx context.Context) (bool, error) { return s.next.TryLease(ctx, name, holder, ttl) })
}

func (s *store) ReleaseLease(ctx context.Context, name, holder string) error {
	return call0(s, ctx, "ReleaseLease", func(ctx context.Context) error { return s.next.ReleaseLease(ctx, name, holder) })
}

// Close is not traced: it ends the process's use of the store, not a
// request's.
func (s *store) CreateClient(ctx context.Context, c storage.Client) error {
	return call0(s, ctx, "CreateClient", func(ctx context.Context) error { return s.next.CreateClient(ctx, c) })
}

func (s *store) GetClient(ctx context.Context, id string) (storage.Client, error) {
	return call1(s, ctx, "GetClient", func(ctx context.Context) (storage.Client, error) { return s.next.GetClient(ctx, id) })
}

func (s *store) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	return call1(s, ctx, "UpdateClient", func(ctx context.Context) (storage.Client, error) { return s.next.UpdateClient(ctx, id, fn) })
}

func (s *store) ListClients(ctx context.Context, owner string) ([]storage.Client, error) {
	return call1(s, ctx, "ListClients", func(ctx context.Context) ([]storage.Client, error) { return s.next.ListClients(ctx, owner) })
}

func (s *store) AllClients(ctx context.Context) ([]storage.Client, error) {
	return call1(s, ctx, "AllClients", func(ctx context.Context) ([]storage.Client, error) { return s.next.AllClients(ctx) })
}

func (s *store) DeleteClient(ctx context.Context, id string) (int, error) {
	return call1(s, ctx, "DeleteClient", func(ctx context.Context) (int, error) { return s.next.DeleteClient(ctx, id) })
}

func (s *store) Close() error { return s.next.Close() }

var (
	_ storage.Store              = (*store)(nil)
	_ storage.RevocationNotifier = notifier{}
)
