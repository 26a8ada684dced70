package crdt

import (
	"math/rand/v2"
	"testing"
)

// TestLatestOf: a device's latest is its accepted event with the highest
// seq, whatever the arrival order; an orphan (not accepted) does not
// count, and an unknown device has none.
func TestLatestOf(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 0x6c6174))
	evs := genDAG(t, r, 3, 40)
	want := map[DeviceID]*Event{}
	for _, e := range evs {
		if w := want[e.Device]; w == nil || e.Seq > w.Seq {
			want[e.Device] = e
		}
	}
	l := NewLog(evs[0].ID, LogConfig{})
	// The last event alone is an orphan: its device's latest is not it.
	last := evs[len(evs)-1]
	l.Add(last)
	if id, ok := l.LatestOf(last.Device); ok {
		t.Fatalf("latest of a device with only an orphan: %s", id)
	}
	perm := r.Perm(len(evs) - 1)
	for _, i := range perm {
		l.Add(evs[i])
	}
	if l.Pending() != 0 {
		t.Fatalf("%d events still waiting (seed 7)", l.Pending())
	}
	for dev, w := range want {
		if id, ok := l.LatestOf(dev); !ok || id != w.ID {
			t.Fatalf("latest of %s: %s %v, want %s (seq %d; seed 7)", dev, id, ok, w.ID, w.Seq)
		}
	}
	var stranger DeviceID
	if _, ok := l.LatestOf(stranger); ok {
		t.Fatal("an unknown device has a latest event")
	}
}
