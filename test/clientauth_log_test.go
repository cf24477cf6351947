package test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A refused client is told only invalid_client; the operator reads why in
// the log, at info level, with the client_id and never the secret.
func TestFailedClientAuthenticationIsLogged(t *testing.T) {
	secret, hash := newClientSecret(t)
	srv := startServer(t, writeConfig(t, `{"clients": [{"client_id": "svc", "client_secret_hash": "`+hash+`", "grant_types": ["client_credentials"]}]}`), "")
	const wrong = "wrong-secret-0123456789-do-not-log"
	resp, _ := postForm(t, srv.URL+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", wrong)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: status %d", resp.StatusCode)
	}
	logged(t, srv.logs, 0, `level=INFO msg="client authentication failed" client_id=svc reason="clients: client secret does not match"`)
	if strings.Contains(srv.logs.String(), wrong) || strings.Contains(srv.logs.String(), secret) {
		t.Errorf("a secret is in the log:\n%s", srv.logs.String())
	}
}
