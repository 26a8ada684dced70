package p2p

import (
	"context"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// SyncEngine is what pull sync needs of the room engine (the node's
// Engine). Its methods are safe for concurrent use; the ones with a
// context wait for the engine and return its error when it closed.
type SyncEngine interface {
	// Ingest takes in events a peer sent (gossip or a sync page). A
	// refused commit takes nothing of evs; they count as not held.
	Ingest(ctx context.Context, from peer.ID, evs []*crdt.Event) error
	// Heads returns a room's heads and whether the room is kept.
	Heads(ctx context.Context, room crdt.RoomID) ([]crdt.EventID, bool, error)
	// HeadsGap is Heads with the count of events the room's log misses
	// (Gap's count), in one call: a session reads both at its start.
	HeadsGap(ctx context.Context, room crdt.RoomID) (heads []crdt.EventID, missing int, ok bool, err error)
	// Known reports, for each of ids, whether the room's log holds it.
	Known(ctx context.Context, room crdt.RoomID, ids []crdt.EventID) ([]bool, error)
	// Since lists the held events that follow known, in causal order.
	Since(ctx context.Context, room crdt.RoomID, known []crdt.EventID) ([]crdt.EventID, error)
	// Items lists the held events at or above minDepth for reconciliation.
	Items(ctx context.Context, room crdt.RoomID, minDepth uint64) ([]crdt.Item, error)
	// Gap counts the events the room's log is missing and lists up to max
	// of them (none when max is 0), those under held events first.
	Gap(ctx context.Context, room crdt.RoomID, max int) (int, []crdt.EventID, error)
	// MaxDepth is the depth of the room's deepest held event.
	MaxDepth(ctx context.Context, room crdt.RoomID) (uint64, error)
	// MayServe reports whether user may pull room from this node.
	MayServe(ctx context.Context, room crdt.RoomID, user crdt.UserID) bool
	// RoomIDs lists the rooms the node keeps.
	RoomIDs(ctx context.Context) []crdt.RoomID
}

// GossipEngine is what gossip needs of the room engine (the node's Engine)
// besides pull sync's part.
type GossipEngine interface {
	SyncEngine
	// GossipJudge returns the judge of one room topic's validator: it
	// decides, on pubsub's goroutines and without waiting for the engine,
	// what to do with a stateless-valid event against the room state the
	// node holds. Each judge keeps its own rate-limit state.
	GossipJudge() func(*crdt.Event) Verdict
	// InvalidInFlight tells the engine of a gossiped frame that failed
	// decoding with err, so that children naming an event that can never
	// be valid are refused too.
	InvalidInFlight(frame []byte, err error)
	// IngestFailure tells what an error of Ingest means to gossip: stop
	// (the engine closed) or quiet (reported already, such as a full
	// disk); any other error gossip logs.
	IngestFailure(err error) (stop, quiet bool)
}

// Verdict is a gossip judge's decision on one event, with the reason for
// logs and tests.
type Verdict struct {
	Result pubsub.ValidationResult
	Reason string
}
