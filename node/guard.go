package node

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
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
	m       sync.Map
	gen     atomic.Uint64
	holding sync.Map // rooms whose state machine holds events back (roomwait.go): their guard lacks them

	mu       sync.Mutex
	refused  map[crdt.EventID]crdt.DeviceID // events rejected here against room state, by author device
	refusedQ []crdt.EventID                 // their order, oldest first (bounded by maxRefusedIDs)
	invalid  idSet                          // events rejected in flight that no rule can ever accept (R1, R2)
	joins    idSet                          // own member events of non-members this validator accepted
}

// joining remembers a non-member's own member event (a join or knock) that
// this validator accepted, so that the same device's next events are taken
// while the join is still in flight.
func (t *guardTable) joining(id crdt.EventID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.joins.add(id)
}

func (t *guardTable) joinSeen(id crdt.EventID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.joins.m[id]
}

// idSet is a set of event IDs that forgets the oldest past maxRefusedIDs.
type idSet struct {
	m map[crdt.EventID]bool
	q []crdt.EventID // insertion order, oldest first
}

func (s *idSet) add(id crdt.EventID) {
	if s.m == nil {
		s.m = map[crdt.EventID]bool{}
	}
	if s.m[id] {
		return
	}
	if len(s.q) >= maxRefusedIDs {
		delete(s.m, s.q[0])
		s.q = s.q[1:]
	}
	s.m[id] = true
	s.q = append(s.q, id)
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

// invalidate remembers an event rejected in flight that can never be valid
// (a bad signature or certificate, R1; a parent that can never be valid,
// R2), so that its children, of any author, are rejected too.
func (t *guardTable) invalidate(id crdt.EventID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.invalid.add(id)
}

func (t *guardTable) isInvalid(id crdt.EventID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.invalid.m[id]
}

// refusedBy reports whether id was rejected here and authored by dev.
func (t *guardTable) refusedBy(id crdt.EventID, dev crdt.DeviceID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.refused[id]
	return ok && d == dev
}

// InvalidInFlight remembers a gossiped frame that failed the stateless
// checks for its envelope alone (a bad signature or certificate): no body
// and no state can make it valid, so children naming it are rejected too.
// A bad body (hash, size) is not remembered: the envelope may be valid
// with its real body.
func (e *Engine) InvalidInFlight(frame []byte, err error) {
	if !errors.Is(err, crdt.ErrSignature) && !errors.Is(err, crdt.ErrCert) {
		return
	}
	if env, ok := p2p.FrameEnvelope(frame); ok {
		e.guards.invalidate(crdt.IDOf(env))
	}
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
	if len(rc.held) > 0 {
		e.guards.holding.Store(room, true)
	} else {
		e.guards.holding.Delete(room)
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
//   - Reject when a parent or auth reference is held and was rejected, or
//     was rejected in flight as never valid (R2: the event can never be
//     valid either), or when a parent is an event of the same device that
//     this node rejected against room state (the device keeps writing on
//     top of what it may not write). The event is remembered in turn, so
//     that a whole chain written on a rejected event is rejected, each
//     link costing its forwarder P4, not only the first child;
//   - when the sender is banned, its device removed, or it is not joined
//     (except its own member event: a join, knock or leave): Reject when the
//     node holds every parent (the event's whole past is then in the state
//     the guard summarizes, so the rules refuse the event or strong removal
//     hides it) and the room holds no event back (roomwait.go). Otherwise the node cannot judge yet and must not penalise
//     a forwarder for a state it may lack: Ignore (do not forward), except
//     for a sender not joined whose previous event (self) is a join or
//     knock this validator accepted (a new member's join and first
//     messages are usually in flight together);
//   - Reject a join or knock whose proof of work the room's state refuses
//     (rooms/work.go), when the node holds every parent (else Ignore);
//   - Reject an event over the room's rate limits (rooms/limits.go: events
//     and bytes per minute), judged from the self chain the limiter saw;
//   - Accept the rest. With no state yet (the create event is not held),
//     everything stateless-valid is accepted, as before.
func (e *Engine) judgeGossip(ev *crdt.Event, lim *chainLimiter) guardVerdict {
	gen := e.guards.gen.Load()
	held := gen%2 == 0
	for _, ids := range [][]crdt.EventID{ev.Prev, ev.Auth} {
		for _, id := range ids {
			s, err := e.store.Get(id)
			if err != nil {
				switch {
				case e.guards.isInvalid(id):
					e.guards.invalidate(ev.ID)
					return guardVerdict{pubsub.ValidationReject, "parent rejected in flight"}
				case e.guards.refusedBy(id, ev.Device):
					e.guards.refuse(ev)
					return guardVerdict{pubsub.ValidationReject, "parent rejected here"}
				}
				held = false
				continue
			}
			if s.Status != crdt.StatusAccepted {
				e.guards.invalidate(ev.ID)
				return guardVerdict{pubsub.ValidationReject, "parent rejected"}
			}
		}
	}
	g := e.guards.get(ev.Room)
	if g == nil {
		return guardAccept
	}
	held = held && e.guards.gen.Load() == gen // no add ran meanwhile
	if _, holding := e.guards.holding.Load(ev.Room); holding {
		held = false // the guard's state lacks the events the room holds back: judge nothing by it
	}
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
	if ownMember {
		if why := g.JoinRefusal(ev); why != "" {
			if !held {
				return guardVerdict{pubsub.ValidationIgnore, why + " (past not held)"}
			}
			e.guards.refuse(ev)
			return guardVerdict{pubsub.ValidationReject, why}
		}
	}
	if m != rooms.Join && ownMember {
		e.guards.joining(ev.ID)
	}
	if lim != nil && (g.Limit > 0 || g.Bytes > 0) && !g.Exempt[ev.User] {
		if why := lim.over(ev, g.Limit, g.Bytes); why != "" {
			// Not remembered as refused: the device's next event after a
			// pause is valid again, on top of this one.
			return guardVerdict{pubsub.ValidationReject, why}
		}
	}
	return guardAccept
}

// chainLimiter applies a room's rate limits at a relay: per device, the
// latest run of its self chain that gossip brought (event, ts, size), so
// that an event whose self chain holds the limit's events or bytes in the
// window is refused before anyone stores it. It only refuses what the
// rules refuse (events, and bytes as the envelopes state them):
// the chain it sees is part of the event's past; a chain it did not see in
// order it starts again. Safe for concurrent use.
type chainLimiter struct {
	mu     sync.Mutex
	chains map[crdt.DeviceID]*limitChain
}

type limitChain struct {
	ids  []crdt.EventID
	sent []rooms.Sent // in chain order, as ids
}

// maxLimitChain bounds what a limiter keeps per device (and maxLimitDevices
// how many devices): past it, counts can only be lower, never wrong. An
// author counts the same most recent maxLimitChain events (ownOverBytes).
const (
	maxLimitChain   = 1024
	maxLimitDevices = 10_000
)

func newChainLimiter() *chainLimiter { return &chainLimiter{chains: map[crdt.DeviceID]*limitChain{}} }

// over records ev and returns why its self chain, as far as seen, puts it
// over the limits (msgs events or bytes bytes within the window before
// it; 0: no limit), or "".
func (l *chainLimiter) over(ev *crdt.Event, msgs, bytes int64) string {
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
			return "" // seen already
		}
		c.ids, c.sent = c.ids[:0], c.sent[:0] // a new run of the chain
	}
	var count int64
	for i := len(c.sent) - 1; i >= 0 && c.sent[i].TS > ev.TS-rooms.LimitWindow; i-- {
		count++
	}
	why := rooms.OverBytes(bytes, ev.TS, c.sent)
	if msgs > 0 && count >= msgs {
		why = fmt.Sprintf("over the room's limit of %d events per minute", msgs)
	}
	if len(c.ids) == maxLimitChain {
		c.ids, c.sent = append(c.ids[:0], c.ids[1:]...), append(c.sent[:0], c.sent[1:]...)
	}
	c.ids, c.sent = append(c.ids, ev.ID), append(c.sent, rooms.Sent{TS: ev.TS, Size: int(ev.SignedSize())}) // as the rules count (rooms.overLimit)
	return why
}

// ownOverBytes is the author's side of a room's bytes limit (rooms.OverBytes),
// applied to an event this node signed before it is taken in: its device's
// own chain of the last minute, from the store. A body purged since (a
// redaction) counts as the largest its type allows, so the author never
// counts less than a relay that saw the event whole.
func (e *Engine) ownOverBytes(room crdt.RoomID, ev *crdt.Event) string {
	g := e.guards.get(room)
	if g == nil || g.Bytes == 0 || g.Exempt[ev.User] || ev.Seq == 0 {
		return ""
	}
	var chain []rooms.Sent
	for id := ev.Self; len(chain) < maxLimitChain; {
		s, err := e.store.Get(id)
		if err != nil || s.Event.TS <= ev.TS-rooms.LimitWindow {
			break
		}
		size := s.Event.Size()
		switch {
		case s.Event.HasBodyLen:
			size = int(s.Event.SignedSize()) // as the rules count it (rooms.overLimit)
		case s.Event.Body == nil:
			size = len(s.Event.Envelope) + crdt.MaxSize(s.Event.Type)
		}
		chain = append(chain, rooms.Sent{TS: s.Event.TS, Size: size})
		if s.Event.Seq == 0 {
			break
		}
		id = s.Event.Self
	}
	slices.Reverse(chain)
	return rooms.OverBytes(g.Bytes, ev.TS, chain)
}
