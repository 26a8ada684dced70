// Log: the DAG bookkeeping of one room.
//
// # Ordering
//
// Every event carries a depth, 1 + the maximum depth of its parents (the
// create event has depth 0), which R2 checks on receipt. So among accepted
// events a parent always has a smaller depth than its child, and sorting by
// (depth asc, id asc) is a topological order that depends only on the set of
// events: Order, Since, Items and the Batch of every Ready use it. Rejected
// events keep their claimed depth, which may be forged, so their position in
// that order means nothing; they never reach Order and are never heads.
//
// Add processes an event once every prev and auth reference is held
// (accepted or rejected). Ready events are taken from a min-heap on
// (depth, id), so releasing a chain of orphans never needs recursion, and the
// batch is sorted by (depth, id) before it is returned. R2 is a function of
// the event and its parents only, so the accepted set, the heads and Order are
// the same whatever the arrival order (the property test checks it).
//
// # Bounds
//
// Events whose references are not all held wait in an orphan buffer bounded by
// LogConfig.MaxOrphans events and MaxOrphanBytes (sum of Event.Size). On
// overflow the orphans that arrived first are evicted (FIFO by arrival), until
// both bounds hold again. We do not evict by depth: an orphan's depth has not
// been checked yet and is chosen by its author, so a flooding peer could pick
// whatever depth survives a depth-based policy, while arrival order is
// controlled by the receiver. An evicted orphan is simply forgotten: its ID
// shows up in Ready.Missing when other orphans wait for it, and the next
// reconciliation pulls it again. An orphan whose parent is forged never
// becomes ready, so it never affects heads or state; it just waits until it is
// evicted. Orphans are not persisted: after a restart they are pulled again.
//
// Costs: Add is O(refs · log pending) per event; Heads, Order, Since and Items
// are O(n log n) at most (the (depth, id) index is sorted lazily and kept).
// Memory is one index entry per held event (about 150 bytes plus the
// reference slices) and the orphans' events themselves.
//
// Log is not safe for concurrent use; its owner (one goroutine per room in
// node) serializes calls.

package crdt

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
)

// LogConfig bounds a Log. Zero values take the defaults.
type LogConfig struct {
	MaxOrphans     int // orphans held at most; default 50_000
	MaxOrphanBytes int // sum of the orphans' Event.Size at most; default 64 MiB
}

const (
	defaultMaxOrphans     = 50_000
	defaultMaxOrphanBytes = 64 << 20
)

// Item is a (depth, id) pair of a held event, the unit of range-based
// reconciliation.
type Item struct {
	Depth uint64
	ID    EventID
}

func cmpItem(a, b Item) int {
	if c := cmp.Compare(a.Depth, b.Depth); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// Equivocation is evidence that a device signed two events with one seq
// (rule R6). A < B.
type Equivocation struct {
	Device DeviceID
	Seq    uint64
	A, B   EventID
}

// Ready describes what one Add changed. The caller performs its effects in
// field order: commit Batch (Store.Commit) first, and only after the commit
// returns announce heads or hand Accepted to rooms and watchers; then fetch
// Missing.
type Ready struct {
	// Batch must be committed (Store.Commit) BEFORE anything derived from
	// it is announced. Its events are the newly processed ones, accepted
	// and rejected, in (depth asc, id asc) order; AddHeads and RemoveHeads
	// describe the head change (both sorted). Empty Events => nothing new.
	Batch Batch
	// Accepted are the accepted events of Batch, in the same order.
	Accepted []*Event
	// Missing lists, sorted and deduplicated, the ids that orphans touched
	// by this call (newly buffered, or left waiting by an eviction) refer
	// to and that are neither held nor waiting: fetch them. MissingIDs
	// gives all of them.
	Missing []EventID
	// Equivocations found by this call.
	Equivocations []Equivocation
	// Duplicates counts offered events that were already held or already
	// waiting in the orphan buffer.
	Duplicates int
	// Foreign counts offered events of other rooms (ignored).
	Foreign int
	// Dropped counts orphans evicted by the bounds.
	Dropped int
}

// entry is the index entry of a held event.
type entry struct {
	depth    uint64
	ts       int64
	seq      uint64
	dev      uint32 // index into Log.devices
	status   Status
	hasChild bool // an accepted event has it in prev
	prev     []EventID
	auth     []EventID
}

type orphan struct {
	ev      *Event
	waiting int    // references neither held nor foreign
	arrival uint64 // position in Log.fifo
}

type devSeq struct {
	dev uint32
	seq uint64
}

type devHead struct {
	seq uint64
	id  EventID
}

// Log is the DAG bookkeeping of one room, held in memory: an index entry per
// held event, the heads, the (device, seq) index and the orphan buffer. It is
// pure: no I/O, no clock, no randomness. See the file comment for ordering
// and bounds.
type Log struct {
	room RoomID
	cfg  LogConfig

	entries  map[EventID]*entry
	heads    map[EventID]struct{}
	devIndex map[DeviceID]uint32
	devices  []DeviceID
	chains   map[devSeq]EventID // first held event per (device, seq)
	latest   map[uint32]devHead // highest accepted seq per device
	gaps     map[EventID]bool   // referenced by a restored accepted event, not held; true if as prev
	maxDepth uint64
	accepted int

	sorted      []Item // every held event; sorted[:sortedUpTo] is in order
	sortedUpTo  int
	orphans     map[EventID]*orphan
	waiters     map[EventID][]EventID // unresolved reference -> orphans waiting on it
	orphanBytes int
	fifo        []fifoItem
	arrivals    uint64
	foreign     map[EventID]struct{} // events of other rooms that an orphan referred to

	j   *journal // records the running AddUndo; nil otherwise
	gen uint64   // counts changing calls, so a stale Undo is caught

	// A log made by Overlay reads through to a frozen base (logbase.go):
	// entries, devIndex, chains, latest and sorted hold only what this log
	// added, devices only the devices after the base's, and mod the base
	// entries this log changed (copies). nil base: a plain log.
	base   *Log
	mod    map[EventID]*entry
	frozen bool // Freeze was called: nothing may change this log
}

type fifoItem struct {
	id      EventID
	arrival uint64
}

// NewLog returns an empty log for room.
func NewLog(room RoomID, cfg LogConfig) *Log {
	if cfg.MaxOrphans <= 0 {
		cfg.MaxOrphans = defaultMaxOrphans
	}
	if cfg.MaxOrphanBytes <= 0 {
		cfg.MaxOrphanBytes = defaultMaxOrphanBytes
	}
	return &Log{
		room:     room,
		cfg:      cfg,
		entries:  make(map[EventID]*entry),
		heads:    make(map[EventID]struct{}),
		devIndex: make(map[DeviceID]uint32),
		chains:   make(map[devSeq]EventID),
		latest:   make(map[uint32]devHead),
		gaps:     make(map[EventID]bool),
		orphans:  make(map[EventID]*orphan),
		waiters:  make(map[EventID][]EventID),
		foreign:  make(map[EventID]struct{}),
	}
}

// Room returns the log's room.
func (l *Log) Room() RoomID { return l.room }

// Has reports whether id is held (accepted or rejected). Waiting orphans are
// not held.
func (l *Log) Has(id EventID) bool { _, ok := l.entry(id); return ok }

// Status returns the status of a held event.
func (l *Log) Status(id EventID) (Status, bool) {
	e, ok := l.entry(id)
	if !ok {
		return 0, false
	}
	return e.status, true
}

// Depth returns the (claimed) depth of a held event.
func (l *Log) Depth(id EventID) (uint64, bool) {
	e, ok := l.entry(id)
	if !ok {
		return 0, false
	}
	return e.depth, true
}

// Heads returns the accepted events that no accepted event has as a parent,
// sorted.
func (l *Log) Heads() []EventID {
	out := make([]EventID, 0, len(l.heads))
	for id := range l.heads {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// Len returns the number of events held.
func (l *Log) Len() int { return len(l.entries) + l.baseLen() }

// Pending returns the number of orphans waiting.
func (l *Log) Pending() int { return len(l.orphans) }

// MaxDepth returns the highest depth of an accepted event (rejected events'
// depths are not trusted).
func (l *Log) MaxDepth() uint64 { return l.maxDepth }

// Restore adds an event already held in the store, without checks. It is used
// at start-up and fed in ascending (depth, id) order (Store.Scan); it emits
// nothing, and equivocations among restored events are not reported again.
func (l *Log) Restore(s Stored) {
	l.mustNotBeFrozen()
	l.gen++
	ev := s.Event
	if ev == nil || ev.Room != l.room || l.Has(ev.ID) {
		return
	}
	l.hold(ev, s.Status, nil)
	if o, ok := l.orphans[ev.ID]; ok {
		l.dropOrphan(ev.ID, o)
	}
	if s.Status == StatusAccepted {
		for _, r := range refs(ev) {
			if !l.Has(r) {
				l.gaps[r] = l.gaps[r] || slices.Contains(ev.Prev, r)
			}
		}
	}
}

// Add offers events from anywhere (local author, gossip, sync), in any order,
// duplicates allowed. See Ready for what comes back and the file comment for
// ordering and bounds.
func (l *Log) Add(evs ...*Event) Ready {
	l.mustNotBeFrozen()
	l.gen++
	var r Ready
	r.Batch.Room = l.room
	var q readyQueue
	var touched []EventID // ids that may have become missing
	var early earlier
	for _, ev := range evs {
		switch {
		case ev == nil:
			continue
		case ev.Room != l.room:
			r.Foreign++
			if _, ok := l.waiters[ev.ID]; ok && len(l.foreign) < l.cfg.MaxOrphans {
				if _, known := l.foreign[ev.ID]; !known && l.j != nil {
					l.j.foreign = append(l.j.foreign, ev.ID)
				}
				l.foreign[ev.ID] = struct{}{}
				l.resolve(ev.ID, &q)
			}
			continue
		case l.Has(ev.ID):
			r.Duplicates++
			continue
		}
		if _, ok := l.orphans[ev.ID]; ok {
			r.Duplicates++
			continue
		}
		waiting := 0
		for _, ref := range refs(ev) {
			if !l.resolved(ref) && !early.before(q, ref, ev) {
				waiting++
			}
		}
		if waiting == 0 {
			heap.Push(&q, ev)
			early.pushed(ev)
			continue
		}
		l.arrivals++
		l.j.noteOrphan(l, ev.ID)
		l.orphans[ev.ID] = &orphan{ev: ev, waiting: waiting, arrival: l.arrivals}
		l.fifo = append(l.fifo, fifoItem{ev.ID, l.arrivals})
		l.orphanBytes += ev.Size()
		for _, ref := range refs(ev) {
			if !l.resolved(ref) && !early.before(q, ref, ev) {
				l.j.noteWaiters(l, ref)
				l.waiters[ref] = append(l.waiters[ref], ev.ID)
				touched = append(touched, ref)
			}
		}
	}
	heads := headChange{}
	for q.Len() > 0 {
		ev := heap.Pop(&q).(*Event)
		if l.Has(ev.ID) { // the same event offered twice in one call
			r.Duplicates++
			continue
		}
		status, reason := l.check(ev)
		if eq, ok := l.hold(ev, status, &heads); ok {
			r.Equivocations = append(r.Equivocations, eq)
		}
		r.Batch.Events = append(r.Batch.Events, Stored{Event: ev, Status: status, Reason: reason})
		l.resolve(ev.ID, &q)
	}
	r.Dropped, touched = l.evict(touched)
	slices.SortStableFunc(r.Batch.Events, func(a, b Stored) int {
		return cmpItem(Item{a.Event.Depth, a.Event.ID}, Item{b.Event.Depth, b.Event.ID})
	})
	for _, s := range r.Batch.Events {
		if s.Status == StatusAccepted {
			r.Accepted = append(r.Accepted, s.Event)
		}
	}
	r.Batch.AddHeads, r.Batch.RemoveHeads = heads.sorted()
	for _, id := range touched {
		if l.isMissing(id) {
			r.Missing = append(r.Missing, id)
		}
	}
	slices.Sort(r.Missing)
	r.Missing = slices.Compact(r.Missing)
	l.mustCheck()
	return r
}

// earlier knows the events an Add queued before it holds any (the events
// of a sync page whose references are held or queued before them), so that
// an event whose references were queued earlier in the same call is queued
// too instead of waiting as an orphan, the usual case for a page in (depth,
// id) order. Such a reference counts only if its (claimed) depth is below
// the event's: the queue pops in (depth, id) order, so it is held first,
// and the events are held in the same order as through the orphan buffer
// (every event queued this way has its queued references before it).
// The set is built on the first lookup, so an Add whose references are
// all held (gossip) pays nothing.
type earlier struct {
	depth map[EventID]uint64 // nil until the first lookup
}

// before reports whether ref was queued in this Add with a depth below ev's.
func (e *earlier) before(q readyQueue, ref EventID, ev *Event) bool {
	if len(q) == 0 {
		return false
	}
	if e.depth == nil {
		e.depth = make(map[EventID]uint64, len(q))
		for _, x := range q {
			e.depth[x.ID] = x.Depth
		}
	}
	d, ok := e.depth[ref]
	return ok && d < ev.Depth
}

// pushed records an event queued after the set was built.
func (e *earlier) pushed(ev *Event) {
	if e.depth != nil {
		e.depth[ev.ID] = ev.Depth
	}
}

// refs returns prev ∪ auth, sorted and unique (waiting counts rely on it).
func refs(ev *Event) []EventID {
	if len(ev.Auth) == 0 {
		return ev.Prev
	}
	out := make([]EventID, 0, len(ev.Prev)+len(ev.Auth))
	out = append(out, ev.Prev...)
	out = append(out, ev.Auth...)
	slices.Sort(out)
	return slices.Compact(out)
}

// resolved reports whether a reference no longer blocks processing: the event
// is held, or known to belong to another room.
func (l *Log) resolved(id EventID) bool {
	if l.Has(id) {
		return true
	}
	_, ok := l.foreign[id]
	return ok
}

func (l *Log) isMissing(id EventID) bool {
	if l.resolved(id) {
		return false
	}
	if _, ok := l.orphans[id]; ok {
		return false
	}
	_, gap := l.gaps[id]
	return len(l.waiters[id]) > 0 || gap
}

// resolve tells the orphans waiting on id that it is no longer missing, and
// queues those that have nothing left to wait for.
func (l *Log) resolve(id EventID, q *readyQueue) {
	ws, ok := l.waiters[id]
	if !ok {
		return
	}
	l.j.noteWaiters(l, id)
	delete(l.waiters, id)
	for _, w := range ws {
		o, ok := l.orphans[w]
		if !ok {
			continue
		}
		l.j.noteOrphan(l, w)
		if o.waiting--; o.waiting == 0 {
			delete(l.orphans, w)
			l.orphanBytes -= o.ev.Size()
			heap.Push(q, o.ev)
		}
	}
}

// check applies rule R2 to an event whose references are all resolved.
func (l *Log) check(ev *Event) (Status, string) {
	reject := func(format string, args ...any) (Status, string) {
		return StatusRejected, fmt.Sprintf(format, args...)
	}
	for _, id := range refs(ev) {
		if _, ok := l.foreign[id]; ok && !l.Has(id) {
			return reject("reference %s is in another room", id)
		}
	}
	if ev.Type == TypeCreate {
		if ev.ID != l.room {
			return reject("create event of another room")
		}
		return StatusAccepted, ""
	}
	var depth uint64
	var ts int64
	for i, id := range ev.Prev {
		p, _ := l.entry(id)
		if p.status != StatusAccepted {
			return reject("prev %s is rejected", id)
		}
		if i == 0 || p.depth > depth {
			depth = p.depth
		}
		if i == 0 || p.ts > ts {
			ts = p.ts
		}
	}
	if want := depth + 1; ev.Depth != want {
		return reject("depth %d, want %d", ev.Depth, want)
	}
	if ev.Seq > 0 {
		self, _ := l.entry(ev.Self) // Decode checked that self is among prev
		if l.device(self.dev) != ev.Device {
			return reject("self %s is by another device", ev.Self)
		}
		if self.seq+1 != ev.Seq {
			return reject("seq %d does not follow self seq %d", ev.Seq, self.seq)
		}
	}
	if ev.TS < ts {
		return reject("ts %d before parent ts %d", ev.TS, ts)
	}
	return StatusAccepted, ""
}

// hold adds a processed event to the index and updates heads and the
// (device, seq) index. It returns evidence when another held event has the
// same (device, seq).
func (l *Log) hold(ev *Event, status Status, hc *headChange) (Equivocation, bool) {
	l.j.noteHold(l, ev.ID)
	dev, ok := l.devOf(ev.Device)
	if !ok {
		dev = uint32(l.baseDevices() + len(l.devices))
		l.devices = append(l.devices, ev.Device)
		l.devIndex[ev.Device] = dev
	}
	e := &entry{depth: ev.Depth, ts: ev.TS, seq: ev.Seq, dev: dev, status: status, prev: ev.Prev, auth: ev.Auth}
	l.entries[ev.ID] = e
	l.sorted = append(l.sorted, Item{ev.Depth, ev.ID})
	// A restored accepted child seen before its parent (out-of-order Restore)
	// left a gap marked as prev: the parent is then no head.
	childSeen := l.gaps[ev.ID]
	l.j.noteGap(l, ev.ID)
	delete(l.gaps, ev.ID)
	if status == StatusAccepted {
		l.accepted++
		l.maxDepth = max(l.maxDepth, ev.Depth)
		for _, p := range ev.Prev {
			if pe, ok := l.entryToChange(p); ok {
				if !pe.hasChild && l.j != nil {
					l.j.hasChild = append(l.j.hasChild, pe)
				}
				pe.hasChild = true
				if _, isHead := l.heads[p]; isHead {
					l.j.noteHead(l, p)
					delete(l.heads, p)
					hc.remove(p)
				}
			}
		}
		if !childSeen {
			l.j.noteHead(l, ev.ID)
			l.heads[ev.ID] = struct{}{}
			hc.add(ev.ID)
		} else {
			e.hasChild = true
		}
		if h, ok := l.latestOf(dev); !ok || ev.Seq > h.seq || (ev.Seq == h.seq && ev.ID < h.id) {
			l.j.noteLatest(l, dev)
			l.latest[dev] = devHead{ev.Seq, ev.ID}
		}
	}
	key := devSeq{dev, ev.Seq}
	first, dup := l.chainOf(key)
	if !dup {
		if l.j != nil {
			l.j.chains = append(l.j.chains, key)
		}
		l.chains[key] = ev.ID
		return Equivocation{}, false
	}
	a, b := first, ev.ID
	if b < a {
		a, b = b, a
	}
	return Equivocation{Device: ev.Device, Seq: ev.Seq, A: a, B: b}, true
}

// evict drops the oldest orphans until the bounds hold. It returns how many
// were dropped and touched extended with their ids (other orphans may wait
// for them, which makes them missing).
func (l *Log) evict(touched []EventID) (int, []EventID) {
	n0 := len(touched)
	touched = l.dropOldest(func(fifoItem) bool {
		return len(l.orphans) > l.cfg.MaxOrphans || (l.orphanBytes > l.cfg.MaxOrphanBytes && len(l.orphans) > 0)
	}, touched)
	dropped := len(touched) - n0
	// Compact the queue of arrivals when most of it is stale.
	if len(l.fifo) > 1024 && len(l.fifo) > 4*len(l.orphans) {
		live := make([]fifoItem, 0, len(l.orphans))
		for _, f := range l.fifo {
			if o, ok := l.orphans[f.id]; ok && o.arrival == f.arrival {
				live = append(live, f)
			}
		}
		l.fifo = live
	}
	return dropped, touched
}

func (l *Log) dropOrphan(id EventID, o *orphan) {
	l.j.noteOrphan(l, id)
	delete(l.orphans, id)
	l.orphanBytes -= o.ev.Size()
	for _, ref := range refs(o.ev) {
		l.j.noteWaiters(l, ref)
		ws := l.waiters[ref]
		if i := slices.Index(ws, id); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(l.waiters, ref)
		} else {
			l.waiters[ref] = ws
		}
	}
}

// MissingCount returns how many distinct ids are referenced (by held events
// or waiting orphans) but neither held, waiting nor known to be of another
// room. 0 means there is no gap below the heads or the orphans.
func (l *Log) MissingCount() int {
	n := 0
	l.eachMissing(func(EventID) { n++ })
	return n
}

// MissingIDs returns up to max missing ids (all when max <= 0), sorted.
// When there are more, those that held events refer to (restored from a
// store that lost them) come first, then orphans' references: an orphan
// is unverified input and its references may be forged, so a flood of
// orphans does not hide a gap below the held events.
func (l *Log) MissingIDs(max int) []EventID {
	var out, orphans []EventID
	l.eachMissing(func(id EventID) {
		if _, held := l.gaps[id]; held || max <= 0 {
			out = append(out, id)
		} else {
			orphans = append(orphans, id)
		}
	})
	if max > 0 {
		slices.Sort(out)
		out = out[:min(len(out), max)]
		slices.Sort(orphans)
		out = append(out, orphans[:min(len(orphans), max-len(out))]...)
	}
	slices.Sort(out)
	return out
}

func (l *Log) eachMissing(fn func(EventID)) {
	for id := range l.waiters {
		if _, waiting := l.orphans[id]; !waiting && !l.resolved(id) {
			fn(id)
		}
	}
	for id := range l.gaps {
		if _, w := l.waiters[id]; w {
			continue // counted above
		}
		if _, waiting := l.orphans[id]; !waiting {
			fn(id)
		}
	}
}

// LatestOf is the accepted event of device dev with the highest seq, if
// the log holds one (its signature and device certificate were checked,
// so it names the device's user).
func (l *Log) LatestOf(dev DeviceID) (EventID, bool) {
	i, ok := l.devOf(dev)
	if !ok {
		return "", false
	}
	h, ok := l.latestOf(i)
	return h.id, ok
}

// Prepare fills a local draft for device dev: Room, Seq and Self (next after
// the device's highest accepted seq), Prev (the heads plus self; when that is
// more than MaxPrev, self and the highest-depth heads, ties by id), Depth, and
// TS = max(ts, max ts of prev). Auth, Type, StateKey, Body and Epoch are
// kept. A create draft is returned with only TS set.
func (l *Log) Prepare(dev DeviceID, ts int64, d Draft) Draft {
	d.TS = ts
	if d.Type == TypeCreate {
		d.Room, d.Seq, d.Self, d.Prev, d.Depth = "", 0, "", nil, 0
		return d
	}
	d.Room = l.room
	d.Seq, d.Self = 0, ""
	if i, ok := l.devOf(dev); ok {
		if h, ok := l.latestOf(i); ok {
			d.Seq, d.Self = h.seq+1, h.id
		}
	}
	heads := l.Heads()
	if d.Self != "" {
		if _, ok := l.heads[d.Self]; ok {
			heads = slices.DeleteFunc(heads, func(id EventID) bool { return id == d.Self })
		}
	}
	room := MaxPrev
	if d.Self != "" {
		room--
	}
	if len(heads) > room {
		slices.SortFunc(heads, func(a, b EventID) int {
			eb, _ := l.entry(b)
			ea, _ := l.entry(a)
			if c := cmp.Compare(eb.depth, ea.depth); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		heads = heads[:room]
	}
	if d.Self != "" {
		heads = append(heads, d.Self)
	}
	slices.Sort(heads)
	d.Prev = heads
	d.Depth = 0
	for _, p := range heads {
		e, _ := l.entry(p)
		d.Depth = max(d.Depth, e.depth+1)
		d.TS = max(d.TS, e.ts)
	}
	return d
}

// index returns every held event's (depth, id), sorted. The slice is shared:
// callers must not modify it.
func (l *Log) index() []Item {
	if l.base != nil {
		return l.mergedIndex()
	}
	if l.sortedUpTo < len(l.sorted) {
		tail := l.sorted[l.sortedUpTo:]
		slices.SortFunc(tail, cmpItem)
		if l.sortedUpTo > 0 && cmpItem(l.sorted[l.sortedUpTo-1], tail[0]) > 0 {
			slices.SortFunc(l.sorted, cmpItem) // pdqsort: cheap on two sorted runs
		}
		l.sortedUpTo = len(l.sorted)
	}
	return l.sorted
}

// Order is the deterministic linearization: all accepted events sorted by
// (depth, id). The same event set gives the same order.
func (l *Log) Order() []EventID {
	out := make([]EventID, 0, l.accepted)
	for _, it := range l.index() {
		if e, _ := l.entry(it.ID); e.status == StatusAccepted {
			out = append(out, it.ID)
		}
	}
	return out
}

// Items returns (depth, id) of held events with depth >= minDepth, ascending:
// the input of range-based reconciliation.
func (l *Log) Items(minDepth uint64) []Item {
	idx := l.index()
	i, _ := slices.BinarySearchFunc(idx, Item{Depth: minDepth}, cmpItem)
	return slices.Clone(idx[i:])
}

// Since returns, in ascending (depth, id) order, every held event that is
// not in the causal closure (through prev and auth) of the held members of
// known; unknown ids in known are ignored, and Since(nil) is everything. It
// is what a node streams to a peer that is strictly behind.
func (l *Log) Since(known []EventID) []EventID {
	seen := make(map[EventID]struct{})
	var stack []EventID
	for _, id := range known {
		if _, ok := l.entry(id); ok {
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				stack = append(stack, id)
			}
		}
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		e, _ := l.entry(id)
		for _, list := range [2][]EventID{e.prev, e.auth} {
			for _, p := range list {
				if _, ok := seen[p]; ok {
					continue
				}
				if _, held := l.entry(p); held {
					seen[p] = struct{}{}
					stack = append(stack, p)
				}
			}
		}
	}
	idx := l.index()
	out := make([]EventID, 0, len(idx)-len(seen))
	for _, it := range idx {
		if _, ok := seen[it.ID]; !ok {
			out = append(out, it.ID)
		}
	}
	return out
}

// headChange accumulates the head change of one Add.
type headChange struct {
	added, removed map[EventID]struct{}
}

func (h *headChange) add(id EventID) {
	if h == nil {
		return
	}
	if h.added == nil {
		h.added = make(map[EventID]struct{})
	}
	h.added[id] = struct{}{}
}

func (h *headChange) remove(id EventID) {
	if h == nil {
		return
	}
	if _, ok := h.added[id]; ok {
		delete(h.added, id)
		return
	}
	if h.removed == nil {
		h.removed = make(map[EventID]struct{})
	}
	h.removed[id] = struct{}{}
}

func (h *headChange) sorted() (add, remove []EventID) {
	for id := range h.added {
		add = append(add, id)
	}
	for id := range h.removed {
		remove = append(remove, id)
	}
	slices.Sort(add)
	slices.Sort(remove)
	return add, remove
}

// readyQueue is a min-heap of events on (depth, id).
type readyQueue []*Event

func (q readyQueue) Len() int { return len(q) }
func (q readyQueue) Less(i, j int) bool {
	return cmpItem(Item{q[i].Depth, q[i].ID}, Item{q[j].Depth, q[j].ID}) < 0
}
func (q readyQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *readyQueue) Push(x any)   { *q = append(*q, x.(*Event)) }
func (q *readyQueue) Pop() any {
	old := *q
	ev := old[len(old)-1]
	*q = old[:len(old)-1]
	return ev
}
