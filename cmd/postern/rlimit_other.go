//go:build !linux

package main

// boundVerifyMemory is a no-op where RLIMIT_AS is not available; the
// verify child is still bounded in time.
func boundVerifyMemory(string) {}
