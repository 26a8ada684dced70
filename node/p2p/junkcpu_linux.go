package p2p

import "golang.org/x/sys/unix"

// threadCPU is the calling thread's CPU time in nanoseconds, -1 if unknown.
func threadCPU() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return -1
	}
	return ts.Nano()
}
