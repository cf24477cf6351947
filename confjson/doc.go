// Package confjson holds the mechanics every Postern configuration file
// needs, so that each part (clients, identity, gateway, ...) can own its
// block of a file without repeating them: bounded reading, ${ENV_VAR}
// expansion, strict decoding that names the offending field, durations,
// the field-path error users see ("config: clients[1].grant_types: ..."),
// TLS certificate files, and the few value syntaxes both the server's and
// the gateway's files share.
//
// It imports nothing of Postern's, so every package may use it, the
// gateway included; it knows no setting's meaning.
package confjson
