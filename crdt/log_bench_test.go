package crdt

import (
	"encoding/binary"
	"testing"
)

// unsignedDAG builds n events without signatures (Log never checks them):
// devs device chains that merge every fourth event, so Log costs can be
// measured on 100k-event rooms without paying for Ed25519.
func unsignedDAG(n, devs int) []*Event {
	fake := func(i int) EventID {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		return IDOf(b[:])
	}
	create := &Event{ID: fake(0), Type: TypeCreate}
	create.Room = create.ID
	evs := []*Event{create}
	last := make([]*Event, devs)
	for i := 1; i < n; i++ {
		w := i % devs
		ev := &Event{ID: fake(i), Room: create.ID, Type: "message", Auth: []EventID{create.ID}, TS: int64(i)}
		ev.Device[0], ev.Device[1] = byte(w), 1
		parents := []*Event{create}
		if last[w] != nil {
			parents = []*Event{last[w]}
			ev.Self, ev.Seq = last[w].ID, last[w].Seq+1
		}
		if i%4 == 0 {
			parents = append(parents, evs[i-1])
		}
		for _, p := range parents {
			if len(ev.Prev) == 0 || ev.Prev[0] != p.ID {
				ev.Prev = append(ev.Prev, p.ID)
			}
			ev.Depth = max(ev.Depth, p.Depth+1)
		}
		if len(ev.Prev) == 2 && ev.Prev[1] < ev.Prev[0] {
			ev.Prev[0], ev.Prev[1] = ev.Prev[1], ev.Prev[0]
		}
		last[w] = ev
		evs = append(evs, ev)
	}
	return evs
}

func BenchmarkLog100k(b *testing.B) {
	evs := unsignedDAG(100_000, 8)
	rev := make([]*Event, len(evs))
	for i, e := range evs {
		rev[len(evs)-1-i] = e
	}
	for _, tc := range []struct {
		name string
		in   []*Event
	}{{"AddInOrder", evs}, {"AddReversed", rev}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				l := NewLog(evs[0].ID, LogConfig{MaxOrphans: 200_000, MaxOrphanBytes: 1 << 30})
				for _, e := range tc.in {
					l.Add(e)
				}
				if l.Len() != len(evs) || l.Pending() != 0 {
					b.Fatalf("held %d, pending %d", l.Len(), l.Pending())
				}
			}
			b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
		})
	}
	l := NewLog(evs[0].ID, LogConfig{})
	l.Add(evs...)
	mid := []EventID{evs[len(evs)/2].ID}
	for name, fn := range map[string]func(){
		"Order":    func() { l.Order() },
		"SinceMid": func() { l.Since(mid) },
		"Items":    func() { l.Items(90_000 / 8) },
		"Heads":    func() { l.Heads() },
		"Missing":  func() { l.MissingCount() },
		"Prepare":  func() { l.Prepare(DeviceID{1, 1}, 0, Draft{}) },
	} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				fn()
			}
		})
	}
}

func TestLogScaleDeepChain(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	evs := unsignedDAG(100_000, 1) // a chain of depth 100k
	l := NewLog(evs[0].ID, LogConfig{})
	r := l.Add(evs...)
	if len(r.Accepted) != len(evs) || len(l.Heads()) != 1 || l.MaxDepth() != uint64(len(evs)-1) {
		t.Fatalf("accepted %d, heads %d, max depth %d", len(r.Accepted), len(l.Heads()), l.MaxDepth())
	}
	if got := len(l.Since([]EventID{evs[99_000].ID})); got != 999 {
		t.Fatalf("since: %d", got)
	}
	// Reverse order with the default bounds: the oldest orphans are dropped
	// and reported missing; nothing is processed, memory stays bounded.
	l = NewLog(evs[0].ID, LogConfig{})
	dropped := 0
	for i := len(evs) - 1; i >= 1; i-- {
		dropped += l.Add(evs[i]).Dropped
	}
	if l.Pending() != defaultMaxOrphans || dropped != len(evs)-1-defaultMaxOrphans {
		t.Fatalf("pending %d, dropped %d", l.Pending(), dropped)
	}
}
