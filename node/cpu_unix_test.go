//go:build unix

package node

import "syscall"

// processCPU is the CPU time (user and system) this process has used, in
// seconds, or -1 if unknown.
func processCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
