package main

import (
	"os"
	"syscall"
)

// boundVerifyMemory caps the address space of the --verify child: damage
// can make bbolt's checker allocate without bound (a flipped page count
// was seen to take 24 GB), and a verify must not take the machine down
// with it. The copy is mapped whole, so the cap grows with its size; the
// runtime then fails the allocation, the child dies, and the parent
// reports the file as damaged.
func boundVerifyMemory(path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	limit := uint64(2*fi.Size()) + 4<<30
	_ = syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: limit})
}
