package node

import (
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// What the node wires of a tracer (p2p.Tracer and its extensions): the
// gossipsub options it asks for and the engine's effects that tell it of
// accepted and rejected events.

// tracerPubSubOptions returns the gossipsub options a tracer asks for.
func tracerPubSubOptions(t p2p.Tracer) []pubsub.Option {
	if pt, ok := t.(p2p.PubSubTracer); ok {
		if rt := pt.PubSubRawTracer(); rt != nil {
			return []pubsub.Option{pubsub.WithRawTracer(rt)}
		}
	}
	return nil
}

// tracerAccepted returns the engine's Accepted effect for a tracer, or nil.
func tracerAccepted(t p2p.Tracer) func(room crdt.RoomID, evs []*crdt.Event, from peer.ID) {
	et, ok := t.(p2p.EventTracer)
	if !ok {
		return nil
	}
	return func(room crdt.RoomID, evs []*crdt.Event, from peer.ID) {
		for _, ev := range evs {
			et.EventAccepted(room, ev, from)
		}
	}
}

// tracerRejected returns the engine's Rejected effect for a tracer, or nil.
func tracerRejected(t p2p.Tracer) func(room crdt.RoomID, reason string, n int) {
	if _, ok := t.(p2p.RejectTracer); !ok {
		return nil
	}
	return func(room crdt.RoomID, reason string, n int) { p2p.TraceRejected(t, room, reason, n) }
}

// reportRejected tells the Rejected effect what a call of add did not take:
// events dropped for the peer's orphan budget, causally invalid ones (R2),
// orphans evicted, and stored events the auth rules refused (R3). It runs
// on the engine goroutine after the batch is applied.
func (e *Engine) reportRejected(room crdt.RoomID, rc *roomCtl, overBudget int, ready crdt.Ready) {
	invalid, unauthorized := 0, 0
	for _, s := range ready.Batch.Events {
		if s.Status == crdt.StatusRejected {
			invalid++
		}
	}
	if rc.room != nil {
		for _, ev := range ready.Accepted {
			if ev.Type != crdt.TypeCreate && !rc.room.Accepted(ev.ID) {
				unauthorized++
			}
		}
	}
	for reason, n := range map[string]int{RejectOrphanBudget: overBudget, RejectInvalid: invalid, RejectOrphanEvicted: ready.Dropped, RejectUnauthorized: unauthorized} {
		if n > 0 {
			e.out.Rejected = append(e.out.Rejected, RejectedOut{room, reason, n})
		}
	}
}
