package node

import (
	"context"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// The event topic's validator accepts at once what pubsub hands it as
// published by this node (from is the local peer: Serve publishes only
// events this node authored and committed), without decoding or judging
// it; the same bytes from any other peer are judged, and rejected.
func TestOwnGossipAccepted(t *testing.T) {
	self, other := peer.ID("self"), peer.ID("other")
	g := &Gossip{self: self}
	v := g.validator(crdt.RoomID("room"))
	m := &pubsub.Message{Message: &pb.Message{Data: []byte("not an event frame")}}
	if res := v(context.Background(), self, m); res != pubsub.ValidationAccept {
		t.Fatalf("own message: %v, want accept without judging", res)
	}
	if res := v(context.Background(), other, m); res != pubsub.ValidationReject {
		t.Fatalf("another peer's undecodable message: %v, want reject", res)
	}
}
