package node

import (
	"fmt"
	"slices"
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
	events            int      // events in every batch committed
	wrong             []string // events of batches marked New that were held
}

func (s *newCheckStore) Commit(b crdt.Batch) error {
	s.mu.Lock()
	s.events += len(b.Events)
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

func (s *newCheckStore) committed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

// TestBatchNewOnlyWhenNotHeld: the engine marks a batch New only when the
// store holds none of its events (roomCtl.whole). Node 1 hosts a room
// blindly (a room its store has no event of: its batches are marked),
// drops it, and hosts it again after node 0 sent more: the room is loaded
// from the store as at start (TrackRoom), so node 1 pulls only the new
// events, its batches are marked again, no marked batch ever holds a
// stored event, and the store's heads are the log's (a fresh log pulling
// the room again left the first hosting's heads in the store).
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
	marked, _, wrong := cs.counts()
	if marked == 0 || len(wrong) > 0 {
		t.Fatalf("first hosting: %d batches marked New; marked but held: %v", marked, wrong)
	}
	first := cs.committed()
	if _, err := host.DropBlind(ctx, api.RoomReq{Room: r.Room}); err != nil {
		t.Fatal(err)
	}
	send(t, tn, 0, r.Room, 5, "second")
	if _, err := host.KeepBlind(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	sameEvents(t, tn, r.Room)
	marked2, _, wrong := cs.counts()
	if marked2 == marked || len(wrong) > 0 {
		t.Fatalf("hosted again: %d → %d batches marked New; marked but held: %v", marked, marked2, wrong)
	}
	// Only what was sent while it was dropped is committed again (5
	// messages; a fresh log pulled all of the room again).
	if again := cs.committed() - first; again > 5 {
		t.Errorf("hosted again: %d events committed, not only the 5 sent meanwhile", again)
	}
	id, err := crdt.ParseID(r.Room)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := cs.Heads(id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := host.Info(ctx, api.RoomReq{Room: r.Room})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range stored {
		got = append(got, h.String())
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(info.Sync.Heads))
	if !slices.Equal(got, want) {
		t.Errorf("hosted again: the store's heads %v, the log's %v", got, want)
	}
	t.Logf("events committed: %d at the first hosting, %d after hosting again", first, cs.committed()-first)
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
