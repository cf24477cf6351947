// Package catalog owns the API catalogue: the apis[] entries of the
// server's configuration (each API's ID, name, base URL, the scopes it
// offers with their human descriptions, its subscribers' tier) and the
// OpenAPI or Swagger document that describes it, parsed and checked at load.
//
// A Catalog is built once per configuration and never changes; the consent
// page reads scope descriptions from it, the developer portal lists it. It
// knows nothing of clients, subscriptions or HTTP: those belong to the
// parts that use it.
package catalog
