// Package test holds Postern's black-box end-to-end tests. They build the
// real postern binary once, start it on free loopback ports with fresh data
// directories, and drive it as users would: golang.org/x/oauth2 for tokens,
// plain HTTP for everything else. Nothing here imports Postern's packages.
package test
