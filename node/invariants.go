package node

import (
	"fmt"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// checkCommitted verifies, in builds with the `invariants` tag
// (crdt.Invariants), what every successful commit must leave true, and
// panics otherwise: the room's heads in the log equal the store's; every
// event of the batch is held by the log and the store and is not also
// waiting as an orphan; every parent and auth reference of an accepted
// event of the batch is held. It reads the whole room's heads from the
// store, so ordinary builds skip it.
func (e *Engine) checkCommitted(room crdt.RoomID, rc *roomCtl, r crdt.Ready) {
	if !crdt.Invariants {
		return
	}
	fail := func(format string, args ...any) {
		panic(fmt.Sprintf("node: invariant: room %s: "+format, append([]any{room}, args...)...))
	}
	stored, err := e.store.Heads(room)
	if err != nil {
		fail("store heads: %v", err)
	}
	if heads := rc.log.Heads(); !slices.Equal(heads, stored) {
		fail("log heads %v, store heads %v", heads, stored)
	}
	for _, s := range r.Batch.Events {
		id := s.Event.ID
		if !rc.log.Has(id) || rc.log.Waiting(id) {
			fail("committed event %s: held %v, waiting %v", id, rc.log.Has(id), rc.log.Waiting(id))
		}
		if ok, err := e.store.Has(id); !ok || err != nil {
			fail("committed event %s not in the store (%v)", id, err)
		}
	}
	for _, ev := range r.Accepted {
		for _, p := range slices.Concat(ev.Prev, ev.Auth) {
			if !rc.log.Has(p) {
				fail("accepted event %s has parent %s, which is not held", ev.ID, p)
			}
		}
	}
}
