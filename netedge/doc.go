// Package netedge owns the network edge shared by the authorization server
// and the gateway: which peers are trusted proxies (CIDR parsing for
// trusted_proxies), the walk along their forwarding chain to the client's
// address, and RFC 7239 Forwarded parsing and writing, quoting included,
// plus the host and port syntax those headers carry.
//
// Each of these has one rule, written down next to its code, so that
// trusted_proxies means the same in both configurations and the server's
// audit log names the same client as the gateway's rate limiter.
//
// It imports nothing of Postern's, so both authz and gateway may import it.
// It knows nothing of routes, tokens or what a caller does with an address.
package netedge
