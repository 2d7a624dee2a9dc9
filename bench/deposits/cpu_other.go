//go:build !unix

package main

import "time"

// processCPU is not measured here: the bench then prints 0 cores used.
func processCPU() time.Duration { return 0 }
