package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
)

// RFC 7591 dynamic registration and RFC 7592 management through the real
// binary, as a CI pipeline would use them.

// registrationFixture is a server with registration on (an initial access
// token hashed with `postern clients hash`), one configured machine client
// ("billing") and the rs client that introspects.
type registrationFixture struct {
	srv           *server
	initialToken  string
	rsSecret      string
	billingSecret string
}

func newRegistrationFixture(t *testing.T, extra string) *registrationFixture {
	t.Helper()
	f := &registrationFixture{initialToken: "pipeline-initial-access-token-0123456789"}
	out, errOut, code := runPostern(t, f.initialToken+"\n", "clients", "hash")
	if code != 0 {
		t.Fatalf("postern clients hash: exit %d: %s", code, errOut)
	}
	hash := strings.TrimSpace(out)
	var rsHash, billingHash string
	f.rsSecret, rsHash = newClientSecret(t)
	f.billingSecret, billingHash = newClientSecret(t)
	cfg := fmt.Sprintf(`{
  "registration": {"initial_access_token_hash": %q},
  "clients": [
    {"client_id": "rs", "client_secret_hash": %q, "grant_types": ["client_credentials"], "resource_server": true},
    {"client_id": "billing", "client_secret_hash": %q, "grant_types": ["client_credentials"], "scope": "read"}
  ]%s
}`, hash, rsHash, billingHash, extra)
	f.srv = startServer(t, writeConfig(t, cfg), "")
	return f
}

// register posts a registration document with the bearer token (none when
// empty) and returns the status, the decoded body and the challenge.
func (f *registrationFixture) register(t *testing.T, token, contentType string, body []byte) (int, map[string]any, string) {
	t.Helper()
	return f.call(t, http.MethodPost, f.srv.URL+"/oauth2/register", token, contentType, body)
}

func (f *registrationFixture) call(t *testing.T, method, url, token, contentType string, body []byte) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %s", method, url, resp.StatusCode, raw)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); resp.StatusCode < 300 && len(raw) > 0 && cc != "no-store" {
		t.Errorf("%s %s: Cache-Control %q, want no-store (the answer carries credentials)", method, url, cc)
	}
	return resp.StatusCode, m, resp.Header.Get("WWW-Authenticate")
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRegistrationEndpoint(t *testing.T) {
	f := newRegistrationFixture(t, `, "apis": [{"id": "orders", "name": "Orders", "base_url": "https://api.example.com/orders", "scopes": {"orders.read": "See your orders"}}]`)
	disc := getJSON(t, f.srv.URL+"/.well-known/openid-configuration")
	if !strings.Contains(fmt.Sprint(disc["scopes_supported"]), "orders.read") {
		t.Errorf("scopes_supported lacks the catalogue's scopes: %v", disc["scopes_supported"])
	}
	if disc["registration_endpoint"] != f.srv.URL+"/oauth2/register" {
		t.Errorf("discovery registration_endpoint = %v", disc["registration_endpoint"])
	}
	service := jsonBody(t, map[string]any{"client_name": "Nightly export", "grant_types": []string{"client_credentials"}, "scope": "orders.read"})

	t.Run("initial access token", func(t *testing.T) {
		for _, c := range []struct {
			name, token, challenge string
		}{
			{"none", "", "Bearer"},
			{"wrong", "not-the-token-0123456789012345678901234", `Bearer error="invalid_token"`},
		} {
			status, body, challenge := f.register(t, c.token, "application/json", service)
			if status != http.StatusUnauthorized || body["error"] != "invalid_token" || challenge != c.challenge {
				t.Errorf("%s: %d %v challenge %q, want 401 invalid_token with %q", c.name, status, body, challenge, c.challenge)
			}
		}
	})

	t.Run("malformed metadata", func(t *testing.T) {
		cases := []struct {
			name        string
			contentType string
			body        string
			status      int
			code        string
		}{
			{"not JSON", "application/json", `{"client_name": `, 400, "invalid_client_metadata"},
			{"not an object", "application/json", `["x"]`, 400, "invalid_client_metadata"},
			{"form, not JSON", "application/x-www-form-urlencoded", `client_name=x`, 400, "invalid_client_metadata"},
			{"redirect_uris a string", "application/json", `{"redirect_uris": "https://app.example/cb"}`, 400, "invalid_client_metadata"},
			{"fragment in redirect URI", "application/json", `{"redirect_uris": ["https://app.example/cb#x"]}`, 400, "invalid_redirect_uri"},
			{"plain http redirect URI", "application/json", `{"redirect_uris": ["http://app.example/cb"]}`, 400, "invalid_redirect_uri"},
			{"wildcard redirect URI", "application/json", `{"redirect_uris": ["https://*.example/cb"]}`, 400, "invalid_redirect_uri"},
			{"code without redirect URI", "application/json", `{"grant_types": ["authorization_code"]}`, 400, "invalid_redirect_uri"},
			{"password grant", "application/json", `{"grant_types": ["password"]}`, 400, "invalid_client_metadata"},
			{"implicit grant", "application/json", `{"grant_types": ["implicit"], "redirect_uris": ["https://app.example/cb"]}`, 400, "invalid_client_metadata"},
			{"unknown grant", "application/json", `{"grant_types": ["urn:x:magic"]}`, 400, "invalid_client_metadata"},
			{"public machine", "application/json", `{"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}`, 400, "invalid_client_metadata"},
			{"unknown auth method", "application/json", `{"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth"}`, 400, "invalid_client_metadata"},
			{"scope nobody offers", "application/json", `{"grant_types": ["client_credentials"], "scope": "admin"}`, 400, "invalid_client_metadata"},
			{"a configured client's ID", "application/json", `{"client_id": "billing", "grant_types": ["client_credentials"]}`, 400, "invalid_client_metadata"},
			{"name too long", "application/json", `{"client_name": "` + strings.Repeat("n", 101) + `", "grant_types": ["client_credentials"]}`, 400, "invalid_client_metadata"},
			{"too large", "application/json", `{"client_name": "` + strings.Repeat("n", 70<<10) + `"}`, 413, ""},
		}
		for _, c := range cases {
			status, body, _ := f.register(t, f.initialToken, c.contentType, []byte(c.body))
			if status != c.status || (c.code != "" && body["error"] != c.code) {
				t.Errorf("%s: %d %v, want %d %s", c.name, status, body, c.status, c.code)
			}
			if c.code != "" && body["error_description"] == "" {
				t.Errorf("%s: no error_description", c.name)
			}
		}
	})

	var machine map[string]any
	t.Run("register a machine client and use it", func(t *testing.T) {
		status, body, _ := f.register(t, f.initialToken, "application/json; charset=utf-8", service)
		if status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
		machine = body
		id, _ := body["client_id"].(string)
		secret, _ := body["client_secret"].(string)
		if id == "" || secret == "" || body["registration_access_token"] == "" || body["client_secret_expires_at"] != float64(0) {
			t.Fatalf("registration answer lacks credentials: %v", body)
		}
		if body["registration_client_uri"] != f.srv.URL+"/oauth2/register/"+id || body["token_endpoint_auth_method"] != "client_secret_basic" {
			t.Errorf("registration answer: %v", body)
		}
		conf := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: f.srv.URL + "/oauth2/token", Scopes: []string{"orders.read"}}
		tok, err := conf.Token(context.Background())
		if err != nil {
			t.Fatalf("client credentials with the registered client: %v", err)
		}
		info := introspectAs(t, f.srv.URL, "rs", f.rsSecret, tok.AccessToken)
		if info["active"] != true || info["client_id"] != id || info["scope"] != "orders.read" {
			t.Errorf("introspection of the registered client's token: %v", info)
		}
		if bad := (clientcredentials.Config{ClientID: id, ClientSecret: secret + "x", TokenURL: f.srv.URL + "/oauth2/token"}); true {
			if _, err := bad.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
				t.Errorf("wrong secret: %v, want invalid_client", err)
			}
		}
	})

	t.Run("public client", func(t *testing.T) {
		status, body, _ := f.register(t, f.initialToken, "application/json", jsonBody(t, map[string]any{
			"client_name": "Field app", "token_endpoint_auth_method": "none",
			"redirect_uris": []string{"com.example.field:/callback", "http://127.0.0.1:8765/cb"}, "scope": "openid profile",
		}))
		if status != http.StatusCreated {
			t.Fatalf("register: %d %v", status, body)
		}
		if _, has := body["client_secret"]; has {
			t.Errorf("a public client was given a secret: %v", body)
		}
		if got := fmt.Sprint(body["grant_types"], body["response_types"]); got != "[authorization_code] [code]" {
			t.Errorf("RFC 7591 defaults: %s", got)
		}
	})

	t.Run("management", func(t *testing.T) {
		if machine == nil {
			t.Skip("no registered client")
		}
		id := machine["client_id"].(string)
		uri := machine["registration_client_uri"].(string)
		regToken := machine["registration_access_token"].(string)
		secret := machine["client_secret"].(string)

		for _, c := range []struct{ name, url, token string }{
			{"no token", uri, ""},
			{"the initial access token", uri, f.initialToken},
			{"another token", uri, "x" + regToken},
			{"a configured client", f.srv.URL + "/oauth2/register/billing", regToken},
			{"an unknown client", f.srv.URL + "/oauth2/register/app-nope", regToken},
		} {
			if status, body, _ := f.call(t, http.MethodGet, c.url, c.token, "", nil); status != http.StatusUnauthorized {
				t.Errorf("GET with %s: %d %v, want 401", c.name, status, body)
			}
		}
		status, body, _ := f.call(t, http.MethodGet, uri, regToken, "", nil)
		if status != http.StatusOK || body["client_id"] != id || body["client_name"] != "Nightly export" {
			t.Fatalf("GET: %d %v", status, body)
		}
		if _, has := body["client_secret"]; has {
			t.Error("GET returned a client secret: only its hash is kept")
		}
		if body["registration_access_token"] != regToken || body["registration_client_uri"] != uri {
			t.Errorf("GET answer lacks the registration access token or URI (RFC 7592 §3): %v", body)
		}

		update := map[string]any{"client_id": id, "client_name": "Nightly export v2", "grant_types": []string{"client_credentials"}}
		if status, body, _ := f.call(t, http.MethodPut, uri, regToken, "application/json", jsonBody(t, map[string]any{"client_id": "billing", "grant_types": []string{"client_credentials"}})); status != 400 || body["error"] != "invalid_client_metadata" {
			t.Errorf("PUT with another client_id: %d %v", status, body)
		}
		wrongSecret := map[string]any{"client_id": id, "client_secret": "not-the-secret", "grant_types": []string{"client_credentials"}}
		if status, body, _ := f.call(t, http.MethodPut, uri, regToken, "application/json", jsonBody(t, wrongSecret)); status != 400 || body["error"] != "invalid_client_metadata" {
			t.Errorf("PUT with another client_secret (RFC 7592 §2.2): %d %v", status, body)
		}
		update["client_secret"] = secret
		if status, body, _ := f.call(t, http.MethodPut, uri, regToken, "application/json", jsonBody(t, update)); status != 200 || body["client_name"] != "Nightly export v2" || body["registration_access_token"] != regToken {
			t.Errorf("PUT: %d %v", status, body)
		}
		conf := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: f.srv.URL + "/oauth2/token"}
		tok, err := conf.Token(context.Background())
		if err != nil {
			t.Fatalf("the secret after a metadata update: %v", err)
		}

		if status, _, _ := f.call(t, http.MethodDelete, uri, regToken, "", nil); status != http.StatusNoContent {
			t.Fatalf("DELETE: %d", status)
		}
		if info := introspectAs(t, f.srv.URL, "rs", f.rsSecret, tok.AccessToken); info["active"] != false {
			t.Errorf("a deleted client's token: %v", info)
		}
		if _, err := conf.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Errorf("a deleted client got a token: %v", err)
		}
		if status, _, _ := f.call(t, http.MethodGet, uri, regToken, "", nil); status != http.StatusUnauthorized {
			t.Errorf("GET after DELETE: %d, want 401", status)
		}
	})
}

// Without registration.initial_access_token_hash there is no endpoint.
func TestRegistrationOff(t *testing.T) {
	srv := startServer(t, writeConfig(t, `{}`), "")
	if disc := getJSON(t, srv.URL+"/.well-known/oauth-authorization-server"); disc["registration_endpoint"] != nil {
		t.Errorf("registration_endpoint advertised while registration is off: %v", disc["registration_endpoint"])
	}
	resp, err := http.Post(srv.URL+"/oauth2/register", "application/json", strings.NewReader(`{"grant_types": ["client_credentials"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /oauth2/register with registration off: %d, want 404", resp.StatusCode)
	}
}

func introspectAs(t *testing.T, srvURL, id, secret, token string) map[string]any {
	t.Helper()
	_, body := postForm(t, srvURL+"/oauth2/introspect", map[string][]string{"token": {token}}, id, secret)
	return body
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	_, doc := do(t, mustGet(t, u))
	return doc
}
