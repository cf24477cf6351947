package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// assertion builds an RFC 7523 client assertion signed with key.
func assertion(t *testing.T, key *ecdsa.PrivateKey, clientID, aud string, jti string, exp time.Time) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{
		"iss": clientID, "sub": clientID, "aud": aud, "jti": jti,
		"iat": time.Now().Unix(), "exp": exp.Unix(),
	})
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPrivateKeyJWT: a client authenticates with a signed assertion (RFC
// 7523) instead of a secret; the server holds only its public key.
func TestPrivateKeyJWT(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"clients": [
  {"client_id": "signer", "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
   "jwks": %s, "grant_types": ["client_credentials"], "scope": "read"}
]}`, pub)
	srv := startServer(t, writeConfig(t, cfg), "")
	tokenURL := srv.URL + "/oauth2/token"
	post := func(form url.Values) (*http.Response, map[string]any) {
		form.Set("grant_type", "client_credentials")
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		return postForm(t, tokenURL, form, "", "")
	}
	exp := time.Now().Add(2 * time.Minute)

	good := assertion(t, key, "signer", tokenURL, "jti-1", exp)
	resp, body := post(url.Values{"client_assertion": {good}})
	if resp.StatusCode != http.StatusOK || body["access_token"] == nil {
		t.Fatalf("private_key_jwt: %d %v", resp.StatusCode, body)
	}
	// Introspection authenticates the same way.
	resp, info := postForm(t, srv.URL+"/oauth2/introspect", url.Values{
		"token": {body["access_token"].(string)}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {assertion(t, key, "signer", tokenURL, "jti-2", exp)},
	}, "", "")
	if resp.StatusCode != http.StatusOK || info["active"] != true || info["client_id"] != "signer" {
		t.Errorf("introspection with an assertion: %d %v", resp.StatusCode, info)
	}

	for _, tc := range []struct {
		name string
		a    string
	}{
		{"replayed assertion", good},
		{"stranger's key", assertion(t, stranger, "signer", tokenURL, "jti-3", exp)},
		{"other audience", assertion(t, key, "signer", "https://elsewhere.example/token", "jti-4", exp)},
		{"expired", assertion(t, key, "signer", tokenURL, "jti-5", time.Now().Add(-time.Minute))},
		{"not a JWT", "garbage"},
		{"over-long jti", assertion(t, key, "signer", tokenURL, strings.Repeat("j", 300), exp)},
	} {
		resp, body := post(url.Values{"client_assertion": {tc.a}})
		if resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
			t.Errorf("%s: %d %v, want 401 invalid_client", tc.name, resp.StatusCode, body)
		}
	}
	// The key client has no secret to fall back on.
	if resp, body := postForm(t, tokenURL, url.Values{"grant_type": {"client_credentials"}}, "signer", "anything"); resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("secret for a key client: %d %v", resp.StatusCode, body)
	}
}
