package crdt

// Orphans also expire by age (docs/protocol.md §1.4). The log reads no
// clock: its owner notes Arrivals at times of its choosing and later
// expires what had arrived by one of those marks.

// Arrivals returns the arrival counter: every orphan taken in later has a
// higher arrival number.
func (l *Log) Arrivals() uint64 { return l.arrivals }

// ExpireOrphans drops the orphans still waiting that arrived at or before
// mark (a value Arrivals returned), oldest first, and returns how many.
// Their references stay missing when other orphans wait on them, as after
// an eviction.
func (l *Log) ExpireOrphans(mark uint64) int {
	return len(l.dropOldest(func(f fifoItem) bool { return f.arrival <= mark }, nil))
}

// dropOldest drops the waiting orphans at the front of the arrival queue
// while more holds for the front item, and appends their ids to dropped.
func (l *Log) dropOldest(more func(fifoItem) bool, dropped []EventID) []EventID {
	for len(l.fifo) > 0 && more(l.fifo[0]) {
		f := l.fifo[0]
		l.fifo = l.fifo[1:]
		o, ok := l.orphans[f.id]
		if !ok || o.arrival != f.arrival {
			continue // released or dropped already
		}
		l.dropOrphan(f.id, o)
		dropped = append(dropped, f.id)
	}
	return dropped
}
