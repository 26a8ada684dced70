//go:build linux

package simulations

import (
	"math"
	"testing"
	"time"
)

// TestFloodCPU: daemons at 0.5 cores outside the floods and 2 cores inside
// one flood of 200 ms in a second of samples: a baseline of 0.5 cores and
// 0.3 CPU-s of flood work above it, over 20 % of the time.
func TestFloodCPU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	flood := [2]time.Time{t0.Add(200 * time.Millisecond), t0.Add(400 * time.Millisecond)}
	var s []cpuSample
	var cpu time.Duration
	for k := 0; k <= 100; k++ {
		at := t0.Add(time.Duration(k) * 10 * time.Millisecond)
		s = append(s, cpuSample{at, cpu})
		rate := 0.5
		if !at.Before(flood[0]) && at.Before(flood[1]) {
			rate = 2
		}
		cpu += time.Duration(rate * float64(10*time.Millisecond))
	}
	f, base, share, ok := floodCPU(s, [][2]time.Time{flood})
	if !ok || math.Abs(base-0.5) > 1e-9 || (f-300*time.Millisecond).Abs() > time.Microsecond || math.Abs(share-0.2) > 1e-9 {
		t.Errorf("flood %v, baseline %v, share %v, ok %v; want 300ms, 0.5, 0.2", f, base, share, ok)
	}
	if _, _, _, ok := floodCPU(s, nil); ok {
		t.Error("no floods: ok")
	}
	if _, _, _, ok := floodCPU(s[:1], [][2]time.Time{flood}); ok {
		t.Error("one sample: ok")
	}
}
