package node

import (
	"sync"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// Validation at every hop (docs/protocol.md §2): the gossip validator runs
// on pubsub's goroutines, so it cannot ask the engine. The engine publishes
// an immutable summary of each room's resolved state (rooms.Guard) into a
// guardTable after every change of state; validators read it lock-free.

// guardTable maps a room to its current *rooms.Guard. Safe for concurrent
// use; the engine goroutine is its only writer. gen is odd while the engine
// adds events (between its commit and the guard's refresh), so that a
// validator can tell when what the store holds and the guard may disagree.
type guardTable struct {
	m   sync.Map
	gen atomic.Uint64

	mu       sync.Mutex
	refused  map[crdt.EventID]crdt.DeviceID // events rejected here against room state, by author device
	refusedQ []crdt.EventID                 // their order, oldest first (bounded by maxRefusedIDs)
	joins    map[crdt.EventID]bool          // own member events of non-members this validator accepted
	joinsQ   []crdt.EventID                 // their order (bounded by maxRefusedIDs)
}

// joining remembers a non-member's own member event (a join or knock) that
// this validator accepted, so that the same device's next events are taken
// while the join is still in flight.
func (t *guardTable) joining(id crdt.EventID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.joins == nil {
		t.joins = map[crdt.EventID]bool{}
	}
	if t.joins[id] {
		return
	}
	if len(t.joinsQ) >= maxRefusedIDs {
		delete(t.joins, t.joinsQ[0])
		t.joinsQ = t.joinsQ[1:]
	}
	t.joins[id] = true
	t.joinsQ = append(t.joinsQ, id)
}

func (t *guardTable) joinSeen(id crdt.EventID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.joins[id]
}

// maxRefusedIDs bounds how many rejected events a node remembers.
const maxRefusedIDs = 1 << 16

// refuse remembers an event rejected against room state.
func (t *guardTable) refuse(ev *crdt.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refused == nil {
		t.refused = map[crdt.EventID]crdt.DeviceID{}
	}
	if _, ok := t.refused[ev.ID]; ok {
		return
	}
	if len(t.refusedQ) >= maxRefusedIDs {
		delete(t.refused, t.refusedQ[0])
		t.refusedQ = t.refusedQ[1:]
	}
	t.refused[ev.ID] = ev.Device
	t.refusedQ = append(t.refusedQ, ev.ID)
}

// refusedBy reports whether id was rejected here and authored by dev.
func (t *guardTable) refusedBy(id crdt.EventID, dev crdt.DeviceID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.refused[id]
	return ok && d == dev
}

// changing marks an add in progress; call the result when it is done.
func (t *guardTable) changing() func() {
	t.gen.Add(1)
	return func() { t.gen.Add(1) }
}

func (t *guardTable) get(room crdt.RoomID) *rooms.Guard {
	if v, ok := t.m.Load(room); ok {
		return v.(*rooms.Guard)
	}
	return nil
}

// guardAfter refreshes a room's guard when evs (accepted just now) include
// a state event, or always when evs is nil. Called on the engine goroutine.
func (e *Engine) guardAfter(room crdt.RoomID, rc *roomCtl, evs []*crdt.Event) {
	if rc.room == nil {
		return
	}
	changed := evs == nil
	for _, ev := range evs {
		changed = changed || ev.StateKey != nil || ev.Type == crdt.TypeCreate
	}
	if changed {
		e.guards.m.Store(room, rc.room.Guard())
	}
}

// guardVerdict is the validator's judgment of one event against the state
// this node holds, with the reason (for logs and tests).
type guardVerdict struct {
	res    pubsub.ValidationResult
	reason string
}

var guardAccept = guardVerdict{pubsub.ValidationAccept, ""}

// judgeGossip decides what a relay does with a stateless-valid event of a
// room it keeps:
//
//   - Reject when a parent or auth reference is held and was rejected
//     (R2: the event can never be valid), or when a parent is an event of
//     the same device that this node rejected against room state (the
//     device keeps writing on top of what it may not write);
//   - when the sender is banned, its device removed, or it is not joined
//     (except its own member event: a join, knock or leave): Reject when the
//     node holds every parent (the event's whole past is then in the state
//     the guard summarizes, so the rules refuse the event or strong removal
//     hides it). Otherwise the node cannot judge yet and must not penalise
//     a forwarder for a state it may lack: Ignore (do not forward), except
//     for a sender not joined whose previous event (self) is a join or
//     knock this validator accepted (a new member's join and first
//     messages are usually in flight together);
//   - Reject an event over the room's rate limit (rooms/limits.go), judged
//     from the self chain the limiter saw;
//   - Accept the rest. With no state yet (the create event is not held),
//     everything stateless-valid is accepted, as before.
func (e *Engine) judgeGossip(ev *crdt.Event, lim *chainLimiter) guardVerdict {
	gen := e.guards.gen.Load()
	held := gen%2 == 0
	for _, ids := range [][]crdt.EventID{ev.Prev, ev.Auth} {
		for _, id := range ids {
			s, err := e.store.Get(id)
			if err != nil {
				if e.guards.refusedBy(id, ev.Device) {
					return guardVerdict{pubsub.ValidationReject, "parent rejected here"}
				}
				held = false
				continue
			}
			if s.Status != crdt.StatusAccepted {
				return guardVerdict{pubsub.ValidationReject, "parent rejected"}
			}
		}
	}
	g := e.guards.get(ev.Room)
	if g == nil {
		return guardAccept
	}
	held = held && e.guards.gen.Load() == gen // no add ran meanwhile
	why := ""
	m := g.Membership(ev.User)
	ownMember := ev.Type == rooms.TypeMember && ev.StateKey != nil && *ev.StateKey == ev.User.String()
	switch {
	case m == rooms.Ban:
		why = "sender banned"
	case g.Removed[ev.Device]:
		why = "device removed"
	case m != rooms.Join && !ownMember:
		why = "sender not joined"
	}
	if why != "" {
		switch {
		case held:
			e.guards.refuse(ev)
			return guardVerdict{pubsub.ValidationReject, why}
		case why != "sender not joined" || !e.guards.joinSeen(ev.Self):
			return guardVerdict{pubsub.ValidationIgnore, why + " (past not held)"}
		}
	}
	if m != rooms.Join && ownMember {
		e.guards.joining(ev.ID)
	}
	if lim != nil && g.Limit > 0 && !g.Exempt[ev.User] && lim.over(ev, g.Limit) {
		// Not remembered as refused: the device's next event after a pause
		// is valid again, on top of this one.
		return guardVerdict{pubsub.ValidationReject, "over the room's rate limit"}
	}
	return guardAccept
}

// chainLimiter applies a room's rate limit at a relay: per device, the
// latest run of its self chain that gossip brought (event, ts), so that an
// event whose self chain holds Limit events in the window is refused before
// anyone stores it. It only refuses what the rules refuse (the chain it
// sees is part of the event's past); a chain it did not see in order it
// starts again. Safe for concurrent use.
type chainLimiter struct {
	mu     sync.Mutex
	chains map[crdt.DeviceID]*limitChain
}

type limitChain struct {
	ids []crdt.EventID
	ts  []int64
}

// maxLimitChain bounds what a limiter keeps per device (and maxLimitDevices
// how many devices): past it, counts can only be lower, never wrong.
const (
	maxLimitChain   = 1024
	maxLimitDevices = 10_000
)

func newChainLimiter() *chainLimiter { return &chainLimiter{chains: map[crdt.DeviceID]*limitChain{}} }

// over records ev and reports whether its self chain, as far as seen,
// holds limit events within the window before it.
func (l *chainLimiter) over(ev *crdt.Event, limit int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.chains[ev.Device]
	if c == nil {
		if len(l.chains) >= maxLimitDevices {
			clear(l.chains)
		}
		c = &limitChain{}
		l.chains[ev.Device] = c
	}
	if n := len(c.ids); ev.Seq == 0 || n == 0 || c.ids[n-1] != ev.Self {
		if n > 0 && c.ids[n-1] == ev.ID {
			return false // seen already
		}
		c.ids, c.ts = c.ids[:0], c.ts[:0] // a new run of the chain
	}
	var count int64
	for i := len(c.ts) - 1; i >= 0 && c.ts[i] > ev.TS-rooms.LimitWindow; i-- {
		count++
	}
	if len(c.ids) == maxLimitChain {
		c.ids, c.ts = append(c.ids[:0], c.ids[1:]...), append(c.ts[:0], c.ts[1:]...)
	}
	c.ids, c.ts = append(c.ids, ev.ID), append(c.ts, ev.TS)
	return count >= limit
}
