package node

import (
	"fmt"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// RoomBase is a frozen prefix of one room (its log and state machine) that
// the replicas of one process share: a simulation whose replicas all start
// from the same events (a preloaded membership) gives each engine an
// overlay of it (crdt.Log.Overlay, rooms.Room.Overlay) instead of
// restoring and applying every event per replica. It is immutable. A
// daemon never uses one: its engine loads every room from its store.
type RoomBase struct {
	log  *crdt.Log
	room *rooms.Room
}

// NewRoomBase freezes a log and a room that took the same events (every
// event of the log applied to the room in a causal order), for
// ReplicaOptions.Bases. The engine of a replica checks, when it loads the
// room, that its store holds exactly the base's events (and maybe more).
// An encrypted room, or one whose state is more than a plain prefix
// (rooms.Room.Freeze), cannot be a base.
func NewRoomBase(l *crdt.Log, r *rooms.Room) (*RoomBase, error) {
	if r.Encrypted() {
		return nil, fmt.Errorf("room base: %s is encrypted", r.ID())
	}
	if l.Room() != r.ID() || l.Pending() > 0 {
		return nil, fmt.Errorf("room base: the log does not match the room")
	}
	if err := l.Freeze(); err != nil {
		return nil, fmt.Errorf("room base: %w", err)
	}
	if err := r.Freeze(); err != nil {
		return nil, fmt.Errorf("room base: %w", err)
	}
	return &RoomBase{log: l, room: r}, nil
}

// loadOver starts rc from base: what the store holds beyond the base is
// restored and applied as usual (apply), and the store must hold every
// event of the base.
func (rc *roomCtl) loadOver(store crdt.Store, base *RoomBase, apply func(crdt.Stored) bool) error {
	rc.log, rc.room = base.log.Overlay(), base.room.Overlay()
	inBase := 0
	err := store.Scan(rc.log.Room(), 0, func(s crdt.Stored) bool {
		if base.log.Has(s.Event.ID) {
			inBase++
			return true
		}
		return apply(s)
	})
	if err == nil && inBase != base.log.Len() {
		err = fmt.Errorf("the store holds %d of the base's %d events", inBase, base.log.Len())
	}
	return err
}
