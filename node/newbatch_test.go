package node

import (
	"fmt"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
)

// newCheckStore passes commits on to a store after checking that a batch
// marked New (crdt.Batch.New: the store may skip its check of held events)
// holds no event the store holds; it counts the batches of each kind.
type newCheckStore struct {
	*faultstore.Store // nothing injected: its node-local values are the wrapped store's
	mu                sync.Mutex
	marked            int
	unmarked          int
	wrong             []string // events of batches marked New that were held
}

func (s *newCheckStore) Commit(b crdt.Batch) error {
	s.mu.Lock()
	if b.New {
		s.marked++
		for _, st := range b.Events {
			if ok, err := s.Store.Has(st.Event.ID); err != nil || ok {
				s.wrong = append(s.wrong, fmt.Sprintf("%s (%v)", st.Event.ID, err))
			}
		}
	} else if len(b.Events) > 0 {
		s.unmarked++
	}
	s.mu.Unlock()
	return s.Store.Commit(b)
}

func (s *newCheckStore) counts() (marked, unmarked int, wrong []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marked, s.unmarked, append([]string(nil), s.wrong...)
}

// TestBatchNewOnlyWhenNotHeld: the engine marks a batch New only when the
// store holds none of its events (roomCtl.whole). Node 1 hosts a room
// blindly (a room its store has no event of: its batches are marked), drops
// it, and hosts it again: its store still holds the events pulled the first
// time, which a fresh log pulls again, so the room's batches are no longer
// marked, and no marked batch ever holds a stored event.
func TestBatchNewOnlyWhenNotHeld(t *testing.T) {
	var cs *newCheckStore
	tn := newTestNetWith(t, 2, func(i int, s crdt.Store) crdt.Store {
		if i != 1 {
			return s
		}
		cs = &newCheckStore{Store: faultstore.New(s, nil)}
		return cs
	})
	tn.link(0, 1)
	ctx := tn.ctx
	r, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	send(t, tn, 0, r.Room, 5, "first")
	host := tn.reps[1].Engine
	if _, err := host.KeepBlind(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, tn, r.Room)
	marked, unmarked, wrong := cs.counts()
	if marked == 0 || len(wrong) > 0 {
		t.Fatalf("first hosting: %d batches marked New, %d not; marked but held: %v", marked, unmarked, wrong)
	}
	if _, err := host.DropBlind(ctx, api.RoomReq{Room: r.Room}); err != nil {
		t.Fatal(err)
	}
	// Nothing is sent meanwhile: a room tracked again with a fresh log
	// leaves the heads of the first hosting in the store when the room moved
	// on in between (the invariants build panics on it; before this change
	// too), which is not what this test is about.
	if _, err := host.KeepBlind(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, tn, r.Room)
	marked2, unmarked2, wrong := cs.counts()
	if marked2 != marked || unmarked2 == unmarked || len(wrong) > 0 {
		t.Fatalf("hosted again: %d → %d batches marked New, %d → %d not; marked but held: %v", marked, marked2, unmarked, unmarked2, wrong)
	}
	t.Logf("batches marked New: %d; not marked after hosting again: %d", marked, unmarked2-unmarked)
}

// sameEvents waits until nodes 0 and 1 hold the same number of events of
// room, with the same heads.
func sameEvents(t *testing.T, tn *testNet, room string) {
	t.Helper()
	eventually(t, convergeWithin, "node 1 holds the room", func() (bool, string) {
		var infos [2]api.RoomInfoResp
		for i := range infos {
			info, err := tn.reps[i].Engine.Info(tn.ctx, api.RoomReq{Room: room})
			if err != nil {
				return false, err.Error()
			}
			infos[i] = info
		}
		return infos[0].Sync.Events == infos[1].Sync.Events && fmt.Sprint(infos[0].Sync.Heads) == fmt.Sprint(infos[1].Sync.Heads),
			fmt.Sprintf("%d and %d events", infos[0].Sync.Events, infos[1].Sync.Events)
	})
}
