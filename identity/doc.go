// Package identity owns who a user is: the configured local users, their
// password checks (through the process's shared argon2 limit), the
// credential fingerprint that ends sessions and tokens when a password
// changes, and the brute-force throttle shared by the login form and the
// password grant. It knows nothing of HTTP, OAuth clients or SAML.
package identity
