package node

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Ready is everything one engine step (an input: events from a peer, a
// local command, a fired timer) asks its driver to do, modelled on etcd
// raft's Ready. The engine core fills it; the driver (driver.go) performs
// it after the step, in this order (docs/design.md §1):
//
//  1. write ahead: save the preferences (Prefs) and persist the epoch
//     secrets the core made or opened (Keep), so that no event under an
//     epoch is committed, let alone published, before its secret is on
//     disk; when one fails, the step's local proposals fail with it;
//  2. commit the proposed batches, in order: events from peers (Ingest)
//     and the step's local proposals (add: everything a command, timer or
//     advance authored in one room is one batch). Each is followed by the
//     core's advance, which may add to the Ready (back to 1), or by its
//     reject when the store refused the batch: the core is then as before
//     the input, and nothing of the refused batch is published;
//  3. write the invite book's changes (Book), after the commits: an
//     invite is dropped only once the join it led to is stored; when one
//     fails, the book takes it back (and those after it) and the step
//     fails unless only displaced or joined invites were to be deleted;
//  4. write decrypted plaintext (Plain), then purge redacted bodies;
//  5. start tracking rooms, publish, announce heads, fetch, report
//     refusals and invites, tracer hooks, watch items, and timers.
//
// Commits lists what was committed, in order.
type Ready struct {
	Prefs    bool           // save the preferences (write ahead)
	Keep     []KeyWrite     // epoch secrets to persist (write ahead)
	Propose  []*Proposal    // batches to commit, in order (then advance or reject)
	Commits  []Committed    // batches committed by the step, in order
	Book     []InviteWrite  // changes of the invite book to write (after the commits)
	Plain    []PlainWrite   // decrypted plaintext to write (after the commits)
	Purge    []crdt.EventID // redacted events whose body and plaintext to delete (after the commits)
	Track    []crdt.RoomID  // rooms to start gossiping and syncing
	Publish  []Published    // locally authored events to gossip
	Heads    []HeadsOut     // rooms whose heads changed
	Fetch    []FetchOut     // events to fetch
	Refused  []FetchOut     // peers whose events could not be committed: sync with them again (IDs nil)
	Invites  []InviteOut    // invites to deliver to the invitee's devices
	Accepted []AcceptedOut  // tracer: events accepted, from whom
	Rejected []RejectedOut  // tracer: offered events not taken, by reason
	Watch    []WatchOut     // items for the watchers
	Timers   []Timer        // timers wanted
}

// KeyWrite is an epoch secret, sealed at rest, for the driver to persist
// under Key in the node's local store before any commit that follows.
// Event is the event that carried it to this device (empty: made here).
type KeyWrite struct {
	Room  crdt.RoomID
	Epoch e2ee.EpochID
	Event crdt.EventID
	Key   []byte
	Value []byte
	bg    bool // made by background authoring (Proposal.bg)
}

// InviteWrite is a change of the invite book (invites.go) for the driver
// to write to the node's local store after the step's commits: the
// pending invite to a room to keep (Value, encoded), or with Delete, its
// removal. The book holds the change already; when the write fails, the
// driver hands it back to the core (inviteFailed), which undoes it.
type InviteWrite struct {
	Room   string // the room's ID, in text (the book's key)
	Value  []byte
	Delete bool

	prev  *pendingInvite // the book's entry before the write (nil: none)
	seq   uint64         // the book's arrival counter before the write
	quiet bool           // a displaced invite, or one to a joined room: a failure is logged, not returned
}

// PlainWrite asks the driver to write what the core decrypted of an event
// (held in the keyring until then) to the node's local store.
type PlainWrite struct {
	Room  crdt.RoomID
	Event crdt.EventID
}

// Committed is one batch a step committed.
type Committed struct {
	Room    crdt.RoomID
	Events  []crdt.EventID
	Durable bool
}

// Published is a locally authored event to gossip.
type Published struct {
	Room  crdt.RoomID
	Event *crdt.Event
}

// HeadsOut is a room's new heads.
type HeadsOut struct {
	Room  crdt.RoomID
	Heads []crdt.EventID
}

// FetchOut asks for a room's events, preferably from a peer.
type FetchOut struct {
	Room crdt.RoomID
	IDs  []crdt.EventID
	From peer.ID
}

// InviteOut is an invite to deliver.
type InviteOut struct {
	Room           crdt.RoomID
	Target         crdt.UserID
	Create, Invite *crdt.Event
	Name           string
}

// AcceptedOut lists the events a step accepted in a room ("" From: authored here).
type AcceptedOut struct {
	Room   crdt.RoomID
	Events []*crdt.Event
	From   peer.ID
}

// RejectedOut counts a room's offered events not taken for one reason
// (the Reject* constants of metrics.go).
type RejectedOut struct {
	Room   crdt.RoomID
	Reason string
	N      int
}

// WatchOut is one item for the watchers of a room.
type WatchOut struct {
	Room crdt.RoomID
	Item api.WatchItem
}

// TimerKind names what a timer is for.
type TimerKind uint8

const (
	TimerHeal   TimerKind = iota + 1 // a forced key-healing check of Room
	TimerRetry                       // retry deferred local writes (retryLocal)
	TimerTyping                      // a typing notice of (Room, User) lapses unless renewed (Token)
)

func (k TimerKind) String() string {
	switch k {
	case TimerHeal:
		return "heal"
	case TimerRetry:
		return "retry"
	case TimerTyping:
		return "typing"
	}
	return "timer?"
}

// Timer is a timer the core wants: the driver calls Engine.fire with it
// at (or after) At on the engine's clock.
type Timer struct {
	Kind   TimerKind
	Room   crdt.RoomID
	At     time.Time
	User   crdt.UserID   // TimerTyping
	Device crdt.DeviceID // TimerTyping
	Token  uint64        // TimerTyping
}

// empty reports whether the Ready asks for nothing.
func (rd *Ready) empty() bool {
	return b2i(rd.Prefs)+len(rd.Keep)+len(rd.Propose)+len(rd.Book)+len(rd.Plain)+len(rd.Commits)+len(rd.Purge)+len(rd.Track)+len(rd.Publish)+len(rd.Heads)+len(rd.Fetch)+len(rd.Refused)+
		len(rd.Invites)+len(rd.Accepted)+len(rd.Rejected)+len(rd.Watch)+len(rd.Timers) == 0
}

// reset empties the Ready, keeping its storage.
func (rd *Ready) reset() {
	clear(rd.Keep)
	clear(rd.Propose)
	clear(rd.Book)
	clear(rd.Publish)
	clear(rd.Accepted)
	clear(rd.Invites)
	clear(rd.Watch)
	*rd = Ready{
		Keep: rd.Keep[:0], Propose: rd.Propose[:0], Book: rd.Book[:0], Plain: rd.Plain[:0], Commits: rd.Commits[:0], Purge: rd.Purge[:0], Track: rd.Track[:0], Publish: rd.Publish[:0], Heads: rd.Heads[:0],
		Fetch: rd.Fetch[:0], Refused: rd.Refused[:0], Invites: rd.Invites[:0], Accepted: rd.Accepted[:0],
		Rejected: rd.Rejected[:0], Watch: rd.Watch[:0], Timers: rd.Timers[:0],
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// readyMark is where a Ready's effect lists ended at some point of a step.
type readyMark struct {
	track, publish, heads, fetch, refused, invites, accepted, rejected, watch, timers int
}

func (rd *Ready) mark() readyMark {
	return readyMark{len(rd.Track), len(rd.Publish), len(rd.Heads), len(rd.Fetch), len(rd.Refused), len(rd.Invites),
		len(rd.Accepted), len(rd.Rejected), len(rd.Watch), len(rd.Timers)}
}

// forgetSince drops a room's effects added to the Ready since m: those of
// a local proposal that was rejected (Commits stay: the store holds them).
func (rd *Ready) forgetSince(m readyMark, room crdt.RoomID) {
	rd.Track = dropSince(rd.Track, m.track, func(id crdt.RoomID) bool { return id == room })
	rd.Publish = dropSince(rd.Publish, m.publish, func(p Published) bool { return p.Room == room })
	rd.Heads = dropSince(rd.Heads, m.heads, func(h HeadsOut) bool { return h.Room == room })
	rd.Fetch = dropSince(rd.Fetch, m.fetch, func(f FetchOut) bool { return f.Room == room })
	rd.Refused = dropSince(rd.Refused, m.refused, func(f FetchOut) bool { return f.Room == room })
	rd.Invites = dropSince(rd.Invites, m.invites, func(in InviteOut) bool { return in.Room == room })
	rd.Accepted = dropSince(rd.Accepted, m.accepted, func(a AcceptedOut) bool { return a.Room == room })
	rd.Rejected = dropSince(rd.Rejected, m.rejected, func(r RejectedOut) bool { return r.Room == room })
	rd.Watch = dropSince(rd.Watch, m.watch, func(w WatchOut) bool { return w.Room == room })
	rd.Timers = dropSince(rd.Timers, m.timers, func(t Timer) bool { return t.Room == room })
}

// dropSince deletes the items from index from on that match.
func dropSince[T any](s []T, from int, match func(T) bool) []T {
	if from >= len(s) {
		return s
	}
	return append(s[:from], slices.DeleteFunc(s[from:], match)...)
}

// fire handles a timer the core asked for; a timer that was replaced or
// whose room was dropped does nothing.
func (e *Engine) fire(t Timer) {
	switch t.Kind {
	case TimerHeal:
		if rc := e.rooms[t.Room]; rc != nil && rc.keys.healAt.Equal(t.At) && !t.At.IsZero() {
			rc.keys.healAt = time.Time{}
			e.heal(t.Room, rc, true)
		}
	case TimerRetry:
		if e.retryAt.Equal(t.At) && !t.At.IsZero() {
			e.retryAt = time.Time{}
			e.retryLocal()
		}
	case TimerTyping:
		k := typingKey{t.Room, t.User}
		if e.eph.typing[k] != t.Token {
			return // renewed or stopped since
		}
		delete(e.eph.typing, k)
		off := false
		e.emit(t.Room, api.WatchItem{Kind: "typing", Room: t.Room.String(), Signal: &api.Signal{User: t.User.String(), Device: t.Device.String(), Typing: &off}})
	}
}

// track asks the driver to start gossiping and syncing a room.
func (e *Engine) track(id crdt.RoomID) { e.out.Track = append(e.out.Track, id) }

// committed records a committed batch for the Ready.
func committed(room crdt.RoomID, b crdt.Batch) Committed {
	c := Committed{Room: room, Durable: b.Durable, Events: make([]crdt.EventID, len(b.Events))}
	for i, s := range b.Events {
		c.Events[i] = s.Event.ID
	}
	return c
}
