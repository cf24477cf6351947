package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-auth/postern/authz"
	"github.com/postern-auth/postern/clients"
	"github.com/postern-auth/postern/confjson"
	"github.com/postern-auth/postern/identity"
	"github.com/postern-auth/postern/passhash"
)

// cfgHashes are real hashes made once per test binary: fixtures must carry
// hashes the flows package accepts, and argon2id is too slow to run per row.
type cfgHashes struct {
	hmac     string // clients.HashClientSecret of a generated-length secret
	argon    string // clients.HashChosenSecret("s3cret")
	password string // passhash.HashPassword("pw")
}

var cfgHashesOnce = sync.OnceValues(func() (cfgHashes, error) {
	var h cfgHashes
	var err error
	// HashClientSecret refuses secrets shorter than 32 characters.
	if h.hmac, err = clients.HashClientSecret("s3cret-s3cret-s3cret-s3cret-s3cret-s3cret"); err != nil {
		return h, err
	}
	if h.argon, err = clients.HashChosenSecret("s3cret"); err != nil {
		return h, err
	}
	if h.password, err = passhash.HashPassword("pw"); err != nil {
		return h, err
	}
	return h, nil
})

func testHashes(t *testing.T) cfgHashes {
	t.Helper()
	h, err := cfgHashesOnce()
	if err != nil {
		t.Fatalf("making fixture hashes: %v", err)
	}
	return h
}

// fillHashes replaces @HMAC@, @ARGON@ and @PW@ in a fixture with real hashes.
func fillHashes(t *testing.T, s string) string {
	t.Helper()
	h := testHashes(t)
	return strings.NewReplacer("@HMAC@", h.hmac, "@ARGON@", h.argon, "@PW@", h.password).Replace(s)
}

func mapEnv(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

// validClient0 is a correct clients[0], so that errors are shown to name
// clients[1] rather than the first client.
const validClient0 = `{"client_id": "svc", "client_secret_hash": "@HMAC@", "grant_types": ["client_credentials"]}`

// secondClient returns a config whose clients[1] is c.
func secondClient(c string) string {
	return `{"clients": [` + validClient0 + `, ` + c + `]}`
}

// secondUser returns a config whose users[1] is u.
func secondUser(u string) string {
	return `{"users": [{"username": "root", "password_hash": "@PW@"}, ` + u + `]}`
}

// spa builds a public authorization-code client with extra fields spliced in.
func spa(extra string) string {
	s := `{"client_id": "spa", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]`
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

// spaRedirect is a public client whose only redirect URI is uri (a JSON string body).
func spaRedirect(uri string) string {
	return secondClient(spa(`"redirect_uris": ["https://app.example.com/ok", "` + uri + `"]`))
}

// api is an apis[] entry offering one scope.
func api(id, scope string) string {
	return fmt.Sprintf(`{"id": %q, "name": %q, "base_url": "https://api.example.com/%s", "scopes": {%q: "Described"}}`, id, id, id, scope)
}

func TestParseConfigErrors(t *testing.T) {
	const (
		cs  = `"client_secret": "dev-secret"`
		cc  = `"grant_types": ["client_credentials"]`
		pub = `"token_endpoint_auth_method": "none"`
	)
	long := strings.Repeat("a", 129)
	tests := []struct {
		name   string
		config string
		env    map[string]string
		want   string // the whole error message
		prefix bool   // want is only a prefix (the rest comes from package flows) ...
		also   string // ... which must contain this
	}{
		// JSON syntax and structure.
		{name: "syntax error", config: `{"issuer": }`,
			want: "config: invalid JSON at line 1, column 12: invalid character '}' looking for beginning of value\n{\"issuer\": }\n           ^"},
		{name: "syntax error in client", config: `{"clients": [{"client_id": "a",}]}`,
			want: "config: invalid JSON at line 1, column 32: invalid character '}' looking for beginning of object key string\n{\"clients\": [{\"client_id\": \"a\",}]}\n                               ^"},
		{name: "syntax error on a later line", config: "{\n\t\"addr\": \"127.0.0.1:4444\"\n  \"data_dir\": \"d\"\n}\n",
			want: "config: invalid JSON at line 3, column 3: invalid character '\"' after object key:value pair\n  \"data_dir\": \"d\"\n  ^"},
		{name: "empty file", config: ``, want: `config: unexpected end of JSON`},
		{name: "whitespace only", config: " \n\t", want: `config: unexpected end of JSON`},
		{name: "truncated", config: `{"addr": "x:1"`, want: `config: unexpected end of JSON`},
		{name: "trailing garbage", config: `{} x`, want: `config: unexpected data after the JSON value`},
		{name: "second object", config: `{}{}`, want: `config: unexpected data after the JSON value`},
		{name: "stray closing brace", config: `{"addr": "h:1"} }`, want: `config: unexpected data after the JSON value`},
		{name: "stray closing bracket", config: "{}\n]", want: `config: unexpected data after the JSON value`},
		{name: "trailing comma", config: `{},`, want: `config: unexpected data after the JSON value`},
		{name: "unknown top-level field", config: `{"isuer": "https://auth.example.com"}`,
			want: `config: unknown field "isuer"`},
		{name: "unknown field in clients[1]", config: secondClient(`{"client_id": "web", "redirect_uri": "https://a.example/cb"}`),
			want: `config: clients[1]: unknown field "redirect_uri"`},
		{name: "unknown field in tokens", config: `{"tokens": {"access_ttl": "1h"}}`,
			want: `config: tokens: unknown field "access_ttl"`},
		{name: "unknown field in keys", config: `{"keys": {"alg": "ES256"}}`,
			want: `config: keys: unknown field "alg"`},
		{name: "unknown field in users[1]", config: secondUser(`{"username": "bob", "pasword": "x"}`),
			want: `config: users[1]: unknown field "pasword"`},
		{name: "grant_types is a string", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": "client_credentials"}`),
			want: `config: clients[1].grant_types: expected []string, got string`},
		{name: "trusted is a string", config: secondClient(`{"client_id": "web", "trusted": "yes"}`),
			want: `config: clients[1].trusted: expected bool, got string`},
		{name: "claim value is a number", config: secondUser(`{"username": "bob", "password": "x", "claims": {"age": 42}}`),
			want: `config: users[1].claims: expected string, got number`},
		{name: "addr is a number", config: `{"addr": 4444}`, want: `config: addr: expected string, got number`},

		// Clients: identity and authentication.
		{name: "unknown grant", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": ["client_credentials", "pasword"]}`),
			want: `config: clients[1].grant_types: unknown grant "pasword"`},
		{name: "duplicate grant", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": ["client_credentials", "client_credentials"]}`),
			want: `config: clients[1].grant_types: grant "client_credentials" listed twice`},
		{name: "no grant types", config: secondClient(`{"client_id": "web", ` + cs + `}`),
			want: `config: clients[1].grant_types: is required`},
		{name: "empty grant types", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": []}`),
			want: `config: clients[1].grant_types: is required`},
		{name: "missing client_id", config: secondClient(`{` + cs + `, ` + cc + `}`),
			want: `config: clients[1].client_id: is required`},
		{name: "client_id with space", config: secondClient(`{"client_id": "my app", ` + cs + `, ` + cc + `}`),
			want: `config: clients[1].client_id: "my app" must be 1-128 characters of A-Z a-z 0-9 . _ ~ -`},
		{name: "client_id with colon", config: secondClient(`{"client_id": "a:b", ` + cs + `, ` + cc + `}`),
			want: `config: clients[1].client_id: "a:b" must be 1-128 characters of A-Z a-z 0-9 . _ ~ -`},
		{name: "client_id too long", config: secondClient(`{"client_id": "` + long + `", ` + cs + `, ` + cc + `}`),
			want: `config: clients[1].client_id: "` + long + `" must be 1-128 characters of A-Z a-z 0-9 . _ ~ -`},
		{name: "duplicate client_id", config: secondClient(`{"client_id": "svc", ` + cs + `, ` + cc + `}`),
			want: `config: clients[1].client_id: "svc" is already used by clients[0]`},
		{name: "confidential client without secret", config: secondClient(`{"client_id": "web", ` + cc + `}`),
			want: "config: clients[1]: a confidential client needs client_secret_hash (see `postern clients secret`), or token_endpoint_auth_method \"none\" for a public client"},
		{name: "client_secret_post client without secret", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "client_secret_post", ` + cc + `}`),
			want: "config: clients[1]: a confidential client needs client_secret_hash (see `postern clients secret`), or token_endpoint_auth_method \"none\" for a public client"},
		{name: "public client with plain secret", config: secondClient(spa(cs + `, "redirect_uris": ["https://a.example/cb"]`)),
			want: `config: clients[1]: a public client (token_endpoint_auth_method "none") must not have a secret`},
		{name: "public client with secret hash", config: secondClient(spa(`"client_secret_hash": "@HMAC@", "redirect_uris": ["https://a.example/cb"]`)),
			want: `config: clients[1]: a public client (token_endpoint_auth_method "none") must not have a secret`},
		{name: "both hash and plain secret", config: secondClient(`{"client_id": "web", "client_secret_hash": "@HMAC@", ` + cs + `, ` + cc + `}`),
			want: `config: clients[1]: set client_secret_hash or client_secret, not both`},
		{name: "plain secret that looks like a hash", config: secondClient(`{"client_id": "web", "client_secret": "@HMAC@", ` + cc + `}`),
			want: `config: clients[1].client_secret: looks like a hash; put it in client_secret_hash`},
		{name: "plain secret starting with $", config: secondClient(`{"client_id": "web", "client_secret": "$ecret", ` + cc + `}`),
			want: `config: clients[1].client_secret: looks like a hash; put it in client_secret_hash`},
		{name: "truncated hmac hash", config: secondClient(`{"client_id": "web", "client_secret_hash": "$hmac-sha256$c2FsdA", ` + cc + `}`),
			want: `config: clients[1].client_secret_hash: `, prefix: true, also: "malformed hash: hmac-sha256"},
		{name: "hmac hash with short mac", config: secondClient(`{"client_id": "web", "client_secret_hash": "$hmac-sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAA", ` + cc + `}`),
			want: `config: clients[1].client_secret_hash: `, prefix: true, also: "mac is 3 bytes"},
		{name: "bcrypt hash", config: secondClient(`{"client_id": "web", "client_secret_hash": "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", ` + cc + `}`),
			want: `config: clients[1].client_secret_hash: `, prefix: true, also: "unknown hash format"},
		{name: "plaintext in client_secret_hash", config: secondClient(`{"client_id": "web", "client_secret_hash": "s3cret", ` + cc + `}`),
			want: `config: clients[1].client_secret_hash: `, prefix: true, also: "unknown hash format"},
		{name: "argon2id hash with bad parameters", config: secondClient(`{"client_id": "web", "client_secret_hash": "$argon2id$v=19$m=65536,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", ` + cc + `}`),
			want: `config: clients[1].client_secret_hash: `, prefix: true, also: "malformed hash: argon2id"},
		{name: "rotate_after below a day", config: `{"keys": {"rotate_after": "1h"}}`,
			want: `config: keys.rotate_after: 1h0m0s is shorter than 24h`},
		{name: "system secret referenced", config: `{"clients": [{"client_id": "web", "client_name": "${POSTERN_SECRET}", "client_secret": "x-0123456789", "grant_types": ["client_credentials"]}]}`,
			env:  map[string]string{"POSTERN_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret-s3cret"},
			want: `config: clients[0].client_name: ${POSTERN_SECRET} may not appear in the configuration`},
		{name: "bad forwarded_header", config: `{"forwarded_header": "x-real-ip"}`,
			want: `config: forwarded_header: expected "x-forwarded" (X-Forwarded-For) or "forwarded" (RFC 7239), got "x-real-ip"`},
		{name: "username equals a client_id", config: `{"clients": [{"client_id": "billing", "client_secret": "x-0123456789", "grant_types": ["client_credentials"]}], "users": [{"username": "billing", "password": "pw"}]}`,
			want: `config: users[0].username: "billing" is also the client_id of clients[0]; subjects of users and machines must differ`},
		{name: "tls without key_file", config: `{"tls": {"cert_file": "cert.pem"}}`,
			want: `config: tls.key_file: is required with cert_file`},
		{name: "tls with client CA", config: `{"tls": {"cert_file": "c.pem", "key_file": "k.pem", "ca_file": "ca.pem"}}`,
			want: `config: tls.ca_file: client certificates are not supported; clients authenticate at the token endpoint`},
		{name: "tls with a missing certificate", config: `{"tls": {"cert_file": "/nonexistent/c.pem", "key_file": "/nonexistent/k.pem"}}`,
			want: `config: tls: load certificate: open /nonexistent/c.pem: no such file or directory`},
		{name: "bad trusted proxy", config: `{"trusted_proxies": ["10.0.0.0/8", "lb.internal"]}`,
			want: `config: trusted_proxies[1]: "lb.internal" is not an IP address or CIDR prefix`},
		{name: "trusted proxy with host bits", config: `{"trusted_proxies": ["10.1.2.3/8"]}`,
			want: `config: trusted_proxies[0]: "10.1.2.3/8" has host bits set; did you mean 10.0.0.0/8?`},
		{name: "unknown auth method", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "client_secret_jwt", ` + cc + `}`),
			want: `config: clients[1].token_endpoint_auth_method: unknown method "client_secret_jwt" (want client_secret_basic, client_secret_post, private_key_jwt or none)`},
		{name: "private_key_jwt without keys", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "private_key_jwt", ` + cc + `}`),
			want: `config: clients[1]: a private_key_jwt client needs jwks (its public keys) or jwks_uri`},
		{name: "private_key_jwt with jwks and jwks_uri", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + testPublicJWKS + `, "jwks_uri": "https://web.example.com/jwks", ` + cc + `}`),
			want: `config: clients[1]: set jwks or jwks_uri, not both`},
		{name: "private_key_jwt with a private key", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + testPrivateJWKS + `, ` + cc + `}`),
			want: `config: clients[1].jwks: keys[0] contains private key material; register only the public key`},
		{name: "private_key_jwt with plain http jwks_uri", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://web.example.com/jwks", ` + cc + `}`),
			want: `config: clients[1].jwks_uri: "http://web.example.com/jwks" must be an https URL (plain http only on loopback)`},
		{name: "private_key_jwt with HS256", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + testPublicJWKS + `, "token_endpoint_auth_signing_alg": "HS256", ` + cc + `}`),
			want: `config: clients[1].token_endpoint_auth_signing_alg: unsupported algorithm "HS256" (want one of RS256, PS256, ES256)`},
		{name: "private_key_jwt with a secret", config: secondClient(`{"client_id": "web", "token_endpoint_auth_method": "private_key_jwt", "jwks": ` + testPublicJWKS + `, "client_secret": "x-0123456789", ` + cc + `}`),
			want: `config: clients[1]: a private_key_jwt client authenticates with its key and must not have a secret`},
		{name: "jwks on a secret client", config: secondClient(`{"client_id": "web", "jwks": ` + testPublicJWKS + `, "client_secret": "x-0123456789", ` + cc + `}`),
			want: `config: clients[1]: jwks, jwks_uri and token_endpoint_auth_signing_alg belong to token_endpoint_auth_method "private_key_jwt"`},

		// Clients: grant combinations.
		{name: "client_credentials on a public client", config: secondClient(`{"client_id": "web", ` + pub + `, ` + cc + `}`),
			want: `config: clients[1].grant_types: client_credentials needs a confidential client (RFC 6749 §4.4)`},
		{name: "password grant without trusted", config: secondClient(`{"client_id": "cli", ` + cs + `, "grant_types": ["password"]}`),
			want: `config: clients[1].grant_types: the password grant is only for first-party clients with "trusted": true`},
		{name: "password grant with trusted false", config: secondClient(`{"client_id": "cli", ` + cs + `, "grant_types": ["password"], "trusted": false}`),
			want: `config: clients[1].grant_types: the password grant is only for first-party clients with "trusted": true`},
		{name: "refresh_token alone", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": ["refresh_token"]}`),
			want: `config: clients[1].grant_types: refresh_token needs authorization_code or password: no other grant issues refresh tokens`},
		{name: "refresh_token with client_credentials", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": ["client_credentials", "refresh_token"]}`),
			want: `config: clients[1].grant_types: refresh_token needs authorization_code or password: no other grant issues refresh tokens`},
		{name: "refresh_token with implicit", config: secondClient(`{"client_id": "web", ` + pub + `, "grant_types": ["implicit", "refresh_token"], "redirect_uris": ["https://a.example/cb"]}`),
			want: `config: clients[1].grant_types: refresh_token needs authorization_code or password: no other grant issues refresh tokens`},
		{name: "authorization_code without redirect_uris", config: secondClient(spa("")),
			want: `config: clients[1].redirect_uris: is required for authorization_code and implicit`},
		{name: "implicit with empty redirect_uris", config: secondClient(`{"client_id": "web", ` + pub + `, "grant_types": ["implicit"], "redirect_uris": []}`),
			want: `config: clients[1].redirect_uris: is required for authorization_code and implicit`},
		{name: "redirect_uris on a client_credentials client", config: secondClient(`{"client_id": "web", ` + cs + `, ` + cc + `, "redirect_uris": ["https://a.example/cb"]}`),
			want: `config: clients[1].redirect_uris: only authorization_code and implicit clients have redirect URIs`},
		{name: "redirect_uris on a password client", config: secondClient(`{"client_id": "web", ` + cs + `, "grant_types": ["password"], "trusted": true, "redirect_uris": ["https://a.example/cb"]}`),
			want: `config: clients[1].redirect_uris: only authorization_code and implicit clients have redirect URIs`},

		// Clients: redirect URIs. The bad URI is redirect_uris[1].
		{name: "redirect URI with fragment", config: spaRedirect(`https://app.example.com/cb#top`),
			want: `config: clients[1].redirect_uris[1]: "https://app.example.com/cb#top" must not contain a fragment`},
		{name: "redirect URI with empty fragment", config: spaRedirect(`https://app.example.com/cb#`),
			want: `config: clients[1].redirect_uris[1]: "https://app.example.com/cb#" must not contain a fragment`},
		{name: "redirect URI with wildcard host", config: spaRedirect(`https://*.example.com/cb`),
			want: `config: clients[1].redirect_uris[1]: "https://*.example.com/cb": wildcards are not allowed; redirect URIs match exactly`},
		{name: "redirect URI with wildcard path", config: spaRedirect(`https://app.example.com/*`),
			want: `config: clients[1].redirect_uris[1]: "https://app.example.com/*": wildcards are not allowed; redirect URIs match exactly`},
		{name: "http redirect to a public host", config: spaRedirect(`http://app.example.com/cb`),
			want: `config: clients[1].redirect_uris[1]: "http://app.example.com/cb": plain http is only allowed for loopback addresses`},
		{name: "http redirect to localhost lookalike", config: spaRedirect(`http://localhost.evil.example/cb`),
			want: `config: clients[1].redirect_uris[1]: "http://localhost.evil.example/cb": plain http is only allowed for loopback addresses`},
		{name: "http redirect with localhost userinfo", config: spaRedirect(`http://localhost@evil.example/cb`),
			want: `config: clients[1].redirect_uris[1]: "http://localhost@evil.example/cb": plain http is only allowed for loopback addresses`},
		{name: "http redirect to a private address", config: spaRedirect(`http://10.0.0.1/cb`),
			want: `config: clients[1].redirect_uris[1]: "http://10.0.0.1/cb": plain http is only allowed for loopback addresses`},
		{name: "upper-case HTTP scheme", config: spaRedirect(`HTTP://app.example.com/cb`),
			want: `config: clients[1].redirect_uris[1]: "HTTP://app.example.com/cb": plain http is only allowed for loopback addresses`},
		{name: "relative redirect URI", config: spaRedirect(`/callback`),
			want: `config: clients[1].redirect_uris[1]: "/callback" is not an absolute URI`},
		{name: "scheme-less redirect URI", config: spaRedirect(`app.example.com/callback`),
			want: `config: clients[1].redirect_uris[1]: "app.example.com/callback" is not an absolute URI`},
		{name: "empty redirect URI", config: spaRedirect(``),
			want: `config: clients[1].redirect_uris[1]: "" is not an absolute URI`},
		{name: "https redirect without host", config: spaRedirect(`https:///cb`),
			want: `config: clients[1].redirect_uris[1]: "https:///cb" has no host`},
		{name: "javascript redirect URI", config: spaRedirect(`javascript:alert(1)`),
			want: `config: clients[1].redirect_uris[1]: "javascript:alert(1)": scheme "javascript" is not allowed`},
		{name: "mixed-case javascript redirect URI", config: spaRedirect(`JavaScript:alert(1)`),
			want: `config: clients[1].redirect_uris[1]: "JavaScript:alert(1)": scheme "javascript" is not allowed`},
		{name: "data redirect URI", config: spaRedirect(`data:text/html,hi`),
			want: `config: clients[1].redirect_uris[1]: "data:text/html,hi": scheme "data" is not allowed`},

		// Clients: response types and scope.
		{name: "token response type without implicit", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "response_types": ["code", "token"]`)),
			want: `config: clients[1].response_types: "token" needs grant implicit`},
		{name: "code response type without authorization_code", config: secondClient(`{"client_id": "web", ` + pub + `, "grant_types": ["implicit"], "redirect_uris": ["https://a.example/cb"], "response_types": ["code"]}`),
			want: `config: clients[1].response_types: "code" needs grant authorization_code`},
		{name: "id_token response type without implicit", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "response_types": ["id_token"]`)),
			want: `config: clients[1].response_types: "id_token" needs grant implicit`},
		{name: "hybrid response type", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "response_types": ["code id_token"]`)),
			want: `config: clients[1].response_types: unknown response type "code id_token" (want code, token, "id_token token" or id_token)`},
		{name: "space-joined response types", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "response_types": ["code token"]`)),
			want: `config: clients[1].response_types: unknown response type "code token" (want code, token, "id_token token" or id_token)`},
		// Clients: OpenID Connect logout.
		{name: "post-logout redirect with a fragment", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["https://a.example/bye#x"]`)),
			want: `config: clients[1].post_logout_redirect_uris[0]: "https://a.example/bye#x" must not contain a fragment`},
		{name: "post-logout redirect over plain http", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["http://a.example/bye"]`)),
			want: `config: clients[1].post_logout_redirect_uris[0]: "http://a.example/bye": plain http is only allowed for loopback addresses`},
		{name: "post-logout redirect twice", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "post_logout_redirect_uris": ["https://a.example/bye", "https://a.example/bye"]`)),
			want: `config: clients[1].post_logout_redirect_uris[1]: "https://a.example/bye" listed twice`},
		{name: "back-channel logout over plain http", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "backchannel_logout_uri": "http://a.example/logout"`)),
			want: `config: clients[1].backchannel_logout_uri: "http://a.example/logout" must be an https URL (plain http only on loopback)`},
		{name: "back-channel logout with a fragment", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "backchannel_logout_uri": "https://a.example/logout#x"`)),
			want: `config: clients[1].backchannel_logout_uri: "https://a.example/logout#x" must not contain a fragment`},
		{name: "back-channel logout relative", config: secondClient(spa(`"redirect_uris": ["https://a.example/cb"], "backchannel_logout_uri": "/logout"`)),
			want: `config: clients[1].backchannel_logout_uri: "/logout" must be an https URL (plain http only on loopback)`},
		{name: "logout for a machine client", config: secondClient(`{"client_id": "m", "client_secret": "m-dev-secret-0123456789", "grant_types": ["client_credentials"], "backchannel_logout_uri": "https://a.example/logout"}`),
			want: `config: clients[1]: post_logout_redirect_uris and backchannel_logout_uri belong to authorization_code and implicit clients`},
		{name: "scope with a quote", config: secondClient(`{"client_id": "web", ` + cs + `, ` + cc + `, "scope": "read wr\"ite"}`),
			want: `config: clients[1].scope: invalid scope "wr\"ite"`},
		{name: "scope with a backslash", config: secondClient(`{"client_id": "web", ` + cs + `, ` + cc + `, "scope": "read wr\\ite"}`),
			want: `config: clients[1].scope: invalid scope "wr\\ite"`},
		{name: "scope with non-ASCII", config: secondClient(`{"client_id": "web", ` + cs + `, ` + cc + `, "scope": "read écrire"}`),
			want: `config: clients[1].scope: invalid scope "écrire"`},

		// Tokens.
		{name: "access_token_format jwe", config: `{"tokens": {"access_token_format": "jwe"}}`,
			want: `config: tokens.access_token_format: unknown format "jwe" (want "opaque" or "jwt")`},
		{name: "access_token_format upper case", config: `{"tokens": {"access_token_format": "JWT"}}`,
			want: `config: tokens.access_token_format: unknown format "JWT" (want "opaque" or "jwt")`},
		{name: "duration in words", config: `{"tokens": {"access_token_ttl": "1 hour"}}`,
			want: `config: tokens.access_token_ttl: bad duration "1 hour"`},
		{name: "duration in days", config: `{"tokens": {"refresh_token_ttl": "30d"}}`,
			want: `config: tokens.refresh_token_ttl: bad duration "30d"`},
		{name: "duration forever", config: `{"tokens": {"access_token_ttl": "forever"}}`,
			want: `config: tokens.access_token_ttl: bad duration "forever"`},
		{name: "retry window in words", config: `{"tokens": {"refresh_retry_window": "soon"}}`,
			want: `config: tokens.refresh_retry_window: bad duration "soon"`},
		{name: "retry window too long", config: `{"tokens": {"refresh_retry_window": "10m"}}`,
			want: `config: tokens.refresh_retry_window: 10m0s exceeds the limit of 5m0s`},
		{name: "retry window negative", config: `{"tokens": {"refresh_retry_window": "-1s"}}`,
			want: `config: tokens.refresh_retry_window: -1s is negative`},
		{name: "retry window outlasts access tokens", config: `{"tokens": {"access_token_ttl": "1m", "refresh_retry_window": "1m"}}`,
			want: `config: tokens.refresh_retry_window: 1m0s must be shorter than the access-token lifetime (1m0s)`},
		{name: "client retry window without refresh tokens", config: secondClient(spa(`"redirect_uris": ["https://app.example.com/cb"], "refresh_retry_window": "10s"`)),
			want: `config: clients[1].refresh_retry_window: the client has no refresh_token grant`},
		{name: "client retry window too long", config: secondClient(`{"client_id": "spa", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://app.example.com/cb"], "refresh_retry_window": "6m"}`),
			want: `config: clients[1].refresh_retry_window: 6m0s exceeds the limit of 5m0s`},
		{name: "duration as a number", config: `{"tokens": {"access_token_ttl": 3600}}`,
			want: `config: tokens.access_token_ttl: expected a duration string such as "1h" or "30m"`},
		{name: "tokens is a string", config: `{"tokens": "1h"}`,
			want: `config: tokens: expected an object, got string`},
		{name: "access_token_ttl below 1s", config: `{"tokens": {"access_token_ttl": "500ms"}}`,
			want: `config: tokens.access_token_ttl: must be at least 1s, got 500ms`},
		{name: "negative refresh_token_ttl", config: `{"tokens": {"refresh_token_ttl": "-1h"}}`,
			want: `config: tokens.refresh_token_ttl: must be at least 1s, got -1h0m0s`},
		{name: "authorization_code_ttl below 1s", config: `{"tokens": {"authorization_code_ttl": "1ns"}}`,
			want: `config: tokens.authorization_code_ttl: must be at least 1s, got 1ns`},
		{name: "implicit_access_token_ttl below 1s", config: `{"tokens": {"implicit_access_token_ttl": "999ms"}}`,
			want: `config: tokens.implicit_access_token_ttl: must be at least 1s, got 999ms`},
		{name: "implicit_access_token_ttl 25h", config: `{"tokens": {"implicit_access_token_ttl": "25h"}, "keys": {"rotation_overlap": "48h"}}`,
			want: `config: tokens.implicit_access_token_ttl: 25h0m0s exceeds the 24h limit for implicit tokens`},
		{name: "authorization_code_ttl 2h", config: `{"tokens": {"authorization_code_ttl": "2h"}}`,
			want: `config: tokens.authorization_code_ttl: 2h0m0s is too long; codes must be short-lived (at most 1h)`},

		// Keys.
		{name: "HS256 keys", config: `{"keys": {"algorithm": "HS256"}}`,
			want: `config: keys.algorithm: unknown algorithm "HS256" (want ES256 or RS256)`},
		{name: "rotation_overlap shorter than access_token_ttl", config: `{"keys": {"rotation_overlap": "30m"}}`,
			want: `config: keys.rotation_overlap: 30m0s is shorter than access_token_ttl 1h0m0s: tokens would outlive their key`},
		{name: "rotation_overlap shorter than a long access_token_ttl", config: `{"tokens": {"access_token_ttl": "48h"}}`,
			want: `config: keys.rotation_overlap: 24h0m0s is shorter than access_token_ttl 48h0m0s: tokens would outlive their key`},
		{name: "rotation_overlap shorter than implicit_access_token_ttl", config: `{"tokens": {"access_token_ttl": "10m", "implicit_access_token_ttl": "30m"}, "keys": {"rotation_overlap": "15m"}}`,
			want: `config: keys.rotation_overlap: 15m0s is shorter than implicit_access_token_ttl 30m0s: tokens would outlive their key`},
		{name: "negative rotation_overlap", config: `{"keys": {"rotation_overlap": "-24h"}}`,
			want: `config: keys.rotation_overlap: must be positive`},
		{name: "rotation_overlap in days", config: `{"keys": {"rotation_overlap": "1d"}}`,
			want: `config: keys.rotation_overlap: bad duration "1d"`},

		// Login.
		{name: "unknown field in login", config: `{"login": {"session_timeout": "8h"}}`,
			want: `config: login: unknown field "session_timeout"`},
		{name: "bad session_ttl", config: `{"login": {"session_ttl": "1 day"}}`,
			want: `config: login.session_ttl: bad duration "1 day"`},
		{name: "session_ttl below 1m", config: `{"login": {"session_ttl": "59s"}}`,
			want: `config: login.session_ttl: 59s is outside 1m to 720h`},
		{name: "negative session_ttl", config: `{"login": {"session_ttl": "-8h"}}`,
			want: `config: login.session_ttl: -8h0m0s is outside 1m to 720h`},
		{name: "session_ttl above 720h", config: `{"login": {"session_ttl": "721h"}}`,
			want: `config: login.session_ttl: 721h0m0s is outside 1m to 720h`},

		// Issuer and addr.
		{name: "relative issuer", config: `{"issuer": "/auth"}`,
			want: `config: issuer: expected an absolute http(s) URL, got "/auth"`},
		{name: "issuer without scheme", config: `{"issuer": "auth.example.com"}`,
			want: `config: issuer: expected an absolute http(s) URL, got "auth.example.com"`},
		{name: "ftp issuer", config: `{"issuer": "ftp://auth.example.com"}`,
			want: `config: issuer: expected an absolute http(s) URL, got "ftp://auth.example.com"`},
		{name: "issuer without host", config: `{"issuer": "https://"}`,
			want: `config: issuer: expected an absolute http(s) URL, got "https://"`},
		{name: "issuer with query", config: `{"issuer": "https://auth.example.com/?tenant=a"}`,
			want: `config: issuer: must not contain a query, fragment or user info (RFC 8414 §2)`},
		{name: "issuer with empty query", config: `{"issuer": "https://auth.example.com/?"}`,
			want: `config: issuer: must not contain a query, fragment or user info (RFC 8414 §2)`},
		{name: "issuer with fragment", config: `{"issuer": "https://auth.example.com/#x"}`,
			want: `config: issuer: must not contain a query, fragment or user info (RFC 8414 §2)`},
		{name: "issuer with empty fragment", config: `{"issuer": "https://auth.example.com#"}`,
			want: `config: issuer: must not contain a query, fragment or user info (RFC 8414 §2)`},
		{name: "issuer with user info", config: `{"issuer": "https://admin@auth.example.com"}`,
			want: `config: issuer: must not contain a query, fragment or user info (RFC 8414 §2)`},
		{name: "addr without port", config: `{"addr": "localhost"}`,
			want: `config: addr: expected host:port, got "localhost"`},
		{name: "addr as URL", config: `{"addr": "http://127.0.0.1:4444"}`,
			want: `config: addr: expected host:port, got "http://127.0.0.1:4444"`},

		// Environment expansion.
		{name: "missing variable in client secret",
			config: secondClient(`{"client_id": "web", "client_secret": "${MISSING_VAR}", ` + cc + `}`),
			env:    map[string]string{"OTHER": "x"},
			want:   `config: clients[1].client_secret: environment variable MISSING_VAR is not set`},
		{name: "missing variable embedded in a string",
			config: `{"issuer": "https://${HOST}/${TENANT}"}`,
			env:    map[string]string{"HOST": "auth.example.com"},
			want:   `config: issuer: environment variable TENANT is not set`},
		{name: "missing variable in a nested object",
			config: `{"tokens": {"access_token_ttl": "${TTL}"}}`,
			want:   `config: tokens.access_token_ttl: environment variable TTL is not set`},
		{name: "empty variable counts as unset",
			config: secondClient(`{"client_id": "web", "client_secret_hash": "${WEB_HASH}", ` + cc + `}`),
			env:    map[string]string{"WEB_HASH": ""},
			want:   `config: clients[1].client_secret_hash: environment variable WEB_HASH is not set`},
		{name: "expanded value is still validated",
			config: secondClient(`{"client_id": "web", "client_secret": "${WEB_SECRET}", ` + cc + `}`),
			env:    map[string]string{"WEB_SECRET": "$argon2id$pasted-into-the-wrong-field"},
			want:   `config: clients[1].client_secret: looks like a hash; put it in client_secret_hash`},

		// Users.
		{name: "user without username", config: secondUser(`{"password": "x"}`),
			want: `config: users[1].username: is required`},
		{name: "username with colon", config: secondUser(`{"username": "corp:alice", "password": "x"}`),
			want: `config: users[1].username: "corp:alice" must be 1-256 characters without spaces or colons`},
		{name: "username with space", config: secondUser(`{"username": "alice smith", "password": "x"}`),
			want: `config: users[1].username: "alice smith" must be 1-256 characters without spaces or colons`},
		{name: "duplicate username", config: secondUser(`{"username": "root", "password": "x"}`),
			want: `config: users[1].username: "root" is already used by users[0]`},
		{name: "password and password_hash", config: secondUser(`{"username": "bob", "password": "x", "password_hash": "@PW@"}`),
			want: `config: users[1]: set password_hash or password, not both`},
		{name: "neither password nor password_hash", config: secondUser(`{"username": "bob"}`),
			want: "config: users[1]: password_hash is required (see `postern users hash`)"},
		{name: "bad password_hash", config: secondUser(`{"username": "bob", "password_hash": "$argon2i$v=19$m=65536,t=1,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}`),
			want: `config: users[1].password_hash: `, prefix: true, also: `"argon2i" is not supported`},
		{name: "password_hash is a client secret hash", config: secondUser(`{"username": "bob", "password_hash": "@HMAC@"}`),
			want: `config: users[1].password_hash: `, prefix: true, also: `"hmac-sha256" is not supported`},
		{name: "reserved claim sub", config: secondUser(`{"username": "bob", "password": "x", "claims": {"email": "b@example.com", "sub": "admin"}}`),
			want: `config: users[1].claims.sub: is reserved by the token format`},
		{name: "reserved claim scope", config: secondUser(`{"username": "bob", "password": "x", "claims": {"scope": "admin"}}`),
			want: `config: users[1].claims.scope: is reserved by the token format`},
		// apis: the catalogue's own table (catalog/config_test.go) covers
		// each field; these show the top level hands the block over.
		{name: "apis not an array", config: `{"apis": {"id": "orders"}}`,
			want: `config: apis: expected `, prefix: true, also: `got object`},
		{name: "api field", config: `{"apis": [` + api("orders", "orders.read") + `, {"id": "billing", "name": "Billing", "base_url": "http://billing.example.com", "scopes": {"invoices.read": "Read invoices"}}]}`,
			want: `config: apis[1].base_url: "http://billing.example.com": plain http is only allowed for loopback addresses; use https (clients send tokens there)`},
		{name: "api id twice", config: `{"apis": [` + api("orders", "orders.read") + `, ` + api("orders", "orders.write") + `]}`,
			want: `config: apis[1].id: "orders" is already used by apis[0]`},
		{name: "scope in two apis", config: `{"apis": [` + api("orders", "orders.read") + `, ` + api("shop", "orders.read") + `]}`,
			want: `config: apis[1].scopes.orders.read: is already offered by apis[0] (orders); a scope belongs to one API`},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("duplicate test name %q", tt.name)
		}
		seen[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(fillHashes(t, tt.config)), mapEnv(tt.env))
			if err == nil {
				t.Fatalf("parseConfig succeeded, want error %q", tt.want)
			}
			if cfg != nil {
				t.Errorf("parseConfig returned a config with its error: %+v", cfg)
			}
			got := err.Error()
			if tt.prefix {
				if !strings.HasPrefix(got, tt.want) || !strings.Contains(got[len(tt.want):], tt.also) || tt.also == "" {
					t.Errorf("error = %q\nwant a message starting %q and containing %q", got, tt.want, tt.also)
				}
			} else if got != tt.want {
				t.Errorf("error = %q\nwant    %q", got, tt.want)
			}
			var ce *confjson.Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want *confjson.Error", err)
			}
		})
	}
}

// Malformed hashes must be reported without echoing secret material from the
// hash into logs: at most the algorithm name.
func TestParseConfigHashErrorsDoNotEchoHash(t *testing.T) {
	const mac = "c2VjcmV0bWFjYnl0ZXM"
	cfg := secondClient(`{"client_id": "web", "client_secret_hash": "$hmac-sha256$AAAAAAAAAAAAAAAAAAAAAA$` + mac + `", "grant_types": ["client_credentials"]}`)
	_, err := parseConfig([]byte(fillHashes(t, cfg)), mapEnv(nil))
	if err == nil {
		t.Fatal("parseConfig accepted a hash with a 14-byte mac")
	}
	if strings.Contains(err.Error(), mac) {
		t.Errorf("error %q echoes the hash", err)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	for _, raw := range []string{`{}`, " {\n}\n", `{"tokens": {}, "keys": {}, "clients": [], "users": []}`, `{"tokens": null, "keys": null, "login": null, "saml_providers": []}`, `{"login": {}}`} {
		cfg, err := parseConfig([]byte(raw), mapEnv(nil))
		if err != nil {
			t.Fatalf("parseConfig(%q): %v", raw, err)
		}
		want := Config{
			Addr:    "127.0.0.1:4444",
			DataDir: "postern-data",
			Format:  authz.FormatOpaque,
			Lifetimes: clients.Lifetimes{
				AccessToken:         time.Hour,
				ImplicitAccessToken: 30 * time.Minute,
				RefreshToken:        720 * time.Hour,
				AuthorizationCode:   10 * time.Minute,
				RefreshRetryWindow:  30 * time.Second,
			},
			KeyAlgorithm:    "ES256",
			KeyOverlap:      24 * time.Hour,
			KeyRotate:       90 * 24 * time.Hour,
			ForwardedHeader: "x-forwarded",
			SessionTTL:      8 * time.Hour,
		}
		if len(cfg.Clients) != 0 || len(cfg.Users) != 0 || len(cfg.Warnings) != 0 {
			t.Errorf("parseConfig(%q): clients %v, users %v, warnings %v; want none", raw, cfg.Clients, cfg.Users, cfg.Warnings)
		}
		cfg.Clients, cfg.Users, cfg.Warnings = nil, nil, nil
		if !reflect.DeepEqual(*cfg, want) {
			t.Errorf("parseConfig(%q) =\n%+v\nwant\n%+v", raw, *cfg, want)
		}
	}
}

func TestParseConfigEnvExpansion(t *testing.T) {
	h := testHashes(t)
	raw := `{
		"issuer": "https://${HOST}/auth",
		"data_dir": "${STATE_DIR}/postern",
		"clients": [
			{"client_id": "svc", "client_secret_hash": "${SVC_HASH}", "grant_types": ["client_credentials"]},
			{"client_id": "dev", "client_name": "${NAME}", "client_secret": "pre-${SUFFIX}-mid-${SUFFIX}", "grant_types": ["client_credentials"], "scope": "$HOST ${SCOPE}"}
		]
	}`
	// NAME tries to break out of its JSON string and to be expanded again.
	name := `x", "trusted": true, "y": "${HOST}`
	env := map[string]string{
		"HOST":      "auth.example.com",
		"STATE_DIR": "/var/lib",
		"SVC_HASH":  h.hmac,
		"SUFFIX":    "abc",
		"NAME":      name,
		"SCOPE":     "api",
	}
	cfg, err := parseConfig([]byte(raw), mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer != "https://auth.example.com/auth" {
		t.Errorf("Issuer = %q", cfg.Issuer)
	}
	if cfg.DataDir != "/var/lib/postern" {
		t.Errorf("DataDir = %q", cfg.DataDir)
	}
	if len(cfg.Clients) != 2 {
		t.Fatalf("got %d clients, want 2", len(cfg.Clients))
	}
	if got := string(cfg.Clients[0].SecretHash); got != h.hmac {
		t.Errorf("clients[0] SecretHash = %q, want the hash from SVC_HASH %q", got, h.hmac)
	}
	dev := cfg.Clients[1]
	if got := string(dev.SecretHash); got != "pre-abc-mid-abc" {
		t.Errorf("clients[1] plain secret = %q, want %q", got, "pre-abc-mid-abc")
	}
	if dev.Name != name {
		t.Errorf("clients[1] Name = %q, want the variable's value verbatim %q", dev.Name, name)
	}
	if dev.Trusted {
		t.Error("a variable's value injected \"trusted\": true")
	}
	// Only ${NAME} is expanded, not $NAME.
	if want := []string{"$HOST", "api"}; !reflect.DeepEqual(dev.Scopes, want) {
		t.Errorf("clients[1] Scopes = %q, want %q", dev.Scopes, want)
	}
}

func TestParseConfigFull(t *testing.T) {
	h := testHashes(t)
	raw := fillHashes(t, `{
		"issuer": "https://auth.example.com/",
		"addr": "0.0.0.0:8443",
		"data_dir": "/var/lib/postern",
		"tokens": {
			"access_token_format": "jwt",
			"access_token_ttl": "15m",
			"implicit_access_token_ttl": "10m",
			"refresh_token_ttl": "48h",
			"authorization_code_ttl": "5m"
		},
		"keys": {"algorithm": "RS256", "rotation_overlap": "2h"},
		"login": {"session_ttl": "12h"},
		"clients": [
			{
				"client_id": "billing-service",
				"client_name": "Billing",
				"client_secret_hash": "@HMAC@",
				"grant_types": ["client_credentials"],
				"scope": "invoices:read  invoices:write",
				"audience": ["https://api.example.com"]
			},
			{
				"client_id": "spa",
				"token_endpoint_auth_method": "none",
				"grant_types": ["authorization_code", "refresh_token"],
				"response_types": ["code"],
				"redirect_uris": ["http://127.0.0.1:8080/callback", "http://localhost:3000/cb", "http://[::1]:9000/cb", "https://app.example.com/cb"],
				"scope": "openid profile"
			},
			{
				"client_id": "cli",
				"client_secret": "dev-only-secret",
				"token_endpoint_auth_method": "client_secret_post",
				"grant_types": ["password", "refresh_token"],
				"trusted": true
			},
			{
				"client_id": "com.example.app",
				"token_endpoint_auth_method": "none",
				"grant_types": ["authorization_code", "implicit"],
				"redirect_uris": ["com.example.app:/cb"]
			},
			{
				"client_id": "legacy",
				"client_secret_hash": "@ARGON@",
				"token_endpoint_auth_method": "client_secret_basic",
				"grant_types": ["client_credentials"]
			}
		],
		"users": [
			{"username": "alice", "password_hash": "@PW@", "claims": {"email": "alice@example.com", "name": "Alice"}},
			{"username": "bob@example.com", "password": "bob-pw"}
		]
	}`)
	cfg, err := parseConfig([]byte(raw), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	lt := clients.Lifetimes{
		AccessToken:         15 * time.Minute,
		ImplicitAccessToken: 10 * time.Minute,
		RefreshToken:        48 * time.Hour,
		AuthorizationCode:   5 * time.Minute,
		RefreshRetryWindow:  30 * time.Second,
	}
	if cfg.Issuer != "https://auth.example.com" {
		t.Errorf("Issuer = %q, want the trailing slash trimmed", cfg.Issuer)
	}
	if cfg.Addr != "0.0.0.0:8443" || cfg.DataDir != "/var/lib/postern" {
		t.Errorf("Addr, DataDir = %q, %q", cfg.Addr, cfg.DataDir)
	}
	if cfg.Format != authz.FormatJWT {
		t.Errorf("Format = %q, want jwt", cfg.Format)
	}
	if cfg.Lifetimes != lt {
		t.Errorf("Lifetimes = %+v, want %+v", cfg.Lifetimes, lt)
	}
	if cfg.KeyAlgorithm != "RS256" || cfg.KeyOverlap != 2*time.Hour {
		t.Errorf("KeyAlgorithm, KeyOverlap = %q, %s", cfg.KeyAlgorithm, cfg.KeyOverlap)
	}
	if cfg.SessionTTL != 12*time.Hour {
		t.Errorf("SessionTTL = %s, want 12h", cfg.SessionTTL)
	}

	wantClients := []*clients.Client{
		{
			ID:                      "billing-service",
			Name:                    "Billing",
			SecretHash:              []byte(h.hmac),
			GrantTypes:              []string{"client_credentials"},
			Scopes:                  []string{"invoices:read", "invoices:write"},
			Audience:                []string{"https://api.example.com"},
			TokenEndpointAuthMethod: clients.AuthSecretBasic,
			Lifetimes:               lt,
		},
		{
			ID:                      "spa",
			RedirectURIs:            []string{"http://127.0.0.1:8080/callback", "http://localhost:3000/cb", "http://[::1]:9000/cb", "https://app.example.com/cb"},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			Scopes:                  []string{"openid", "profile"},
			TokenEndpointAuthMethod: clients.AuthNone,
			Lifetimes:               lt,
		},
		{
			ID:                      "cli",
			SecretHash:              []byte("dev-only-secret"),
			GrantTypes:              []string{"password", "refresh_token"},
			TokenEndpointAuthMethod: clients.AuthSecretPost,
			Trusted:                 true,
			Lifetimes:               lt,
		},
		{
			ID:                      "com.example.app",
			RedirectURIs:            []string{"com.example.app:/cb"},
			GrantTypes:              []string{"authorization_code", "implicit"},
			TokenEndpointAuthMethod: clients.AuthNone,
			Lifetimes:               lt,
		},
		{
			ID:                      "legacy",
			SecretHash:              []byte(h.argon),
			GrantTypes:              []string{"client_credentials"},
			TokenEndpointAuthMethod: clients.AuthSecretBasic,
			Lifetimes:               lt,
		},
	}
	if len(cfg.Clients) != len(wantClients) {
		t.Fatalf("got %d clients, want %d", len(cfg.Clients), len(wantClients))
	}
	for i, want := range wantClients {
		if got := cfg.Clients[i]; !reflect.DeepEqual(got, want) {
			t.Errorf("clients[%d] =\n%+v\nwant\n%+v", i, got, want)
		}
	}
	// What fosite will see for the parsed clients.
	if cfg.Clients[0].IsPublic() || !cfg.Clients[1].IsPublic() || cfg.Clients[2].IsPublic() {
		t.Error("IsPublic does not follow token_endpoint_auth_method")
	}
	if got := cfg.Clients[3].GetResponseTypes(); !reflect.DeepEqual([]string(got), []string{"code", "token", "id_token token", "id_token"}) {
		t.Errorf("com.example.app response types = %q, want code and token from its grants", got)
	}

	wantUsers := []identity.User{
		{Username: "alice", PasswordHash: h.password, Claims: map[string]string{"email": "alice@example.com", "name": "Alice"}},
		{Username: "bob@example.com", Password: "bob-pw"},
	}
	if !reflect.DeepEqual(cfg.Users, wantUsers) {
		t.Errorf("Users =\n%+v\nwant\n%+v", cfg.Users, wantUsers)
	}
	wantWarnings := []string{
		"clients[2] (cli) has a plain client_secret: for development only; use `postern clients secret` and client_secret_hash",
		"users[1] (bob@example.com) has a plain password: for development only; use `postern users hash` and password_hash",
	}
	if !reflect.DeepEqual(cfg.Warnings, wantWarnings) {
		t.Errorf("Warnings =\n%q\nwant\n%q", cfg.Warnings, wantWarnings)
	}
}

func TestParseConfigIssuer(t *testing.T) {
	for in, want := range map[string]string{
		"https://auth.example.com":       "https://auth.example.com",
		"https://auth.example.com/":      "https://auth.example.com",
		"https://example.com/auth/":      "https://example.com/auth",
		"https://example.com:8443/t/a/":  "https://example.com:8443/t/a",
		"http://127.0.0.1:4444":          "http://127.0.0.1:4444",
		"http://localhost:4444/tenant-a": "http://localhost:4444/tenant-a",
	} {
		cfg, err := parseConfig([]byte(`{"issuer": "`+in+`"}`), mapEnv(nil))
		if err != nil {
			t.Errorf("issuer %q: %v", in, err)
			continue
		}
		if cfg.Issuer != want {
			t.Errorf("issuer %q became %q, want %q", in, cfg.Issuer, want)
		}
	}
}

func TestParseConfigRedirectURIsAccepted(t *testing.T) {
	for _, uri := range []string{
		"com.example.app:/cb",
		"com.example.app:/oauth2redirect/example-provider",
		"http://127.0.0.1/cb",
		"http://127.0.0.1:49152/cb",
		"http://[::1]:8080/cb",
		"http://localhost:3000/callback",
		"https://app.example.com/cb?tenant=a",
		"https://app.example.com:8443/cb",
	} {
		raw := secondClient(spa(`"redirect_uris": ["` + uri + `"]`))
		cfg, err := parseConfig([]byte(fillHashes(t, raw)), mapEnv(nil))
		if err != nil {
			t.Errorf("redirect URI %q: %v", uri, err)
			continue
		}
		if got := cfg.Clients[1].RedirectURIs; !reflect.DeepEqual(got, []string{uri}) {
			t.Errorf("redirect URI %q stored as %q", uri, got)
		}
	}
}

func TestParseConfigDurationsAtLimits(t *testing.T) {
	raw := `{"tokens": {"access_token_ttl": "1s", "implicit_access_token_ttl": "24h", "refresh_token_ttl": "1s", "authorization_code_ttl": "1h"}, "login": {"session_ttl": "1m"}}`
	cfg, err := parseConfig([]byte(raw), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	// The default retry window shrinks to half a 1s access token.
	want := clients.Lifetimes{AccessToken: time.Second, ImplicitAccessToken: 24 * time.Hour, RefreshToken: time.Second, AuthorizationCode: time.Hour, RefreshRetryWindow: 500 * time.Millisecond}
	if cfg.Lifetimes != want {
		t.Errorf("Lifetimes = %+v, want %+v", cfg.Lifetimes, want)
	}
	// The default 24h overlap exactly covers a 24h token.
	if cfg.KeyOverlap != 24*time.Hour {
		t.Errorf("KeyOverlap = %s, want 24h", cfg.KeyOverlap)
	}
	if cfg.SessionTTL != time.Minute {
		t.Errorf("SessionTTL = %s, want 1m", cfg.SessionTTL)
	}
	cfg, err = parseConfig([]byte(`{"login": {"session_ttl": "720h"}}`), mapEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SessionTTL != 720*time.Hour {
		t.Errorf("SessionTTL = %s, want 720h", cfg.SessionTTL)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.json")
	if err := os.WriteFile(ok, []byte(`{"addr": "127.0.0.1:9999", "data_dir": "${D}"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(ok, mapEnv(map[string]string{"D": "/srv/p"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || cfg.DataDir != "/srv/p" {
		t.Errorf("Addr, DataDir = %q, %q", cfg.Addr, cfg.DataDir)
	}

	missing := filepath.Join(dir, "missing.json")
	_, err = loadConfig(missing, mapEnv(nil))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error %v, want a config: error naming %s and wrapping ErrNotExist", err, missing)
	}

	big := filepath.Join(dir, "big.json")
	// Valid JSON (an object followed by whitespace) one byte over the limit.
	data := append([]byte("{}"), make([]byte, confjson.MaxFileBytes-1)...)
	for i := 2; i < len(data); i++ {
		data[i] = ' '
	}
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadConfig(big, mapEnv(nil))
	if err == nil || !strings.Contains(err.Error(), "is larger than") {
		t.Errorf("oversized file: error %v, want a size error", err)
	}
	// At the limit exactly it loads.
	if err := os.WriteFile(big, data[:confjson.MaxFileBytes], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(big, mapEnv(nil)); err != nil {
		t.Errorf("file of exactly confjson.MaxFileBytes: %v", err)
	}
}

func TestQuickstartConfig(t *testing.T) {
	const path = "../../examples/quickstart/postern.json"
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		t.Skip("examples/quickstart/postern.json does not exist yet")
	}
	// The quickstart must run without any environment set up.
	cfg, err := loadConfig(path, func(name string) string {
		t.Errorf("quickstart config reads environment variable %s", name)
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*clients.Client{}
	for _, c := range cfg.Clients {
		byID[c.ID] = c
	}
	if c := byID["demo-service"]; c == nil {
		t.Error("no client demo-service")
	} else if !c.HasGrant(clients.GrantClientCredentials) || c.IsPublic() {
		t.Errorf("demo-service is not a confidential client_credentials client: %+v", c)
	}
	if c := byID["demo-spa"]; c == nil {
		t.Error("no client demo-spa")
	} else if !c.HasGrant(clients.GrantAuthorizationCode) || !c.IsPublic() || len(c.RedirectURIs) == 0 {
		t.Errorf("demo-spa is not a public authorization_code client with a redirect URI: %+v", c)
	}
	var alice *identity.User
	for i := range cfg.Users {
		if cfg.Users[i].Username == "alice" {
			alice = &cfg.Users[i]
		}
	}
	if alice == nil {
		t.Error("no user alice")
	}
}

// A P-256 key pair for the private_key_jwt rows (RFC 7515 appendix A.3).
const (
	testPublicJWKS  = `{"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	testPrivateJWKS = `{"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "d": "jpsQnnGQmL-YBIffH1136cLwR-c7bjZW8aGKIyzoVTE"}]}`
)

func TestTrustedProxies(t *testing.T) {
	cfg, err := parseConfig([]byte(`{"trusted_proxies": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.0/120"]}`), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range cfg.TrustedProxies {
		got = append(got, p.String())
	}
	if want := "10.0.0.0/8 192.0.2.7/32 2001:db8::/32 198.51.100.0/24"; strings.Join(got, " ") != want {
		t.Errorf("trusted proxies = %v, want %s", got, want)
	}
}

// tokens.refresh_retry_window is the server's; a client's own
// refresh_retry_window replaces it, "0s" included (strict rotation).
func TestRefreshRetryWindow(t *testing.T) {
	client := func(id, extra string) string {
		return `{"client_id": "` + id + `", "token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": ["https://app.example.com/cb"]` + extra + `}`
	}
	for _, tc := range []struct {
		name, tokens string
		want         map[string]time.Duration
	}{
		{"default", `{}`, map[string]time.Duration{"inherits": 30 * time.Second, "strict": 0, "own": 10 * time.Second}},
		{"server strict", `{"refresh_retry_window": "0s"}`, map[string]time.Duration{"inherits": 0, "strict": 0, "own": 10 * time.Second}},
		{"server 1m", `{"refresh_retry_window": "1m"}`, map[string]time.Duration{"inherits": time.Minute, "strict": 0, "own": 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := `{"tokens": ` + tc.tokens + `, "clients": [` + client("inherits", "") + `, ` +
				client("strict", `, "refresh_retry_window": "0s"`) + `, ` + client("own", `, "refresh_retry_window": "10s"`) + `]}`
			cfg, err := parseConfig([]byte(raw), mapEnv(nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cfg.Clients {
				if got := c.Lifetimes.RefreshRetryWindow; got != tc.want[c.ID] {
					t.Errorf("client %s: window %s, want %s", c.ID, got, tc.want[c.ID])
				}
			}
		})
	}
}
