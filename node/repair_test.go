package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
	"github.com/parley-p2p/parley/crdt/badgerstore/badgertest"
)

// storeInPart leaves event id in the badger store in dir by its envelope
// alone, in a store not yet repaired (badgertest.StoreInPart).
func storeInPart(t *testing.T, dir string, id crdt.EventID) {
	t.Helper()
	if err := badgertest.StoreInPart(dir, id); err != nil {
		t.Fatal(err)
	}
}

// twoNodeRoom links two nodes (each store wrapped by wrap), sets up a
// room and has node 0 send n messages; it returns the net, the room and
// node 1's timeline once both show them.
func twoNodeRoom(t *testing.T, n int, wrap func(i int, s crdt.Store) crdt.Store) (*testNet, string, []string) {
	t.Helper()
	tn := newTestNetWith(t, 2, wrap)
	tn.link(0, 1)
	room := setupRoom(t, tn)
	send(t, tn, 0, room, n, "zero")
	tn.converged(room, 2+n, convergeWithin, 0, 1)
	return tn, room, tn.history(1, room)
}

// idOf parses an event ID of a timeline.
func idOf(t *testing.T, s string) crdt.EventID {
	t.Helper()
	id, err := crdt.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRestartRepairsPartialEvent: a node restarts over a badger store
// holding a message by its envelope alone (as the split commit before
// 91091ec left them); opening the store removes it, the node starts and
// its restored log counts it missing, and the room holds back the events
// after it (roomwait.go). Sync alone heals it, with no restart: the
// session after the restart finds equal heads and asks the peer for the
// missing id (p2p askGaps); the copy is stored whole, body included, the
// held events are applied, and the node's own new message is accepted.
func TestRestartRepairsPartialEvent(t *testing.T) {
	dir := t.TempDir()
	openStore := func() *badgerstore.Store {
		s, err := badgerstore.Open(dir, badgerstore.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	bs := openStore()
	const n = 20
	tn, room, h := twoNodeRoom(t, n, func(i int, s crdt.Store) crdt.Store {
		if i == 1 {
			return bs
		}
		return s
	})
	// Before tn.close:
	t.Cleanup(func() { tn.stopWait(1); bs.Close() })
	x := idOf(t, h[len(h)/2]) // a message with later ones
	want, err := tn.stores[0].Get(x)
	if err != nil || len(want.Event.Body) == 0 {
		t.Fatalf("the event on node 0: %v", err)
	}

	tn.stopWait(1)
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	storeInPart(t, dir, x)
	bs = openStore()
	tn.stores[1] = bs
	if ok, err := bs.Has(x); ok || err != nil {
		t.Fatalf("the event stored in part is held after the repair (%v)", err)
	}
	tn.start(1)
	eventually(t, convergeWithin, "the event stored whole", func() (bool, string) {
		got, err := bs.Get(x)
		if err != nil {
			return false, err.Error()
		}
		return bytes.Equal(got.Event.Body, want.Event.Body), "body differs"
	})
	eventually(t, convergeWithin, "no gap", func() (bool, string) {
		info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
		return err == nil && info.Sync.Missing == 0 && info.Sync.Pending == 0, fmt.Sprintf("%+v, %v", info.Sync, err)
	})
	tn.converged(room, 2+n, convergeWithin, 0, 1)
	send(t, tn, 1, room, 1, "after")
	tn.converged(room, 2+n+1, convergeWithin, 0, 1)
}

func keepStore(_ int, s crdt.Store) crdt.Store { return s }

// lossyCopy copies src, events and node-local values, into a new
// MemStore, leaving out the events in lost: a store that lost them, with
// the events after them and the room's heads as they were.
func lossyCopy(t *testing.T, src *crdt.MemStore, lost ...crdt.EventID) *crdt.MemStore {
	t.Helper()
	dst := crdt.NewMemStore()
	rooms, err := src.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		b := crdt.Batch{Room: room}
		if err := src.Scan(room, 0, func(s crdt.Stored) bool {
			if !slices.Contains(lost, s.Event.ID) {
				b.Events = append(b.Events, s)
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if b.AddHeads, err = src.Heads(room); err != nil {
			t.Fatal(err)
		}
		if err := dst.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	var perr error
	if err := src.ScanLocal(nil, func(k, v []byte) bool {
		perr = dst.PutLocal(k, v)
		return perr == nil
	}); err != nil || perr != nil {
		t.Fatal(err, perr)
	}
	return dst
}

// TestSyncHealsLostEvents: node 1's store lost two consecutive messages
// in the middle of a 200-message room (both nodes wrote some, before and
// after them); node 1 starts on it and heals by sync alone: the session
// with node 0 finds equal heads and asks for the missing id, the copy
// that arrives misses its parent in turn and is fetched the same way, and
// the room applies what it held back once they are in. Both timelines
// then agree, the room counts nothing missing, and node 1's new message
// is accepted everywhere.
func TestSyncHealsLostEvents(t *testing.T) {
	const n = 100
	tn, room, _ := twoNodeRoom(t, n, keepStore)
	send(t, tn, 1, room, n, "one")
	tn.converged(room, 2+2*n, convergeWithin, 0, 1)
	h := tn.history(1, room)
	lost := []crdt.EventID{idOf(t, h[n-1]), idOf(t, h[n])} // node 0's last message and node 1's first
	if ev, err := tn.stores[1].Get(lost[1]); err != nil || !slices.Contains(ev.Event.Prev, lost[0]) {
		t.Fatalf("the second lost message does not follow the first (%v)", err)
	}

	tn.stopWait(1)
	s := lossyCopy(t, tn.stores[1].(*crdt.MemStore), lost...)
	tn.stores[1] = s
	tn.start(1)
	eventually(t, convergeWithin, "no gap", func() (bool, string) {
		info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
		return err == nil && info.Sync.Missing == 0 && info.Sync.Pending == 0, fmt.Sprintf("%+v, %v", info.Sync, err)
	})
	for _, id := range lost {
		if ok, err := s.Has(id); !ok || err != nil {
			t.Fatalf("lost event %s not stored again (%v)", id, err)
		}
	}
	tn.converged(room, 2+2*n, convergeWithin, 0, 1)
	send(t, tn, 1, room, 1, "after")
	tn.converged(room, 2+2*n+1, convergeWithin, 0, 1)
}

// TestHeldEventsApplyWhenParentArrives: with no peer to heal it, a node
// restarted on a store that lost a message holds back the events after
// it (roomwait.go): they do not show, and neither do a peer's new
// messages written on them nor the node's own new message, which is
// accepted for sending. Once the lost message is ingested, all of them
// are applied in order and the timeline is the peer's, plus the own
// message; connected again, both agree.
func TestHeldEventsApplyWhenParentArrives(t *testing.T) {
	const n = 20
	tn, room, h := twoNodeRoom(t, n, keepStore)
	x := idOf(t, h[len(h)/2])
	lost, err := tn.stores[0].Get(x)
	if err != nil {
		t.Fatal(err)
	}

	tn.stopWait(1)
	tn.cut(0, 1)
	send(t, tn, 0, room, 3, "while apart")
	tn.stores[1] = lossyCopy(t, tn.stores[1].(*crdt.MemStore), x)
	tn.start(1)
	info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
	if err != nil || info.Sync.Missing != 1 {
		t.Fatalf("after the restart: %+v, %v; want 1 missing", info.Sync, err)
	}
	if got := count(tn, 1, room); got != len(h)/2 {
		t.Fatalf("node 1 shows %d events, want the %d before the lost one", got, len(h)/2)
	}
	holding := func() bool { _, ok := tn.reps[1].Engine.guards.holding.Load(lost.Event.Room); return ok }
	if !holding() {
		t.Fatal("the gossip guard does not know that the room holds events back")
	}
	own, err := tn.reps[1].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: "own, on held heads"})
	if err != nil {
		t.Fatalf("own message on held heads: %v", err)
	}
	var later []*crdt.Event
	if err := tn.stores[0].Scan(lost.Event.Room, lost.Event.Depth+1, func(s crdt.Stored) bool {
		later = append(later, s.Event)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := tn.reps[1].Engine.Ingest(tn.ctx, "", later); err != nil {
		t.Fatal(err)
	}
	if got := count(tn, 1, room); got != len(h)/2 {
		t.Fatalf("node 1 shows %d events after the peer's new ones, want %d (held)", got, len(h)/2)
	}
	if err := tn.reps[1].Engine.Ingest(tn.ctx, "", []*crdt.Event{lost.Event}); err != nil {
		t.Fatal(err)
	}
	got, want := tn.history(1, room), tn.history(0, room)
	if !slices.Contains(got, own.Event) || !slices.Equal(slices.DeleteFunc(got, func(id string) bool { return id == own.Event }), want) {
		t.Fatalf("node 1 shows\n%v\nwant\n%v and %s", got, want, own.Event)
	}
	if info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room}); err != nil || info.Sync.Missing != 0 || holding() {
		t.Fatalf("after the lost message arrived: %+v, %v, guard holding %v", info.Sync, err, holding())
	}
	tn.link(0, 1)
	tn.converged(room, 2+n+3+1, convergeWithin, 0, 1)
}
