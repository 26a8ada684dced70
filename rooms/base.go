package rooms

import (
	"errors"
	"maps"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Freeze makes r immutable so that rooms made by Overlay may share it: from
// then on Apply panics, and r is to be used only to make overlays (its own
// read methods keep caches, which overlays never touch).
//
// Rooms over a frozen base share it, as crdt.Log.Overlay does for logs: with a
// preloaded membership, every replica of a simulation starts from the same
// prefix (the create event and every member's join), and the per-event
// tables (evInfo, the IDs, the per-user, per-device and auth-children
// indexes) of each replica were most of the memory of a large room. An
// overlay reads through to the base and keeps only the events after it and
// copies of the base entries it changes (copy-on-write); it computes
// exactly what a room that applied the prefix computes
// (TestOverlayComputesTheSame). A daemon's room has no base: one comparison
// per event lookup. Only a plain prefix is shared: a room holding forks,
// removals, redactions, join-work rules or encryption keys is refused by
// Freeze, since that bookkeeping (fork views, void sets, key epochs)
// changes in place as later events arrive.
func (r *Room) Freeze() error {
	if r.frozen {
		return nil
	}
	if err := r.plain(); err != nil {
		return err
	}
	r.guard = r.Guard() // overlays that hold nothing of their own share it
	r.frozen = true
	return nil
}

var errBaseNotPlain = errors.New("rooms: freeze: the room holds forks, removals, redactions, work rules or keys")

// plain returns why r cannot be frozen, nil if it can.
func (r *Room) plain() error {
	if r.base != nil {
		return errors.New("rooms: freeze: the room is an overlay")
	}
	o, f, k := &r.ov, &r.fk, &r.keys
	if len(f.groups)+len(f.others)+len(f.viewList) > 0 ||
		len(o.invalid)+len(o.sealed)+len(o.cause)+len(o.removals)+len(o.eff)+len(o.workRules)+len(o.effWork) > 0 ||
		len(r.redactions)+len(r.redacted) > 0 || len(k.epochs)+len(k.holders)+len(k.uses) > 0 {
		return errBaseNotPlain
	}
	return nil
}

// Overlay returns a room over the frozen base r: it holds what r holds, and
// what is applied to it stays its own. It panics when r is not frozen (a
// programming error).
func (r *Room) Overlay() *Room {
	if !r.frozen {
		panic("rooms: Overlay of a room that is not frozen")
	}
	o := &Room{
		create: r.create, cbody: r.cbody, dm: r.dm,
		ids:   map[crdt.EventID]int32{},
		heads: maps.Clone(r.heads),
		// the resolution cache starts empty: it is a cache
		curVer: r.curVer, headsVer: r.headsVer, cur: r.cur,
		snapSeq: r.snapSeq, snapIDs: map[*snap]uint64{}, resCache: map[[32]byte]*snap{},
		resLookups: r.resLookups,
		userKeys:   maps.Clone(r.userKeys),
		redactions: map[int32][]int32{},
		redacted:   map[int32]bool{},
		base:       r,
		nb:         int32(len(r.evs)),
		mod:        map[int32]*evInfo{},
	}
	o.ov.init()
	o.ov.base = &r.ov
	o.ov.joins = slices.Clip(r.ov.joins) // only appended to: the first append copies
	o.fk.init()
	o.fk.judged = r.fk.judged
	o.fk.all, o.fk.allOK = r.fk.all, r.fk.allOK
	o.keys.init()
	return o
}

// idx returns an event's dense index.
func (r *Room) idx(id crdt.EventID) (int32, bool) {
	if i, ok := r.ids[id]; ok || r.base == nil {
		return i, ok
	}
	i, ok := r.base.ids[id]
	return i, ok
}

// ev returns the entry of event i (a base entry's copy when this room
// changed it).
func (r *Room) ev(i int32) *evInfo {
	if i >= r.nb {
		return r.evs[i-r.nb]
	}
	if e, ok := r.mod[i]; ok {
		return e
	}
	return r.base.evs[i]
}

// evMut is ev for a change: a base entry is copied first.
func (r *Room) evMut(i int32) *evInfo {
	e := r.ev(i)
	if i >= r.nb || r.mod[i] != nil {
		return e
	}
	c := *e
	r.mod[i] = &c
	return &c
}

// userEvents returns u's accepted events; a base slice is clipped, so that
// appending to it copies.
func (o *overlay) userEvents(u crdt.UserID) []int32 {
	if xs, ok := o.byUser[u]; ok || o.base == nil {
		return xs
	}
	return slices.Clip(o.base.byUser[u])
}

// kidsOf returns the accepted events that have a as an auth reference
// (clipped as userEvents).
func (o *overlay) kidsOf(a int32) []int32 {
	if xs, ok := o.authKids[a]; ok || o.base == nil {
		return xs
	}
	return slices.Clip(o.base.authKids[a])
}

// devToChange returns a device's bookkeeping for a change (a base entry is
// copied first), nil if the device has none.
func (o *overlay) devToChange(d crdt.DeviceID) *devInfo {
	if x, ok := o.devs[d]; ok || o.base == nil {
		return x
	}
	b := o.base.devs[d]
	if b == nil {
		return nil
	}
	c := &devInfo{bySeq: slices.Clone(b.bySeq), far: maps.Clone(b.far), events: slices.Clip(b.events), fork: b.fork}
	o.devs[d] = c
	return c
}

// eachDev calls fn with every device's bookkeeping.
func (o *overlay) eachDev(fn func(crdt.DeviceID, *devInfo)) {
	for d, x := range o.devs {
		fn(d, x)
	}
	if o.base == nil {
		return
	}
	for d, x := range o.base.devs {
		if _, own := o.devs[d]; !own {
			fn(d, x)
		}
	}
}
