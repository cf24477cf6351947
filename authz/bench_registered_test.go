package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// BenchmarkCCTokenHTTPRegistered is BenchmarkCCTokenHTTP with a client
// registered at run time: the directory reads it from the store on every
// request (another replica may have deleted it), so the ratio of the two
// is the price of a runtime client on the hot path.
//
//	go test ./authz -run x -bench 'CCTokenHTTP' -benchtime 3s
func BenchmarkCCTokenHTTPRegistered(b *testing.B) {
	f := newFixture(b, FormatOpaque)
	secret, hash, err := newHashedSecret()
	if err != nil {
		b.Fatal(err)
	}
	data, err := clients.EncodeRegistration(clients.Registration{Name: "Bench", Kind: clients.KindService,
		AuthMethod: clients.AuthSecretBasic, GrantTypes: []string{clients.GrantClientCredentials}, SecretHash: hash})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	if err := f.store.CreateClient(context.Background(), storage.Client{ID: "app-bench", Owner: "dev", CreatedAt: now, UpdatedAt: now, Data: data}); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	runHTTPLoad(b, ts.URL, func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+pathToken, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("app-bench", secret)
		return req
	})
}
