package cpubench

import "testing"

// TestNowAdvances checks that busy work shows up as CPU time.
func TestNowAdvances(t *testing.T) {
	start := Now()
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	if Now() <= start {
		t.Fatalf("no CPU time measured for a busy loop (%d)", x)
	}
}
