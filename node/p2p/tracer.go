package p2p

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// Tracer receives protocol events, so that simulations and metrics collect
// numbers without parsing logs. Methods are called from many goroutines and
// must not block.
type Tracer interface {
	EventsAccepted(room crdt.RoomID, n int)
	SyncRound(room crdt.RoomID, p peer.ID)
}
