package p2p

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

// PublishTracer is an optional extension of Tracer: told of each event
// this replica published on its room's gossip topic, once gossipsub has
// validated it and queued it to go out (gossipsub's raw trace leaves a
// node's own messages out). It is called on the gossip goroutine and must
// not block.
type PublishTracer interface {
	Published(ev *crdt.Event)
}

// SyncTracer is an optional extension of Tracer: told of every pull-sync
// session (a stream of SyncProtocol), as client or as server.
type SyncTracer interface {
	SyncSession(p peer.ID, server bool)
}

// RejectTracer is an optional extension of Tracer: told of offered events
// that were not taken, with a reason (RejectSyncInvalid, and the Reject*
// constants of the node's metrics.go). It may be called from any goroutine
// and must not block.
type RejectTracer interface {
	EventsRejected(room crdt.RoomID, reason string, n int)
}

// RejectSyncInvalid is the reason pull sync reports a page with an invalid
// event (the session ends); the node's other reasons are in its metrics.go.
const RejectSyncInvalid = "sync_invalid"

// traceSession tells t of a sync session, if it listens.
func traceSession(t Tracer, p peer.ID, server bool) {
	if st, ok := t.(SyncTracer); ok {
		st.SyncSession(p, server)
	}
}

// TraceRejected tells t of n rejected events, if it listens.
func TraceRejected(t Tracer, room crdt.RoomID, reason string, n int) {
	if rt, ok := t.(RejectTracer); ok && n > 0 {
		rt.EventsRejected(room, reason, n)
	}
}

// FetchTracer is an optional extension of Tracer: told of every page of
// events a pull-sync session received, before it is ingested, with its
// number of events and their encoded size. It is called from the
// session's goroutines and must not block.
type FetchTracer interface {
	EventsFetched(room crdt.RoomID, p peer.ID, events, bytes int)
}

// traceFetched tells t of a received page, if it listens.
func traceFetched(t Tracer, room crdt.RoomID, p peer.ID, frames [][]byte) {
	if ft, ok := t.(FetchTracer); ok {
		n := 0
		for _, f := range frames {
			n += len(f)
		}
		ft.EventsFetched(room, p, len(frames), n)
	}
}
