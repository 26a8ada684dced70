package node

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// setupRoom creates a public room on node 0 and has every other node join it.
func setupRoom(t *testing.T, tn *testNet) string {
	t.Helper()
	ctx := tn.ctx
	room, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(tn.reps); i++ {
		id, err := tn.reps[i].Engine.TrackRoom(ctx, room.Room)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "room reaches node", func() (bool, string) {
			ok, _ := tn.reps[i].Engine.HasRoomState(ctx, id)
			return ok, fmt.Sprint("node ", i)
		})
		if _, err := tn.reps[i].Engine.Join(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	return room.Room
}

func send(t *testing.T, tn *testNet, i int, room string, n int, tag string) {
	t.Helper()
	for k := range n {
		if _, err := tn.reps[i].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: fmt.Sprintf("%s %d", tag, k)}); err != nil {
			t.Fatal(err)
		}
	}
}

func count(tn *testNet, i int, room string) int { return len(tn.history(i, room)) }

func TestPartitionAndHeal(t *testing.T) {
	tn := newTestNet(t, 4)
	tn.link(0, 1)
	tn.link(1, 2)
	tn.link(2, 3)
	tn.link(3, 0)
	room := setupRoom(t, tn)
	base := 1 + 3
	tn.converged(room, base, convergeWithin, 0, 1, 2, 3)
	// Partition {0,1} | {2,3}.
	tn.cut(1, 2)
	tn.cut(3, 0)
	send(t, tn, 0, room, 50, "left")
	send(t, tn, 3, room, 50, "right")
	tn.converged(room, base+50, convergeWithin, 0, 1)
	tn.converged(room, base+50, convergeWithin, 2, 3)
	// Heal: anti-entropy on the new connections merges both sides.
	tn.link(1, 2)
	tn.link(3, 0)
	tn.converged(room, base+100, 30*time.Second, 0, 1, 2, 3)
}

func TestBlockedSubscriberRepairedByPull(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000-event burst")
	}
	tr := &dropTracer{}
	tn := newTracedTestNet(t, 2, func(i int) p2p.Tracer {
		if i == 1 {
			return tr
		}
		return nil
	})
	tn.link(0, 1)
	room := setupRoom(t, tn)
	rid, _ := crdt.ParseID(room)
	tn.converged(room, 2, convergeWithin, 0, 1)
	// Block node 1's engine, so its gossip readers stall and pubsub drops.
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the net closes, also on failure
	blocked := make(chan struct{})
	go tn.reps[1].Engine.do(tn.ctx, func() error { close(blocked); <-release; return nil })
	<-blocked
	tr.topic.Store(p2p.EventTopic(rid))
	send(t, tn, 0, room, 10_000, "burst")
	// Gossip really dropped events: pubsub could not deliver them to the
	// stalled subscriber. It never delivers a message twice (its seen
	// cache), so only pull can bring them.
	eventually(t, 60*time.Second, "gossip drops an event", func() (bool, string) {
		n, _ := tr.counts()
		return n > 0, ""
	})
	_, roundsBefore := tr.counts()
	unblock()
	tn.converged(room, 2+10_000, 60*time.Second, 0, 1)
	dropped, rounds := tr.counts()
	if rounds == roundsBefore {
		t.Fatal("node 1 has every event but pulled none")
	}
	have := map[string]bool{}
	for _, id := range tn.history(1, room) {
		have[id] = true
	}
	for _, id := range tr.droppedIDs() {
		if !have[id] {
			t.Fatalf("event %s that gossip dropped was never repaired", id)
		}
	}
	t.Logf("gossip dropped %d events; %d pull pages repaired them", dropped, rounds-roundsBefore)
}

// dropTracer counts the events pubsub could not deliver to a slow
// subscriber of one topic, and the pages of events pulled by sync.
type dropTracer struct {
	topic   atomic.Value // string
	mu      sync.Mutex
	dropped []string // guarded by mu
	rounds  int      // guarded by mu
}

func (d *dropTracer) counts() (dropped, rounds int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dropped), d.rounds
}

func (d *dropTracer) droppedIDs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.dropped)
}

func (d *dropTracer) EventsAccepted(crdt.RoomID, int) {}
func (d *dropTracer) SyncRound(crdt.RoomID, peer.ID) {
	d.mu.Lock()
	d.rounds++
	d.mu.Unlock()
}
func (d *dropTracer) PubSubRawTracer() pubsub.RawTracer { return dropRaw{d} }

// dropRaw is the pubsub side of dropTracer.
type dropRaw struct{ d *dropTracer }

func (r dropRaw) UndeliverableMessage(m *pubsub.Message) {
	ev, ok := m.ValidatorData.(*crdt.Event)
	if t, _ := r.d.topic.Load().(string); !ok || m.GetTopic() != t {
		return
	}
	r.d.mu.Lock()
	r.d.dropped = append(r.d.dropped, ev.ID.String())
	r.d.mu.Unlock()
}
func (dropRaw) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (dropRaw) OnClosedOutboundStream(peer.ID)                       {}
func (dropRaw) Join(string)                                          {}
func (dropRaw) Leave(string)                                         {}
func (dropRaw) Graft(peer.ID, string)                                {}
func (dropRaw) Prune(peer.ID, string)                                {}
func (dropRaw) ValidateMessage(*pubsub.Message)                      {}
func (dropRaw) DeliverMessage(*pubsub.Message)                       {}
func (dropRaw) RejectMessage(*pubsub.Message, string)                {}
func (dropRaw) DuplicateMessage(*pubsub.Message)                     {}
func (dropRaw) ThrottlePeer(peer.ID)                                 {}
func (dropRaw) RecvRPC(*pubsub.RPC)                                  {}
func (dropRaw) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (dropRaw) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (dropRaw) DropRPC(*pubsub.RPC, peer.ID)                         {}

func TestOfflineCatchUp(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 1000
	}
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	room := setupRoom(t, tn)
	tn.converged(room, 2, convergeWithin, 0, 1)
	tn.stop(1)
	send(t, tn, 0, room, n, "offline")
	tn.start(1)
	tn.reps[1].SyncNow(tn.ctx)
	tn.converged(room, 2+n, 60*time.Second, 0, 1)
	info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	if info.Sync.Missing != 0 || info.Sync.Pending != 0 {
		t.Fatalf("after catch-up: %+v", info.Sync)
	}
}

// forge signs an event by ident in room with the given parents, bypassing the log.
func forge(t *testing.T, ident *crdt.Identity, room crdt.RoomID, prev []crdt.EventID, auth []crdt.EventID, depth uint64, text string) *crdt.Event {
	t.Helper()
	ev, err := crdt.Sign(ident, crdt.Draft{Room: room, Type: rooms.TypeMessage, Prev: prev, Auth: auth, Depth: depth, TS: 1, Body: rooms.Encode(rooms.MessageBody{Text: text})})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestForgedParentNeverApplied(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	room := setupRoom(t, tn)
	tn.converged(room, 2, convergeWithin, 0, 1)
	rid, _ := crdt.ParseID(room)
	heads, _, _ := tn.reps[1].Engine.Heads(tn.ctx, rid)
	fake := crdt.IDOf([]byte("no such event"))
	ev := forge(t, tn.ids[1], rid, append([]crdt.EventID{fake}, heads...), []crdt.EventID{rid}, 50, "forged")
	if err := tn.reps[0].Engine.Ingest(tn.ctx, "", []*crdt.Event{ev}); err != nil {
		t.Fatal(err)
	}
	// A later honest message still flows, and the forged one never shows.
	send(t, tn, 1, room, 1, "honest")
	tn.converged(room, 3, convergeWithin, 0, 1)
	info, _ := tn.reps[0].Engine.Info(tn.ctx, api.RoomReq{Room: room})
	if info.Sync.Pending != 1 || info.Sync.Missing != 1 {
		t.Fatalf("forged event should wait with one missing parent: %+v", info.Sync)
	}
	for _, id := range tn.history(0, room) {
		if id == ev.ID.String() {
			t.Fatal("forged event applied")
		}
	}
}

// TestOrphanFloodBoundedPerPeer: a peer sending events whose parents do not
// exist fills at most its own share of the orphan buffer, and honest events
// keep flowing.
func TestOrphanFloodBoundedPerPeer(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	room := setupRoom(t, tn)
	tn.converged(room, 2, convergeWithin, 0, 1)
	rid, _ := crdt.ParseID(room)
	var flood []*crdt.Event
	for i := range maxPeerOrphans + 500 {
		fake := crdt.IDOf([]byte(fmt.Sprint("missing ", i)))
		flood = append(flood, forge(t, tn.ids[1], rid, []crdt.EventID{fake}, []crdt.EventID{rid}, 7, fmt.Sprint("orphan ", i)))
	}
	const attacker = "attacker"
	for i := 0; i < len(flood); i += 1000 {
		if err := tn.reps[0].Engine.Ingest(tn.ctx, attacker, flood[i:min(i+1000, len(flood))]); err != nil {
			t.Fatal(err)
		}
	}
	info, _ := tn.reps[0].Engine.Info(tn.ctx, api.RoomReq{Room: room})
	if info.Sync.Pending != maxPeerOrphans {
		t.Fatalf("pending after the flood: %d, want the peer's budget %d", info.Sync.Pending, maxPeerOrphans)
	}
	send(t, tn, 1, room, 3, "honest")
	tn.converged(room, 5, convergeWithin, 0, 1)
}
