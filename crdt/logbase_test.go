package crdt

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// logFacts is everything a log answers, for comparing two logs.
type logFacts struct {
	Heads, Order, Missing []EventID
	Items, ItemsMid       []Item
	Since                 []EventID
	Len, Pending          int
	MaxDepth              uint64
	Status                map[EventID]Status
	Latest                map[DeviceID]EventID
	Prepared              map[DeviceID]Draft
}

func factsOf(t *testing.T, l *Log, evs []*Event) logFacts {
	t.Helper()
	if err := l.Check(); err != nil {
		t.Fatal(err)
	}
	f := logFacts{Heads: l.Heads(), Order: l.Order(), Missing: l.MissingIDs(0), Items: l.Items(0), ItemsMid: l.Items(l.MaxDepth() / 2),
		Len: l.Len(), Pending: l.Pending(), MaxDepth: l.MaxDepth(),
		Status: map[EventID]Status{}, Latest: map[DeviceID]EventID{}, Prepared: map[DeviceID]Draft{}}
	var known []EventID
	for i, ev := range evs {
		if s, ok := l.Status(ev.ID); ok {
			f.Status[ev.ID] = s
			if i%7 == 0 {
				known = append(known, ev.ID)
			}
		}
		if id, ok := l.LatestOf(ev.Device); ok {
			f.Latest[ev.Device] = id
			f.Prepared[ev.Device] = l.Prepare(ev.Device, 5, Draft{Type: "message"})
		}
	}
	f.Since = l.Since(known)
	return f
}

// TestLogOverlay checks that logs over a frozen base compute exactly what a
// log that holds the same prefix itself computes, call by call, and that
// neither the base nor another overlay sees what one overlay adds (or takes
// back with an Undo).
func TestLogOverlay(t *testing.T) {
	seed, r := dagRand(t)
	evs := genDAG(t, r, 6, 1200)
	cut := len(evs) / 2
	prefix, rest := evs[:cut], slices.Clone(evs[cut:])
	r.Shuffle(len(rest), func(a, b int) { rest[a], rest[b] = rest[b], rest[a] })
	calls := chunks(rest, 1+r.IntN(20))

	ref := NewLog(evs[0].ID, LogConfig{})
	ref.Add(prefix...)
	base := NewLog(evs[0].ID, LogConfig{})
	base.Add(prefix...)
	if err := base.Freeze(); err != nil {
		t.Fatal(err)
	}
	baseFacts := factsOf(t, base, evs)
	if got := factsOf(t, ref, evs); !reflect.DeepEqual(got, baseFacts) {
		t.Fatalf("seed %d: frozen base differs from the reference", seed)
	}
	o1, o2 := base.Overlay(), base.Overlay()
	if got := factsOf(t, o2, evs); !reflect.DeepEqual(got, baseFacts) {
		t.Fatalf("seed %d: a fresh overlay differs from its base", seed)
	}
	for i, call := range calls {
		want := ref.Add(call...)
		if i%5 == 0 { // an Undo on the overlay, then the call again
			_, u := o1.AddUndo(call...)
			u.Revert()
		}
		got := o1.Add(call...)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d, call %d: overlay Ready %+v, want %+v", seed, i, got, want)
		}
		if i%10 == 0 {
			if g, w := factsOf(t, o1, evs), factsOf(t, ref, evs); !reflect.DeepEqual(g, w) {
				t.Fatalf("seed %d, after call %d: overlay differs from the reference", seed, i)
			}
		}
	}
	if g, w := factsOf(t, o1, evs), factsOf(t, ref, evs); !reflect.DeepEqual(g, w) {
		t.Fatalf("seed %d: overlay differs from the reference at the end", seed)
	}
	if got := factsOf(t, base, evs); !reflect.DeepEqual(got, baseFacts) {
		t.Fatalf("seed %d: the base changed", seed)
	}
	if got := factsOf(t, o2, evs); !reflect.DeepEqual(got, baseFacts) {
		t.Fatalf("seed %d: another overlay changed", seed)
	}
	if !panics(func() { base.Add(rest[0]) }) {
		t.Fatal("Add on a frozen log did not panic")
	}
}

func TestFreezeWithOrphans(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	evs := genDAG(t, r, 3, 20)
	l := NewLog(evs[0].ID, LogConfig{})
	l.Add(evs[0], evs[len(evs)-1])
	if err := l.Freeze(); err == nil {
		t.Fatalf("froze a log with %d orphans", l.Pending())
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}
