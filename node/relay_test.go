package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// plainRelay is a standard gossipsub peer that serves no sync: it joins a
// room's topics and forwards what gossipsub forwards, as a js-libp2p peer
// subscribed to them would (no signatures, message ID = SHA-256 of the
// data, as js-libp2p computes it for unsigned messages). Since members
// gossip a room only to peers that proved it (docs/protocol.md 2.1), the
// relay was given the room ID and answers room proofs: that is all of
// Parley it speaks.
type plainRelay struct {
	ps   *pubsub.PubSub
	subs []*pubsub.Subscription
	got  chan struct{} // one per event-topic message received
}

func newPlainRelay(t *testing.T, tn *testNet, room crdt.RoomID) (*plainRelay, peer.ID) {
	t.Helper()
	h, err := tn.mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gate := p2p.NewRoomGate(h, slog.New(slog.DiscardHandler))
	gate.Track(room)
	done := make(chan struct{})
	go func() { defer func() { done <- struct{}{} }(); gate.Serve(ctx) }()
	opts := append(gate.PubSubOptions(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { s := sha256.Sum256(m.Data); return string(s[:]) }))
	ps, err := pubsub.NewGossipSub(ctx, gate.PubSubHost(h), opts...)
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	r := &plainRelay{ps: ps, got: make(chan struct{}, 1024)}
	for _, name := range []string{p2p.EventTopic(room), p2p.HeadsTopic(room)} {
		top, err := ps.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := top.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		isEv := name == p2p.EventTopic(room)
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
				if isEv {
					r.got <- struct{}{}
				}
			}
		}()
	}
	t.Cleanup(func() { cancel(); <-done; <-done; <-done })
	return r, h.ID()
}

func topicHas(ps *pubsub.PubSub, topic string, p peer.ID) bool {
	return slices.Contains(ps.ListPeers(topic), p)
}

// TestGapRepairedThroughPlainRelay (issue 17 item 10): node B's only gossip
// path to node A is a plain gossipsub relay R. Events A published before B
// grafted into R's mesh reach B only as ancestors of a later event, and R
// cannot serve them. B must repair the gap from a peer that serves sync for
// the room (A, which served B before and which B can dial), not from R;
// while no such peer is reachable, room info says so.
func TestGapRepairedThroughPlainRelay(t *testing.T) {
	tn := newTestNet(t, 2)
	const a, b = 0, 1
	tn.link(a, b)
	room := setupRoom(t, tn)
	tn.converged(room, 2, convergeWithin, a, b)
	id, err := crdt.ParseID(room)
	if err != nil {
		t.Fatal(err)
	}
	// A and B part: no link, no connection. R joins the room's topics.
	tn.cut(a, b)
	relay, rID := newPlainRelay(t, tn, id)
	ha, hb := tn.reps[a].host.ID(), tn.reps[b].host.ID()
	link := func(x, y peer.ID) {
		t.Helper()
		if _, err := tn.mn.LinkPeers(x, y); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.mn.ConnectPeers(x, y); err != nil {
			t.Fatal(err)
		}
	}
	link(ha, rID)
	eventually(t, convergeWithin, "A and R see each other on the event topic", func() (bool, string) {
		return slices.Contains(tn.reps[a].gossip.EventPeers(id), rID) && topicHas(relay.ps, p2p.EventTopic(id), ha), ""
	})
	// A publishes while B is not connected to R: R gets the events and has
	// nobody to forward them to.
	const before = 5
	send(t, tn, a, room, before, "before")
	for range before {
		select {
		case <-relay.got:
		case <-time.After(convergeWithin):
			t.Fatal("the relay did not receive A's events")
		}
	}
	link(hb, rID)
	eventually(t, convergeWithin, "B and R see each other on the event topic", func() (bool, string) {
		return slices.Contains(tn.reps[b].gossip.EventPeers(id), rID) && topicHas(relay.ps, p2p.EventTopic(id), hb), ""
	})
	info := func() api.SyncInfo {
		r, err := tn.reps[b].RoomInfo(tn.ctx, api.RoomReq{Room: room})
		if err != nil {
			t.Fatal(err)
		}
		return r.Sync
	}
	// A sends until one of its events reaches B through R (once B is in
	// R's mesh): B learns of the gap, and only R is connected.
	after, last := 0, time.Time{}
	eventually(t, convergeWithin, "B learns of a gap through R", func() (bool, string) {
		si := info()
		if si.Missing > 0 {
			return true, ""
		}
		if after < 20 && time.Since(last) > 2*time.Second {
			send(t, tn, a, room, 1, fmt.Sprint("after ", after))
			after, last = after+1, time.Now()
		}
		return false, fmt.Sprintf("%+v", si)
	})
	if si := info(); si.SyncPeers != 0 {
		t.Fatalf("B counts %d sync peers with only a plain relay connected", si.SyncPeers)
	}
	// A becomes reachable to B again (linked, not connected): B's repair
	// must find it, with R as the only connected peer.
	if _, err := tn.mn.LinkPeers(ha, hb); err != nil {
		t.Fatal(err)
	}
	tn.converged(room, 2+before+after, convergeWithin, a, b)
	if si := info(); si.Missing != 0 || si.Pending != 0 {
		t.Fatalf("B after repair: %+v", si)
	}
}
