package crdt

import (
	"errors"
	"maps"
	"slices"
)

// A frozen base shared by many logs. A simulation runs thousands of
// replicas of one room in one process, and with a preloaded membership
// every replica starts from the same prefix (the create event and every
// member's join): an index entry per (replica, event) is most of its
// memory. Freeze makes a log immutable; Overlay returns a new log that reads
// through to it and keeps only what it adds itself (copy-on-write: a base
// entry it changes is copied first). An overlay computes exactly what a log
// that restored the base's events itself computes (a property test compares
// both). A daemon holds one log per room and never uses either: its log has
// no base and takes the same paths as before (one nil check per lookup).

var errBaseOrphans = errors.New("crdt: freeze: the log has orphans waiting")

// Freeze makes l immutable, so that logs made by Overlay may share it: from
// then on Add and Restore panic, and nothing else changes it (its index is
// sorted here, once). A log with orphans waiting cannot be frozen. A frozen
// log is safe for concurrent reads.
func (l *Log) Freeze() error {
	if l.frozen {
		return nil
	}
	if len(l.orphans) > 0 || len(l.foreign) > 0 || len(l.waiters) > 0 {
		return errBaseOrphans
	}
	l.index()
	l.frozen = true
	return nil
}

// Overlay returns a log of the same room over the frozen base l: it holds
// what l holds, and what is added to it stays its own. It panics when l is
// not frozen (a programming error). An overlay may itself be frozen and
// overlaid again only after it was flattened; Overlay of an overlay is not
// supported and panics.
func (l *Log) Overlay() *Log {
	if !l.frozen || l.base != nil {
		panic("crdt: Overlay of a log that is not a frozen base")
	}
	o := NewLog(l.room, l.cfg)
	o.base = l
	o.mod = map[EventID]*entry{}
	o.heads = maps.Clone(l.heads)
	o.gaps = maps.Clone(l.gaps)
	o.maxDepth, o.accepted = l.maxDepth, l.accepted
	return o
}

func (l *Log) mustNotBeFrozen() {
	if l.frozen {
		panic("crdt: change of a frozen log")
	}
}

// entry returns the index entry of a held event: this log's own, else the
// copy of a base entry it changed, else the base's.
func (l *Log) entry(id EventID) (*entry, bool) {
	if e, ok := l.entries[id]; ok || l.base == nil {
		return e, ok
	}
	if e, ok := l.mod[id]; ok {
		return e, true
	}
	e, ok := l.base.entries[id]
	return e, ok
}

// entryToChange is entry, with a base entry copied into mod first.
func (l *Log) entryToChange(id EventID) (*entry, bool) {
	e, ok := l.entry(id)
	if !ok || l.base == nil || l.base.entries[id] != e {
		return e, ok
	}
	c := *e
	l.mod[id] = &c
	return &c, true
}

func (l *Log) baseLen() int {
	if l.base == nil {
		return 0
	}
	return len(l.base.entries)
}

func (l *Log) baseDevices() int {
	if l.base == nil {
		return 0
	}
	return len(l.base.devices)
}

func (l *Log) devOf(d DeviceID) (uint32, bool) {
	if i, ok := l.devIndex[d]; ok || l.base == nil {
		return i, ok
	}
	i, ok := l.base.devIndex[d]
	return i, ok
}

func (l *Log) device(i uint32) DeviceID {
	n := l.baseDevices()
	if int(i) < n {
		return l.base.devices[i]
	}
	return l.devices[int(i)-n]
}

func (l *Log) latestOf(dev uint32) (devHead, bool) {
	if h, ok := l.latest[dev]; ok || l.base == nil {
		return h, ok
	}
	h, ok := l.base.latest[dev]
	return h, ok
}

func (l *Log) chainOf(k devSeq) (EventID, bool) {
	if id, ok := l.chains[k]; ok || l.base == nil {
		return id, ok
	}
	id, ok := l.base.chains[k]
	return id, ok
}

// eachEntry calls fn with every held event's entry (a changed base entry's
// copy instead of the base's).
func (l *Log) eachEntry(fn func(EventID, *entry)) {
	for id, e := range l.entries {
		fn(id, e)
	}
	if l.base == nil {
		return
	}
	for id, e := range l.base.entries {
		if c, ok := l.mod[id]; ok {
			e = c
		}
		fn(id, e)
	}
}

// mergedIndex returns the base's index and this log's own items, merged in
// order, in a new slice (an overlay keeps no merged copy: that would be an
// item per base event in each overlay).
func (l *Log) mergedIndex() []Item {
	own := l.sorted
	if l.sortedUpTo < len(own) {
		slices.SortFunc(own, cmpItem)
		l.sortedUpTo = len(own)
	}
	return mergeItems(l.base.sorted, own)
}

// mergeItems merges two sorted runs of items into a new slice.
func mergeItems(a, b []Item) []Item {
	out := make([]Item, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if cmpItem(a[i], b[j]) <= 0 {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

var errFrozen = errors.New("crdt: store frozen")

// Freeze makes m's events and rooms immutable (Commit and PurgeBody fail
// from then on), so that stores made by NewMemStoreOver may share them.
// Node-local values are not shared and may still change.
func (m *MemStore) Freeze() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.rooms {
		if r.sorted < len(r.index) {
			slices.SortFunc(r.index, cmpItem)
			r.sorted = len(r.index)
		}
	}
	m.frozen = true
}

// NewMemStoreOver returns a MemStore that holds what the frozen store base
// holds (its events, rooms and heads, not its node-local values) and keeps
// what is committed to it, and the bodies it purges, as its own: base is
// never changed, and other stores over it see none of it. It panics when
// base is not frozen.
func NewMemStoreOver(base *MemStore) *MemStore {
	base.mu.RLock()
	defer base.mu.RUnlock()
	if !base.frozen || base.base != nil {
		panic("crdt: NewMemStoreOver of a store that is not a frozen base")
	}
	m := NewMemStore()
	m.base = base
	for id, r := range base.rooms {
		m.rooms[id] = &memRoom{heads: maps.Clone(r.heads), base: r}
	}
	return m
}

// event returns a held event: m's own, else its base's. m.mu is held.
func (m *MemStore) event(id EventID) (Stored, bool) {
	if s, ok := m.events[id]; ok || m.base == nil {
		return s, ok
	}
	s, ok := m.base.events[id] // frozen: read without its lock
	return s, ok
}
