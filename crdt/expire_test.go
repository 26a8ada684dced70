package crdt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestExpireOrphans: orphans that arrived by a mark are dropped, later ones
// stay; the dropped ones are pulled again like evicted ones, and the log
// ends complete.
func TestExpireOrphans(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 0x657870))
	evs := genDAG(t, r, 3, 60)
	room := evs[0].ID
	l := NewLog(room, LogConfig{})
	l.Add(evs[0])
	// Everything but the create's children arrives first: all orphans.
	var kids, rest []*Event
	for _, e := range evs[1:] {
		if slices.Equal(e.Prev, []EventID{room}) {
			kids = append(kids, e)
		} else {
			rest = append(rest, e)
		}
	}
	half := len(rest) / 2
	l.Add(rest[:half]...)
	mark := l.Arrivals()
	l.Add(rest[half:]...)
	before := l.Pending()
	if before != len(rest) {
		t.Fatalf("%d orphans waiting, want %d", before, len(rest))
	}
	if n := l.ExpireOrphans(mark); n != half {
		t.Fatalf("expired %d, want %d", n, half)
	}
	if l.Pending() != len(rest)-half {
		t.Fatalf("%d orphans left, want %d", l.Pending(), len(rest)-half)
	}
	if n := l.ExpireOrphans(mark); n != 0 {
		t.Fatalf("a second expiry at the same mark dropped %d", n)
	}
	l.Add(kids...)
	l.Add(rest[:half]...) // pulled again
	if l.Pending() != 0 || l.Len() != len(evs) {
		t.Fatalf("log incomplete after the expired orphans came again: %d/%d held, %d waiting", l.Len(), len(evs), l.Pending())
	}
}
