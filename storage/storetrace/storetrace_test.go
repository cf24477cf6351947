package storetrace_test

import (
	"context"
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/postern-auth/postern/storage"
	"github.com/postern-auth/postern/storage/bolt"
	"github.com/postern-auth/postern/storage/storagetest"
	"github.com/postern-auth/postern/storage/storetrace"
)

// The traced store keeps the contract: every conformance test passes
// through it.
func TestConformance(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	storagetest.RunTests(t, func(t *testing.T) storage.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "postern.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return storetrace.Wrap(s, tp)
	})
}

type notifying struct {
	storage.Store
	ch chan struct{}
}

func (n notifying) RevocationNotices() <-chan struct{} { return n.ch }

// A store's optional RevocationNotifier stays visible through the wrapper
// (the feed would otherwise fall back to polling), and one without it does
// not gain it; each call is a span under the caller's.
func TestOptionalInterfacesAndSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s, err := bolt.Open(filepath.Join(t.TempDir(), "postern.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ch := make(chan struct{})
	n, ok := storetrace.Wrap(notifying{Store: s, ch: ch}, tp).(storage.RevocationNotifier)
	if !ok || n.RevocationNotices() != ch {
		t.Fatal("RevocationNotifier lost through the wrapper")
	}
	plain := storetrace.Wrap(s, tp)
	if _, ok := plain.(storage.RevocationNotifier); ok {
		t.Fatal("a store without notices gained RevocationNotifier")
	}
	ctx, parent := tp.Tracer("t").Start(context.Background(), "request")
	if _, err := plain.GetToken(ctx, storage.AccessToken, "nope"); err == nil {
		t.Fatal("GetToken of a missing token succeeded")
	}
	parent.End()
	var got []string
	for _, sp := range rec.Ended() {
		if sp.Parent().SpanID() == parent.SpanContext().SpanID() {
			got = append(got, sp.Name())
		}
	}
	if len(got) != 1 || got[0] != "store.GetToken" {
		t.Errorf("child spans %v, want [store.GetToken]", got)
	}
}
