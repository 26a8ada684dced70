package node

import (
	"fmt"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// fetchTracer counts the events and bytes a replica's sync sessions
// received, and its sync rounds.
type fetchTracer struct {
	mu            sync.Mutex
	events, bytes int
	pages, rounds int
	byPeer        map[peer.ID]int
}

func (f *fetchTracer) EventsAccepted(crdt.RoomID, int) {}
func (f *fetchTracer) SyncRound(crdt.RoomID, peer.ID) {
	f.mu.Lock()
	f.rounds++
	f.mu.Unlock()
}
func (f *fetchTracer) EventsFetched(_ crdt.RoomID, p peer.ID, events, bytes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events += events
	f.bytes += bytes
	f.pages++
	if f.byPeer == nil {
		f.byPeer = map[peer.ID]int{}
	}
	f.byPeer[p] += events
}

func (f *fetchTracer) counts() (events, bytes, pages, rounds int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events, f.bytes, f.pages, f.rounds
}

func (f *fetchTracer) from(p peer.ID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byPeer[p]
}

// TestSyncFreshJoinFetchesOnce (issue 16): a fresh node joining a room of n
// events, connected to two members that hold it, fetches each event about
// once, while the members keep talking. Before the sync jobs of a room
// coalesced across peers (p2p.Syncer.begin), tracking the room started a
// session with each connected peer at once, each pulled the whole room,
// and the node fetched twice what it held (10,004 events for 5,053).
func TestSyncFreshJoinFetchesOnce(t *testing.T) {
	const n = 5_000
	tr := &fetchTracer{}
	tn := newTracedTestNet(t, 3, tracerOn(1, tr))
	tn.link(0, 2)
	room, err := tn.reps[0].Engine.CreateRoom(tn.ctx, api.RoomCreateReq{Name: "r", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tn.reps[2].Engine.TrackRoom(tn.ctx, room.Room)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "room reaches node 2", func() (bool, string) {
		ok, _ := tn.reps[2].Engine.HasRoomState(tn.ctx, id)
		return ok, "no state"
	})
	if _, err := tn.reps[2].Engine.Join(tn.ctx, id); err != nil {
		t.Fatal(err)
	}
	send(t, tn, 0, room.Room, n, "backlog")
	tn.converged(room.Room, n+2, convergeWithin, 0, 2)
	info0, err := tn.reps[0].Engine.Info(tn.ctx, api.RoomReq{Room: room.Room})
	if err != nil {
		t.Fatal(err)
	}
	tn.link(0, 1)
	tn.link(2, 1)
	if _, err := tn.reps[1].Engine.TrackRoom(tn.ctx, room.Room); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "room reaches node 1", func() (bool, string) {
		ok, _ := tn.reps[1].Engine.HasRoomState(tn.ctx, id)
		return ok, "no state"
	})
	if _, err := tn.reps[1].Engine.Join(tn.ctx, id); err != nil {
		t.Fatal(err)
	}
	// Members keep talking during the catch-up: gossip brings events
	// whose parents node 1 lacks yet.
	const live = 50
	send(t, tn, 0, room.Room, live/2, "live")
	send(t, tn, 2, room.Room, live/2, "live")
	want := info0.Sync.Events + 1 + live
	eventually(t, 2*convergeWithin, "node 1 catches up", func() (bool, string) {
		info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room.Room})
		if err != nil {
			return false, err.Error()
		}
		return info.Sync.Events >= want, fmt.Sprintf("node 1 holds %d of %d events", info.Sync.Events, want)
	})
	s := tn.reps[1].syncer
	eventually(t, convergeWithin, "sessions end", func() (bool, string) {
		queued, running := s.Jobs()
		return queued == 0 && running == 0, fmt.Sprintf("%d queued, %d running", queued, running)
	})
	fetched, bytes, pages, rounds := tr.counts()
	t.Logf("held %d, fetched %d events (%d octets) in %d pages, %d sync rounds; from node 0: %d, from node 2: %d",
		want, fetched, bytes, pages, rounds, tr.from(tn.reps[0].host.ID()), tr.from(tn.reps[2].host.ID()))
	if float64(fetched) > 1.05*float64(want) {
		t.Errorf("fetched %d events to hold %d", fetched, want)
	}
}
