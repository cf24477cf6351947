package authz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/storage"
)

// deletedMeanwhile is a store on which the client is deleted between the
// RFC 7592 handler's read and its update, as a racing DELETE would.
type deletedMeanwhile struct{ storage.Store }

func (s deletedMeanwhile) UpdateClient(ctx context.Context, id string, fn func(storage.Client) (storage.Client, error)) (storage.Client, error) {
	if _, err := s.Store.DeleteClient(ctx, id); err != nil {
		return storage.Client{}, err
	}
	return s.Store.UpdateClient(ctx, id, fn)
}

// A PUT that loses to a DELETE is told the client is gone (401), never a 500.
func TestRegistrationPutRacingDelete(t *testing.T) {
	fx := newFixture(t, "opaque")
	regToken, hash, err := newHashedSecret()
	if err != nil {
		t.Fatal(err)
	}
	data, err := clients.EncodeRegistration(clients.Registration{Name: "Job", AuthMethod: clients.AuthSecretBasic,
		GrantTypes: []string{clients.GrantClientCredentials}, SecretHash: placeholderSecretHash, RegistrationTokenHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := fx.store.CreateClient(context.Background(), storage.Client{ID: "app-race", CreatedAt: now, UpdatedAt: now, Data: data}); err != nil {
		t.Fatal(err)
	}
	fx.srv.cfg.RegistrationTokenHash = []byte(placeholderSecretHash)
	fx.srv.store = deletedMeanwhile{fx.srv.store}
	req := httptest.NewRequest(http.MethodPut, pathRegister+"/app-race", strings.NewReader(`{"client_id": "app-race", "client_name": "Job 2", "grant_types": ["client_credentials"]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+regToken)
	rec := httptest.NewRecorder()
	fx.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "invalid_token") {
		t.Errorf("PUT on a client deleted meanwhile: %d %q %s, want 401 invalid_token", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}
}
