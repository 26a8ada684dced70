// Package cpubench measures the CPU time (user and system, of the whole
// process) that a benchmark's timed sections use, and reports it per
// operation as the metric cpu-ns/op. On a machine shared with other work,
// wall time measures the load as much as the code; the process's CPU time
// is much steadier, so paired runs can resolve a few per cent with it.
// It is for benchmarks only and does nothing else.
package cpubench

import (
	"testing"
	"time"
)

// Now returns the CPU time the process has used so far (zero where the
// platform does not tell).
func Now() time.Duration { return processCPU() }

// Report reports total, the CPU time of b's timed sections, per operation.
func Report(b *testing.B, total time.Duration) {
	if b.N > 0 && total > 0 {
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
