package node

import (
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// EventTracer is an optional extension of Tracer for simulations: a Tracer
// that also implements it is told every event a replica accepts, with the
// peer it came from (empty for events this replica authored). It is called
// on the engine goroutine and must not block.
type EventTracer interface {
	EventAccepted(room crdt.RoomID, ev *crdt.Event, from peer.ID)
}

// PubSubTracer is an optional extension of Tracer: a Tracer that implements
// it gets gossipsub's raw trace (RPC sizes, duplicates, drops) of the
// replica's router.
type PubSubTracer interface {
	PubSubRawTracer() pubsub.RawTracer
}

// tracerPubSubOptions returns the gossipsub options a tracer asks for.
func tracerPubSubOptions(t Tracer) []pubsub.Option {
	if pt, ok := t.(PubSubTracer); ok {
		if rt := pt.PubSubRawTracer(); rt != nil {
			return []pubsub.Option{pubsub.WithRawTracer(rt)}
		}
	}
	return nil
}

// tracerAccepted returns the engine's Accepted effect for a tracer, or nil.
func tracerAccepted(t Tracer) func(room crdt.RoomID, evs []*crdt.Event, from peer.ID) {
	et, ok := t.(EventTracer)
	if !ok {
		return nil
	}
	return func(room crdt.RoomID, evs []*crdt.Event, from peer.ID) {
		for _, ev := range evs {
			et.EventAccepted(room, ev, from)
		}
	}
}
