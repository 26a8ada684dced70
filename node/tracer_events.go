package node

import (
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// EventTracer is an optional extension of Tracer for simulations: a Tracer
// that also implements it is told every event a replica accepts, with the
// peer it came from (empty for events this replica authored). It is called
// on the engine goroutine and must not block (a simulation's CPU model
// holds it for the virtual time the event's work costs, as a busy engine
// would be held).
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

// SyncTracer is an optional extension of Tracer: told of every pull-sync
// session (a stream of SyncProtocol), as client or as server.
type SyncTracer interface {
	SyncSession(p peer.ID, server bool)
}

// RejectTracer is an optional extension of Tracer: told of offered events
// that were not taken, with a reason (the Reject* constants of metrics.go).
// It may be called from any goroutine and must not block.
type RejectTracer interface {
	EventsRejected(room crdt.RoomID, reason string, n int)
}

// traceSession tells t of a sync session, if it listens.
func traceSession(t Tracer, p peer.ID, server bool) {
	if st, ok := t.(SyncTracer); ok {
		st.SyncSession(p, server)
	}
}

// traceRejected tells t of n rejected events, if it listens.
func traceRejected(t Tracer, room crdt.RoomID, reason string, n int) {
	if rt, ok := t.(RejectTracer); ok && n > 0 {
		rt.EventsRejected(room, reason, n)
	}
}

// tracerRejected returns the engine's Rejected effect for a tracer, or nil.
func tracerRejected(t Tracer) func(room crdt.RoomID, reason string, n int) {
	if _, ok := t.(RejectTracer); !ok {
		return nil
	}
	return func(room crdt.RoomID, reason string, n int) { traceRejected(t, room, reason, n) }
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
