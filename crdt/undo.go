package crdt

import (
	"fmt"
	"slices"
)

// Undo takes back one Add, for when the caller could not commit its
// Ready.Batch: a Log must never count as held what the store did not get,
// or pull sync would never fetch those events again. See AddUndo.
type Undo struct {
	l         *Log
	j         *journal
	gen, prev uint64 // the log's generation after the Add, and before it
}

// AddUndo is Add, and returns with the Ready an Undo that restores the log
// to exactly its state before the call (held events, heads, the device
// index, the orphan buffer and its bounds). Revert must be called before
// any other call that changes the log (Add, AddUndo, Restore), or not at
// all; a read-only call in between is fine. Undos chain: after reverting
// the newest of several AddUndos, the one before it may be reverted (in
// the reverse order of the calls).
func (l *Log) AddUndo(evs ...*Event) (Ready, *Undo) {
	prev := l.gen
	j := &journal{
		maxDepth: l.maxDepth, accepted: l.accepted, orphanBytes: l.orphanBytes, arrivals: l.arrivals,
		nSorted: len(l.sorted), nDevices: len(l.devices), fifo: l.fifo,
	}
	l.j = j
	r := l.Add(evs...)
	l.j = nil
	return r, &Undo{l: l, j: j, gen: l.gen, prev: prev}
}

// Revert restores the log to its state before the AddUndo that returned u,
// and its generation with it, so the Undo of the AddUndo before becomes
// current again. It panics when the log changed since (a programming
// error); a second Revert does nothing.
func (u *Undo) Revert() {
	if u.j == nil {
		return
	}
	l, j := u.l, u.j
	if l.gen != u.gen {
		panic("crdt: Undo.Revert after the log changed again")
	}
	u.j = nil
	l.gen = u.prev
	for id, was := range j.orphans {
		if was.o == nil {
			delete(l.orphans, id)
			continue
		}
		was.o.waiting = was.waiting
		l.orphans[id] = was.o
	}
	for id, was := range j.waiters {
		if was == nil {
			delete(l.waiters, id)
		} else {
			l.waiters[id] = was
		}
	}
	for _, id := range j.foreign {
		delete(l.foreign, id)
	}
	for id, was := range j.heads {
		if was {
			l.heads[id] = struct{}{}
		} else {
			delete(l.heads, id)
		}
	}
	for dev, was := range j.latest {
		if was.ok {
			l.latest[dev] = was.h
		} else {
			delete(l.latest, dev)
		}
	}
	for id, was := range j.gaps {
		if was.ok {
			l.gaps[id] = was.prev
		} else {
			delete(l.gaps, id)
		}
	}
	for _, k := range j.chains {
		delete(l.chains, k)
	}
	for _, e := range j.hasChild {
		e.hasChild = false
	}
	added := make(map[EventID]struct{}, len(j.entries))
	for _, id := range j.entries {
		delete(l.entries, id)
		added[id] = struct{}{}
	}
	if l.sortedUpTo <= j.nSorted {
		l.sorted = l.sorted[:j.nSorted]
	} else { // index() ran in between: the new items may be anywhere
		l.sorted = slices.DeleteFunc(l.sorted, func(it Item) bool { _, ok := added[it.ID]; return ok })
		l.sortedUpTo = len(l.sorted)
	}
	for _, d := range l.devices[j.nDevices:] {
		delete(l.devIndex, d)
	}
	l.devices = l.devices[:j.nDevices]
	l.maxDepth, l.accepted, l.orphanBytes, l.arrivals = j.maxDepth, j.accepted, j.orphanBytes, j.arrivals
	l.fifo = j.fifo
	l.mustCheck()
}

// journal records, during one AddUndo, the first prior value of everything
// Add changes. Its note methods do nothing on a nil journal (plain Add).
type journal struct {
	maxDepth, arrivals    uint64
	accepted, orphanBytes int
	nSorted, nDevices     int
	fifo                  []fifoItem // Add only appends and evict only reslices or copies

	entries  []EventID
	hasChild []*entry
	chains   []devSeq
	foreign  []EventID
	heads    map[EventID]bool
	latest   map[uint32]latestWas
	gaps     map[EventID]gapWas
	orphans  map[EventID]orphanWas
	waiters  map[EventID][]EventID // nil: absent before
}

type latestWas struct {
	h  devHead
	ok bool
}

type gapWas struct {
	prev, ok bool
}

type orphanWas struct {
	o       *orphan // nil: absent before
	waiting int
}

func (j *journal) noteHold(l *Log, id EventID) {
	if j != nil {
		j.entries = append(j.entries, id)
	}
}

// noteFirst records in *m, the first time key is touched, what was there
// before (was).
func noteFirst[K comparable, V any](m *map[K]V, key K, was func() V) {
	if *m == nil {
		*m = map[K]V{}
	}
	if _, seen := (*m)[key]; !seen {
		(*m)[key] = was()
	}
}

func (j *journal) noteHead(l *Log, id EventID) {
	if j != nil {
		noteFirst(&j.heads, id, func() bool { _, ok := l.heads[id]; return ok })
	}
}

func (j *journal) noteLatest(l *Log, dev uint32) {
	if j != nil {
		noteFirst(&j.latest, dev, func() latestWas { h, ok := l.latestOf(dev); return latestWas{h, ok} })
	}
}

func (j *journal) noteGap(l *Log, id EventID) {
	if j != nil {
		noteFirst(&j.gaps, id, func() gapWas { prev, ok := l.gaps[id]; return gapWas{prev, ok} })
	}
}

func (j *journal) noteOrphan(l *Log, id EventID) {
	if j != nil {
		noteFirst(&j.orphans, id, func() orphanWas {
			if o, ok := l.orphans[id]; ok {
				return orphanWas{o, o.waiting}
			}
			return orphanWas{}
		})
	}
}

func (j *journal) noteWaiters(l *Log, id EventID) {
	if j != nil {
		noteFirst(&j.waiters, id, func() []EventID {
			if ws, ok := l.waiters[id]; ok {
				return append(make([]EventID, 0, len(ws)), ws...) // dropOrphan edits in place
			}
			return nil
		})
	}
}

const checkedUpTo = 4096

// Waiting reports whether id is an orphan waiting in the buffer.
func (l *Log) Waiting(id EventID) bool { _, ok := l.orphans[id]; return ok }

// Check verifies the log's bookkeeping: no event is both held and waiting,
// the orphan counters match the buffer, every waiting reference is
// unresolved, the heads are exactly the accepted events no accepted event
// has as a parent, and the index holds every event once. It is O(events);
// builds with the `invariants` tag run it after every change.
func (l *Log) Check() error {
	bytes := 0
	for id, o := range l.orphans {
		if l.Has(id) {
			return fmt.Errorf("crdt: invariant: %s is both held and waiting", id)
		}
		bytes += o.ev.Size()
		n := 0
		for _, r := range refs(o.ev) {
			if !l.resolved(r) {
				n++
			}
		}
		if n != o.waiting {
			return fmt.Errorf("crdt: invariant: orphan %s waits for %d references, counted %d", id, n, o.waiting)
		}
	}
	if bytes != l.orphanBytes {
		return fmt.Errorf("crdt: invariant: orphans hold %d bytes, counted %d", bytes, l.orphanBytes)
	}
	for ref, ws := range l.waiters {
		if l.resolved(ref) {
			return fmt.Errorf("crdt: invariant: %d orphans wait for %s, which is resolved", len(ws), ref)
		}
	}
	child := map[EventID]bool{}
	accepted := 0
	l.eachEntry(func(_ EventID, e *entry) {
		if e.status != StatusAccepted {
			return
		}
		accepted++
		for _, p := range e.prev {
			child[p] = true
		}
	})
	if accepted != l.accepted {
		return fmt.Errorf("crdt: invariant: %d accepted events, counted %d", accepted, l.accepted)
	}
	var err error
	l.eachEntry(func(id EventID, e *entry) {
		isHead := e.status == StatusAccepted && !child[id] && !e.hasChild
		if _, ok := l.heads[id]; ok != isHead && err == nil {
			err = fmt.Errorf("crdt: invariant: %s is a head: %v, should be: %v", id, ok, isHead)
		}
	})
	if err != nil {
		return err
	}
	if n := len(l.sorted) + l.baseLen(); n != l.Len() {
		return fmt.Errorf("crdt: invariant: index has %d items for %d events", n, l.Len())
	}
	return nil
}

// mustCheck panics when Check fails, in builds with the `invariants` tag.
// Logs beyond checkedUpTo events and orphans are not checked, so that the
// scale tests stay linear.
func (l *Log) mustCheck() {
	if Invariants && l.Len()+len(l.orphans) <= checkedUpTo {
		if err := l.Check(); err != nil {
			panic(err)
		}
	}
}
