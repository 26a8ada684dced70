package node

import (
	"cmp"
	"container/heap"
	"fmt"
	"maps"
	"slices"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// Events the room state machine waits for. The log (crdt.Log) accepts an
// event only once every reference is held, so a live room never sees an
// event before its parents. A restored log is different: a store that
// lost an event (the one-time repair of events stored in part,
// docs/operators.md) still holds its descendants, which Restore takes as
// they were, so the log is complete above a hole it counts missing. The
// room must not judge those descendants then (it would refuse each for
// good, "unknown parent", and every event after them, the node's own
// included), so the engine holds them, like the log's orphans: an
// accepted event whose parent or auth event the log does not hold, or
// the room holds back, waits; once the missing event arrives and is
// applied, what waited on it is read back from the store and applied in
// (depth, id) order. Only the ids are kept (a room restored with a hole
// near its start waits with its whole history).

// heldEvent is an accepted event the room state machine has not applied,
// because a reference of it is missing or held too.
type heldEvent struct {
	depth uint64
	waits int // references not applied yet
}

// applied is an event the room state machine took, with what it changed
// in the visible timeline.
type applied struct {
	ev *crdt.Event
	d  rooms.Delta
}

// apply feeds one accepted event to the room state machine, or holds it
// while one of its references is missing from the log or held (see the
// comment above). It returns the events applied: ev, unless held,
// followed by the held events that it released, in (depth, id) order,
// which get reads back (from the store).
func (rc *roomCtl) apply(ev *crdt.Event, get func(crdt.EventID) (*crdt.Event, error)) ([]applied, error) {
	if ev.Type == crdt.TypeCreate {
		r, err := rooms.New(ev)
		if err != nil {
			return nil, err
		}
		rc.room = r
		return rc.release([]applied{{ev, rooms.Delta{Shown: []crdt.EventID{ev.ID}}}}, get)
	}
	if rc.room == nil {
		return nil, fmt.Errorf("event %s before its room's create event", ev.ID)
	}
	if _, ok := rc.held[ev.ID]; ok || rc.room.Has(ev.ID) {
		return nil, nil
	}
	if rc.hold(ev) {
		return nil, nil
	}
	return rc.release([]applied{{ev, rc.room.Apply(ev)}}, get)
}

// hold holds ev when a reference of it is neither held by the log nor
// applied by the room, and reports whether it did.
func (rc *roomCtl) hold(ev *crdt.Event) bool {
	waits := 0
	for _, list := range [2][]crdt.EventID{ev.Prev, ev.Auth} {
		for _, r := range list {
			if _, held := rc.held[r]; held || !rc.log.Has(r) {
				if !slices.Contains(rc.waiters[r], ev.ID) {
					waits++
					if rc.waiters == nil {
						rc.waiters = map[crdt.EventID][]crdt.EventID{}
					}
					rc.waiters[r] = append(rc.waiters[r], ev.ID)
				}
			}
		}
	}
	if waits == 0 {
		return false
	}
	if rc.held == nil {
		rc.held = map[crdt.EventID]*heldEvent{}
	}
	rc.held[ev.ID] = &heldEvent{depth: ev.Depth, waits: waits}
	return true
}

// release applies, after the events in done, the held events that no
// longer wait for anything once those are applied, in (depth, id) order,
// and returns done with them appended.
func (rc *roomCtl) release(done []applied, get func(crdt.EventID) (*crdt.Event, error)) ([]applied, error) {
	if len(rc.waiters) == 0 {
		return done, nil
	}
	var q heldQueue
	for _, a := range done {
		rc.settle(a.ev.ID, &q)
	}
	return rc.drain(&q, done, get)
}

// drain applies the queued events that wait for nothing, and those that
// they release in turn, in (depth, id) order, appending them to done.
func (rc *roomCtl) drain(q *heldQueue, done []applied, get func(crdt.EventID) (*crdt.Event, error)) ([]applied, error) {
	for q.Len() > 0 {
		it := heap.Pop(q).(crdt.Item)
		ev, err := get(it.ID)
		if err != nil {
			return done, fmt.Errorf("read held event %s: %w", it.ID, err)
		}
		done = append(done, applied{ev, rc.room.Apply(ev)})
		rc.settle(ev.ID, q)
	}
	return done, nil
}

// settle tells the events waiting for id that it no longer holds them
// back, and queues those that wait for nothing else.
func (rc *roomCtl) settle(id crdt.EventID, q *heldQueue) {
	ws, ok := rc.waiters[id]
	if !ok {
		return
	}
	delete(rc.waiters, id)
	for _, w := range ws {
		h := rc.held[w]
		if h == nil {
			continue
		}
		if h.waits--; h.waits == 0 {
			delete(rc.held, w)
			heap.Push(q, crdt.Item{Depth: h.depth, ID: w})
		}
	}
}

// settleHeld releases the events that wait for references the log holds
// and the room neither applied nor holds back: rejected events (which the
// room never applies) and, after a restore, events restored after the
// ones naming them. The room judges what it releases.
func (rc *roomCtl) settleHeld(get func(crdt.EventID) (*crdt.Event, error)) ([]applied, error) {
	if len(rc.waiters) == 0 {
		return nil, nil
	}
	var q heldQueue
	for _, id := range slices.Sorted(maps.Keys(rc.waiters)) {
		if _, held := rc.held[id]; !held && rc.log.Has(id) && !rc.room.Has(id) {
			rc.settle(id, &q)
		}
	}
	return rc.drain(&q, nil, get)
}

// heldQueue is a min-heap of held events on (depth, id).
type heldQueue []crdt.Item

func (q heldQueue) Len() int { return len(q) }
func (q heldQueue) Less(i, j int) bool {
	if c := cmp.Compare(q[i].Depth, q[j].Depth); c != 0 {
		return c < 0
	}
	return q[i].ID < q[j].ID
}
func (q heldQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *heldQueue) Push(x any)   { *q = append(*q, x.(crdt.Item)) }
func (q *heldQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
