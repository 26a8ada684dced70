package node

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
	"github.com/parley-p2p/parley/rooms"
)

// TestThousandHeadMerge (issue 16): k members join a public room at once,
// each join referring only to the heads before any of them (k concurrent
// heads: PARLEY_MERGE_HEADS, else 1,000; 200 with -short), all offered to
// node 0 of a line 0 - 1 - 2. The joins must reach node 2, two hops away,
// within mergeStepBound. The nodes then take turns sending; each message
// refers to at most crdt.MaxPrev heads, so the heads merge into one after
// about heads/(MaxPrev-1) messages. Every node must end with the same
// events and a single head, within that number of messages (plus one per
// node), and each message must reach every node within mergeStepBound.
//
// Before the heads-forwarding fix (gossip.go, headsValidator) node 2 waited
// for the anti-entropy round: with 100 heads one step took 33 s.
func TestThousandHeadMerge(t *testing.T) {
	k := 1000
	if testing.Short() {
		k = 200
	}
	if v, err := strconv.Atoi(os.Getenv("PARLEY_MERGE_HEADS")); err == nil && v > 0 {
		k = v
	}
	tn := newTestNet(t, 3)
	tn.link(0, 1)
	tn.link(1, 2)
	room := setupRoom(t, tn)
	tn.converged(room, 3, convergeWithin, 0, 1, 2)
	rid, _ := crdt.ParseID(room)
	joins := concurrentJoins(t, tn, rid, k)
	start := time.Now()
	if err := tn.reps[0].Engine.Ingest(tn.ctx, "", joins); err != nil {
		t.Fatal(err)
	}
	want := 3 + k
	spread := tn.sameEvents(room, want)
	t.Logf("%d concurrent joins reached all three nodes in %v", k, spread)
	if spread > mergeStepBound {
		t.Errorf("the joins took %v to reach node 2, two hops away (bound %v: the first anti-entropy round comes after 21 s)", spread, mergeStepBound)
	}

	// The merge: the nodes take turns; each waits until the previous
	// message reached it, so that no turn adds a concurrent head.
	limit := (k+crdt.MaxPrev-2)/(crdt.MaxPrev-1) + len(tn.reps)
	start = time.Now()
	var slowest time.Duration
	sent := 0
	for {
		single := true
		for i := range tn.reps {
			h, _, _ := tn.reps[i].Engine.Heads(tn.ctx, rid)
			single = single && len(h) == 1
		}
		if single {
			break
		}
		if sent == limit {
			t.Fatalf("heads not merged into one after %d messages (limit %d for %d heads)", sent, limit, k)
		}
		i := sent % len(tn.reps)
		if _, err := tn.reps[i].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: fmt.Sprintf("merge %d", sent)}); err != nil {
			t.Fatal(err)
		}
		sent++
		want++
		d := tn.sameEvents(room, want)
		slowest = max(slowest, d)
		if d > mergeStepBound {
			t.Errorf("message %d (from node %d) took %v to reach every node (bound %v)", sent, i, d, mergeStepBound)
		}
	}
	t.Logf("%d heads merged into one by %d messages in %v (slowest message to reach all: %v); every node holds the same %d events", k, sent, time.Since(start), slowest, want)
}

// concurrentJoins signs k joins of new members to rid, each referring only
// to node 0's heads: k concurrent heads.
func concurrentJoins(t *testing.T, tn *testNet, rid crdt.RoomID, k int) []*crdt.Event {
	t.Helper()
	base, _, err := tn.reps[0].Engine.Heads(tn.ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	top, err := tn.reps[0].Engine.MaxDepth(tn.ctx, rid)
	if err != nil {
		t.Fatal(err)
	}
	joins := make([]*crdt.Event, k)
	for i := range joins {
		ident := newIdentity(t)
		me := ident.User.String()
		joins[i], err = crdt.Sign(ident, crdt.Draft{Room: rid, Type: rooms.TypeMember, StateKey: &me, Prev: base, Auth: []crdt.EventID{rid},
			Depth: top + 1, TS: time.Now().UnixMilli(), Body: rooms.Encode(rooms.MemberBody{Membership: rooms.Join})})
		if err != nil {
			t.Fatal(err)
		}
	}
	return joins
}

// mergeStepBound bounds how long an event may take to reach a node two
// hops away: below the 21 s after which the first anti-entropy round
// (headsPeriod ± 30 %) could repair a stall, so a stall fails the test.
const mergeStepBound = 15 * time.Second

// sameEvents waits until every node holds want events, no gap and no
// orphan, and the same heads (the same heads and no gap: the same event
// set, the closure of those heads), and returns how long that took. It
// reads each node's sync counters only: a 1,000-member timeline is too
// costly to read at every poll.
func (tn *testNet) sameEvents(room string, want int) time.Duration {
	tn.t.Helper()
	start := time.Now()
	eventually(tn.t, 2*convergeWithin, "the same events on every node", func() (bool, string) {
		var first []string
		state := ""
		ok := true
		for i := range tn.reps {
			info, err := tn.reps[i].Engine.Info(tn.ctx, api.RoomReq{Room: room})
			if err != nil {
				return false, err.Error()
			}
			s := info.Sync
			state += fmt.Sprintf("node %d: %d events, %d heads, missing %d, pending %d; ", i, s.Events, len(s.Heads), s.Missing, s.Pending)
			if i == 0 {
				first = s.Heads
			}
			ok = ok && s.Events == want && s.Missing == 0 && s.Pending == 0 && slices.Equal(s.Heads, first)
		}
		return ok, state
	})
	return time.Since(start)
}

// TestHeadsSecondHop is the regression test of the second-hop stall (issue
// 16): node 0 of a line 0 - 1 - 2 takes events that are not gossiped (as
// from a sync), so only its heads announcement tells the others. Node 1's
// store refuses its first commits of the room, so node 1 cannot hold the
// new heads when the announcement reaches it. Node 1 used to forward the
// announcement all the same: node 2 asked node 1 too early, and node 1's
// own announcement of the same heads, once it held them, was the same
// pubsub message, already seen on node 2, so node 2 waited for the
// anti-entropy round (21 s or more). Node 2 must hold the events within
// mergeStepBound of node 1.
func TestHeadsSecondHop(t *testing.T) {
	var fs *faultstore.Store
	tn := newTestNetWith(t, 3, func(i int, s crdt.Store) crdt.Store {
		if i != 1 {
			return s
		}
		fs = faultstore.New(s, nil)
		return fs
	})
	tn.link(0, 1)
	tn.link(1, 2)
	room := setupRoom(t, tn)
	tn.converged(room, 3, convergeWithin, 0, 1, 2)
	rid, _ := crdt.ParseID(room)
	joins := concurrentJoins(t, tn, rid, 5)
	fs.Inject(faultstore.Room(rid))
	if err := tn.reps[0].Engine.Ingest(tn.ctx, "", joins); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "node 1 refuses a commit of the new heads", func() (bool, string) {
		return len(fs.Faults()) > 0, "no fault yet"
	})
	fs.Inject(nil)
	holds := func(i int) (bool, string) {
		info, err := tn.reps[i].Engine.Info(tn.ctx, api.RoomReq{Room: room})
		if err != nil {
			return false, err.Error()
		}
		return info.Sync.Events == 3+len(joins), fmt.Sprintf("node %d holds %d events (want %d)", i, info.Sync.Events, 3+len(joins))
	}
	eventually(t, convergeWithin, "node 1 holds the new heads", func() (bool, string) { return holds(1) })
	start := time.Now()
	eventually(t, convergeWithin, "node 2 holds the new heads", func() (bool, string) { return holds(2) })
	if d := time.Since(start); d > mergeStepBound {
		t.Errorf("node 2 got the new heads %v after node 1 (bound %v)", d, mergeStepBound)
	} else {
		t.Logf("node 2 got the new heads %v after node 1", d)
	}
}
