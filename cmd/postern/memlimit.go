package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// argon2Memory is what one argon2id check holds (passhash's m=65536 KiB).
const argon2Memory = 64 << 20

// setMemoryLimit gives the Go runtime a soft memory limit unless the
// operator set GOMEMLIMIT. Password and chosen-secret checks together run at
// most GOMAXPROCS at a time (one passhash.Limiter per process),
// but each leaves 64 MiB of garbage; with the default GC pacing a burst of
// wrong passwords held about 470 MiB resident, with this limit about 220.
// The limit is soft: a process that needs more still gets it, only the
// collector works harder near it.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(runtime.GOMAXPROCS(0)+1) * argon2Memory)
}
