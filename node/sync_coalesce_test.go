package node

import (
	"fmt"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// roundTracer counts a replica's sync rounds (a heads answer or a page of
// events received).
type roundTracer struct {
	mu     sync.Mutex
	rounds int
}

func (r *roundTracer) EventsAccepted(crdt.RoomID, int) {}
func (r *roundTracer) SyncRound(crdt.RoomID, peer.ID) {
	r.mu.Lock()
	r.rounds++
	r.mu.Unlock()
}

func (r *roundTracer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rounds
}

// tracerOn gives tr to replica k and none to the others.
func tracerOn(k int, tr p2p.Tracer) func(int) p2p.Tracer {
	return func(i int) p2p.Tracer {
		if i == k {
			return tr
		}
		return nil
	}
}

// TestSyncCoalesce (issue 16): sessions of one room with one peer that
// are asked for while one runs wait for it and run after it, instead of
// beside it pulling the same pages. Node 1 catches up n events from node 0
// (n/1,000 pages) while the test asks for a session with node 0 again at
// every page it receives. Before the coalescing each request ran beside
// the catch-up and pulled the rest of the room again (more than twice the
// pages); now they run as one more session after it (one heads round).
func TestSyncCoalesce(t *testing.T) {
	const n = 5_000
	tr := &roundTracer{}
	tn := newTracedTestNet(t, 2, tracerOn(1, tr))
	tn.link(0, 1)
	room := setupRoom(t, tn)
	tn.converged(room, 2, convergeWithin, 0, 1)
	rid, _ := crdt.ParseID(room)
	tn.cut(0, 1)
	for k := range n {
		if _, err := tn.reps[0].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: fmt.Sprint("backlog ", k)}); err != nil {
			t.Fatal(err)
		}
	}
	info0, err := tn.reps[0].Engine.Info(tn.ctx, api.RoomReq{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	want := info0.Sync.Events
	start := tr.count()
	tn.link(0, 1) // node 1 starts a session with node 0 (PeerConnected)
	p0 := tn.reps[0].host.ID()
	asked, last := 0, start
	eventually(t, 2*convergeWithin, "node 1 catches up", func() (bool, string) {
		if r := tr.count(); r != last && asked < n/p2p.PageEvents {
			last = r
			asked++
			tn.reps[1].syncer.Trigger(rid, p0)
		}
		info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
		if err != nil {
			return false, err.Error()
		}
		return info.Sync.Events == want, fmt.Sprintf("node 1 holds %d of %d events", info.Sync.Events, want)
	})
	s := tn.reps[1].syncer
	eventually(t, convergeWithin, "the sessions asked for during the catch-up end", func() (bool, string) {
		queued, running := s.Jobs()
		return queued == 0 && running == 0, fmt.Sprintf("%d queued, %d running", queued, running)
	})
	rounds := tr.count() - start
	pages := n / p2p.PageEvents
	t.Logf("catch-up of %d events (%d pages) with %d more sessions asked for during it: %d sync rounds", n, pages, asked, rounds)
	if asked == 0 {
		t.Skip("the catch-up ended before a second session was asked for")
	}
	// One session: a heads round and the pages; the sessions asked for
	// during it: a heads round each at most (they find nothing to pull);
	// heads announcements may add a few more.
	if limit := pages + 1 + asked + 4; rounds > limit {
		t.Errorf("%d sync rounds for a %d-page catch-up (limit %d): overlapping sessions pulled the same pages", rounds, pages, limit)
	}
}
