// Package clients owns the OAuth client model: what a registered client may
// do (grants, response types, redirect URIs, scopes, refresh tokens), how its
// secret is generated, hashed and checked (keyed SHA-256 for generated
// secrets, argon2id through the process's shared limit for chosen ones), and
// its keys for private_key_jwt. It knows nothing of HTTP or users.
package clients
