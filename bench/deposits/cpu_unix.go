//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU is the CPU time this process (server and load clients) has used so far.
// Against the cores there are, it shows whether the deposits ran out of CPU or waited
// on something else, such as SQLite's one writer.
func processCPU() time.Duration {
	var u syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &u)
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
