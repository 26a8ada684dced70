package crdt

import "errors"

// Status is what a node decided about an event it holds.
type Status uint8

const (
	// StatusAccepted: the event passed R1 and R2 (stateless and causal
	// validity). Whether it is authorized and visible is decided by rooms.
	StatusAccepted Status = 1
	// StatusRejected: the event passed R1 but failed R2 (for example a
	// wrong depth or a parent from another room). It is kept so that
	// closure checks and serving still work, and never used for state.
	StatusRejected Status = 2
)

// ErrNotFound is returned by a Store for an event it does not hold.
var ErrNotFound = errors.New("crdt: not found")

// Stored is one event as a Store holds it.
type Stored struct {
	Event  *Event
	Status Status
	Reason string // why it was rejected; empty when accepted
}

// Batch is what one Commit writes atomically: events with their status and
// the change of the room's heads they cause. A Batch holds events of a
// single room, in topological order.
type Batch struct {
	Room        RoomID
	Events      []Stored
	AddHeads    []EventID
	RemoveHeads []EventID
	// Durable asks the store to reach stable storage before Commit
	// returns (used for events this node authored and acknowledged).
	Durable bool
	// New says that the store holds none of Events: the caller's log
	// held none of them and holds every event the store holds of the
	// room (node: a room loaded from the store, or one it held no event
	// of, with no failed commit since). A store may then skip its check of
	// held events (badgerstore: a badger read per event). An event that is
	// held all the same (New set wrongly) may be written again as given.
	New bool
}

// Store persists rooms' events. Implementations must be safe for concurrent
// use. Callers only commit events that passed Decode (R1); the store checks
// nothing but keeps what it is given. Slices returned are owned by the
// caller. Two implementations exist, MemStore here and badgerstore.Store,
// and both pass RunStoreConformance.
type Store interface {
	// Commit writes b in one transaction: all of it or nothing. Committing
	// an event that is already held changes nothing for that event.
	Commit(b Batch) error
	// Get returns the event with id, or ErrNotFound.
	Get(id EventID) (Stored, error)
	// Has reports whether the event is held.
	Has(id EventID) (bool, error)
	// Heads returns the room's current heads, sorted.
	Heads(room RoomID) ([]EventID, error)
	// Rooms lists the rooms with at least one event, sorted.
	Rooms() ([]RoomID, error)
	// Scan calls fn for the room's events in ascending (depth, id) order,
	// starting at depth from; it stops early when fn returns false.
	Scan(room RoomID, from uint64, fn func(Stored) bool) error
	// PurgeBody removes an event's body for good (redaction): afterwards
	// Get returns the event with a nil Body, and the body's bytes are
	// gone from the store's files once its compaction has run.
	PurgeBody(id EventID) error
	// Close releases the store.
	Close() error
}

// GetMany reads the held events among ids, in one transaction where the
// store reads many events at once (badgerstore's GetMany), else one by
// one; events not held are left out.
func GetMany(s Store, ids []EventID) ([]Stored, error) {
	if mg, ok := s.(interface {
		GetMany([]EventID) ([]Stored, error)
	}); ok {
		return mg.GetMany(ids)
	}
	out := make([]Stored, 0, len(ids))
	for _, id := range ids {
		st, err := s.Get(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}
