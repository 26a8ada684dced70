package crdt

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// logState is everything a Log holds, in a form reflect.DeepEqual compares
// by meaning (the lazily sorted index as a sorted set, the arrival queue by
// its live items).
type logState struct {
	Entries     map[EventID]entry
	Heads       []EventID
	Devices     []DeviceID
	DevIndex    map[DeviceID]uint32
	Chains      map[devSeq]EventID
	Latest      map[uint32]devHead
	Gaps        map[EventID]bool
	MaxDepth    uint64
	Accepted    int
	Sorted      []Item
	Orphans     map[EventID][2]uint64 // waiting, arrival
	Waiters     map[EventID][]EventID
	OrphanBytes int
	Fifo        []fifoItem
	Arrivals    uint64
	Foreign     []EventID
}

func stateOfLog(l *Log) logState {
	s := logState{
		Entries: map[EventID]entry{}, Heads: l.Heads(), Devices: append([]DeviceID(nil), l.devices...), DevIndex: maps.Clone(l.devIndex),
		Chains: maps.Clone(l.chains), Latest: maps.Clone(l.latest), Gaps: maps.Clone(l.gaps), MaxDepth: l.maxDepth,
		Accepted: l.accepted, Sorted: slices.SortedFunc(slices.Values(l.sorted), cmpItem), Orphans: map[EventID][2]uint64{},
		Waiters: map[EventID][]EventID{}, OrphanBytes: l.orphanBytes, Arrivals: l.arrivals,
		Foreign: slices.Sorted(maps.Keys(l.foreign)),
	}
	for id, e := range l.entries {
		s.Entries[id] = *e
	}
	for id, o := range l.orphans {
		s.Orphans[id] = [2]uint64{uint64(o.waiting), o.arrival}
	}
	for id, ws := range l.waiters {
		s.Waiters[id] = append([]EventID(nil), ws...)
	}
	for _, f := range l.fifo {
		if o, ok := l.orphans[f.id]; ok && o.arrival == f.arrival {
			s.Fifo = append(s.Fifo, f)
		}
	}
	return s
}

// TestUndoRestoresLog feeds the same random deliveries to two logs; the
// first takes every call through AddUndo and reverts about a third of them
// (offering those events again later), the second sees only the calls that
// were kept. After every step both must hold exactly the same state: a
// reverted Add leaves no trace, not in heads, orphans, their bounds or the
// device index. The orphan bound is small so that eviction runs too.
func TestUndoRestoresLog(t *testing.T) {
	for round := range 20 {
		seed := uint64(round)*7919 + 1
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x756e646f))
			evs := genDAG(t, r, 3, 120)
			all := slices.Clone(evs)
			r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
			room := evs[0].ID
			cfg := LogConfig{MaxOrphans: 15}
			a, b := NewLog(room, cfg), NewLog(room, cfg)
			queue := chunks(all, 1+r.IntN(6))
			for step := 0; len(queue) > 0; step++ {
				call := queue[0]
				queue = queue[1:]
				ra, undo := a.AddUndo(call...)
				if r.IntN(3) == 0 && step < 400 {
					if r.IntN(2) == 0 {
						a.Items(0) // sorts the index between Add and Revert
					}
					undo.Revert()
					undo.Revert() // a second Revert does nothing
					queue = append(queue, call)
				} else {
					rb := b.Add(call...)
					if !reflect.DeepEqual(ra, rb) {
						t.Fatalf("seed %d step %d: Ready differs after reverts:\n%+v\n%+v", seed, step, ra, rb)
					}
				}
				if diff := diffState(stateOfLog(a), stateOfLog(b)); diff != "" {
					t.Fatalf("seed %d step %d: state differs from a log that never saw the reverted calls: %s", seed, step, diff)
				}
			}
			// Whatever eviction dropped is pulled again: offer everything once more.
			a.Add(all...)
			b.Add(all...)
			if !viewOf(a).equal(viewOf(b)) || a.Len() != len(evs) {
				t.Fatalf("seed %d: final logs differ or incomplete: %d/%d events", seed, a.Len(), len(evs))
			}
		})
	}
}

// diffState names the fields in which two states differ.
func diffState(a, b logState) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, fmt.Sprintf("%s: %v != %v", va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface()))
		}
	}
	return strings.Join(out, "; ")
}

func TestUndoAfterChangePanics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	evs := genDAG(t, r, 2, 5)
	l := NewLog(evs[0].ID, LogConfig{})
	_, undo := l.AddUndo(evs[0])
	l.Add(evs[1])
	defer func() {
		if recover() == nil {
			t.Fatal("Revert after another Add did not panic")
		}
	}()
	undo.Revert()
}

// TestUndoChain takes several calls through AddUndo and reverts them
// newest first: each Revert makes the Undo before it current, and the log
// ends as it was before the first call. Reverting out of order panics.
func TestUndoChain(t *testing.T) {
	for round := range 10 {
		seed := uint64(round)*104729 + 3
		r := rand.New(rand.NewPCG(seed, 0x636861696e))
		evs := genDAG(t, r, 3, 60)
		room := evs[0].ID
		cfg := LogConfig{MaxOrphans: 15}
		a, b := NewLog(room, cfg), NewLog(room, cfg)
		base := chunks(evs[:20], 4)
		for _, c := range base {
			a.Add(c...)
			b.Add(c...)
		}
		var undos []*Undo
		for _, c := range chunks(evs[20:], 1+r.IntN(5)) {
			_, u := a.AddUndo(c...)
			undos = append(undos, u)
		}
		if len(undos) > 1 {
			func() {
				defer func() {
					if recover() == nil {
						t.Fatalf("seed %d: reverting an older Undo first did not panic", seed)
					}
				}()
				undos[0].Revert()
			}()
		}
		for i := len(undos) - 1; i >= 0; i-- {
			undos[i].Revert()
		}
		if diff := diffState(stateOfLog(a), stateOfLog(b)); diff != "" {
			t.Fatalf("seed %d: after reverting the chain: %s", seed, diff)
		}
	}
}
