package rooms

import (
	"maps"
	"math/rand/v2"
	"runtime"
	"testing"
)

func snapMap(s *snap) map[string]int32 {
	m := map[string]int32{}
	s.each(func(k string, v int32) { m[k] = v })
	return m
}

// TestSharingComputesTheSame: Rooms that share snapshots, bodies and keys
// with each other compute exactly what a Room alone computes (every
// event's state before and after, visibility, reasons, the state, key
// state and timeline hashes, in many causal orders), and replicas that
// applied the same events hold the same snapshot nodes.
func TestSharingComputesTheSame(t *testing.T) {
	seed := uint64(3)
	if *seedFlag != 0 {
		seed = *seedFlag
	}
	rng := rand.New(rand.NewPCG(seed, 42))
	w, _ := genRoom(t, rng, genConfig{events: 2000, authors: 10, stale: 0.3, equivocate: 0.0005, forkers: 3})
	ShareBetweenRooms(true)
	defer ShareBetweenRooms(false)
	a := replay(t, w.create, w.events)
	b := replay(t, w.create, w.events)
	if a.current().root != b.current().root {
		t.Fatalf("seed %d: two replicas that applied the same events hold different snapshot roots", seed)
	}
	if ga, gb := a.Guard(), b.Guard(); ga != gb || !sameGuard(ga, w.room.Guard()) {
		t.Fatalf("seed %d: the replicas' guards are not one shared guard equal to the unshared one", seed)
	}
	runtime.GC() // shared nodes whose first holder is gone must not be returned
	for i, e := range w.events {
		want, got := w.room.evs[w.room.ids[e.ID]], a.evs[a.ids[e.ID]]
		if !maps.Equal(snapMap(want.before), snapMap(got.before)) || !maps.Equal(snapMap(want.after), snapMap(got.after)) {
			t.Fatalf("seed %d: event %d (%s): state before or after differs with sharing", seed, i, w.nameOf(e.ID))
		}
		v1, r1 := w.room.Visible(e.ID)
		v2, r2 := a.Visible(e.ID)
		if v1 != v2 || r1 != r2 {
			t.Fatalf("seed %d: %s visible %v (%s) alone, %v (%s) sharing", seed, w.nameOf(e.ID), v1, r1, v2, r2)
		}
	}
	if err := w.checkConverges(10, seed); err != nil {
		t.Fatalf("seed %d, sharing: %v", seed, err)
	}
}

// TestDevSeqIndex: the first event per (device, seq) is found whatever the
// order and spread of the seqs recorded.
func TestDevSeqIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for round := 0; round < 200; round++ {
		var d devInfo
		want := map[uint64]int32{}
		for i := int32(0); i < 50; i++ {
			seq := uint64(rng.IntN(40))
			if rng.IntN(10) == 0 {
				seq = uint64(rng.IntN(1 << 20))
			}
			if x, ok := d.firstAt(seq); ok != (want[seq] != 0) || (ok && x != want[seq]-1) {
				t.Fatalf("round %d: firstAt(%d) = %d, %v; want %d", round, seq, x, ok, want[seq]-1)
			}
			if want[seq] == 0 {
				d.setFirst(seq, i)
				want[seq] = i + 1
			}
		}
		for seq, x := range want {
			if got, ok := d.firstAt(seq); !ok || got != x-1 {
				t.Fatalf("round %d: firstAt(%d) = %d, %v; want %d", round, seq, got, ok, x-1)
			}
		}
	}
}
