package rooms

import (
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// TestManyHeadsResolution: a flood of joins each built on the create event
// alone (join-flood-nopow) leaves one head per join, each with one new
// member. Resolving the state at the heads after every join must cost
// about the snapshots that changed each key, not heads x keys: before,
// every conflicted key was looked up in every snapshot (quadratic per
// resolution, cubic over the flood), and the simulation never finished.
func TestManyHeadsResolution(t *testing.T) {
	const n = 200
	w := newWorld(t, "alice", CreateBody{JoinRule: Public})
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		skey := w.user(name).String()
		w.emit(name, TypeMember, &skey, Encode(MemberBody{Membership: Join}), opts{prev: []*crdt.Event{w.create}})
		w.room.Guard() // the state at the heads, as a relay's guard reads it after every event
	}
	if h := len(w.room.Heads()); h != n {
		t.Fatalf("%d heads, want %d", h, n)
	}
	if got := len(w.room.State().Members); got != n+1 {
		t.Fatalf("%d members at the heads, want %d", got, n+1)
	}
	// Linear per resolution: about 2 lookups per changed key and head
	// (n^2 over the flood); quadratic would be about n^3/3 (9e6).
	if limit := uint64(4 * n * n); w.room.resLookups > limit {
		t.Fatalf("resolution made %d key lookups over %d joins, want at most %d", w.room.resLookups, n, limit)
	}
	t.Logf("%d key lookups over %d joins", w.room.resLookups, n)
}
