package node

// The background indexer (docs/design.md §2, "Search index"): it keeps
// the stored search index (searchindex.go) off the engine's steps.
//
// The engine core lists what to index as it goes (indexMessage: the
// event and the readable body it already holds; no decode, no MAC, no
// write), and the driver hands the step's list over after the step's
// writes, without blocking (hand). One goroutine, ServeIndex, owns the
// writing index: it tokenizes, computes the blind keys and writes the
// postings of each event with the event's done mark (s/d/<id>) in one
// write batch.
//
// Nothing handed over is lost:
//   - when the queue is full, an event is not queued: its id is listed
//     instead (indexRef, a few dozen bytes where a queued event keeps
//     the whole event), and the indexer reads those events back from the
//     store by id, in batches, after the queue; past indexOverflowCap
//     listed ids, the event's room is marked to be caught up from the
//     event's depth, and the indexer reads the room from the store from
//     there, indexing the readable messages that have no done mark;
//   - after a crash (s/state not closed cleanly) the indexer catches up
//     every room the same way: only what lacks a done mark is indexed;
//   - a redaction writes a tombstone (s/r/<id>: its postings' hashes)
//     before the body is purged; the indexer deletes the postings, the
//     mark and the tombstone in the order it was handed, so before it
//     indexes anything handed after the purge, and at its next start
//     after a crash.
//
// Searches wait for the indexer to have caught up with what was handed
// over before the query (waitIndexed, with a deadline), and scan the
// room's projection instead when it has not.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// indexQueueCap bounds the events queued for the indexer; past it the
// engine lists their ids instead (a variable for tests).
var indexQueueCap = 1 << 16

// indexOverflowCap bounds the ids listed past the queue; past it the
// engine marks the room for a catch-up from the store (a variable for
// tests). A catch-up reads the whole room from the event's depth on,
// events indexed from the queue since included, and looks up each one's
// done mark; the listed ids are read back and nothing else (a fresh
// member catching up a room of 100,000 messages overflowed the queue and
// paid a scan of the rest of the room).
var indexOverflowCap = 1 << 20

// indexRef is an event listed past the queue, to read back from the store.
type indexRef struct {
	room crdt.RoomID
	id   crdt.EventID
	enc  bool
}

// searchIndexWait is how long a search waits for the indexer to catch up
// before it scans the rooms' projections instead (a variable for tests).
var searchIndexWait = 5 * time.Second

// indexItem is one event for the indexer: an accepted message this node
// can read, with its readable body, or a redacted event whose tombstone
// to apply.
type indexItem struct {
	room    crdt.RoomID
	ev      *crdt.Event // nil for a tombstone
	body    []byte      // the readable body (plaintext in an encrypted room)
	id      crdt.EventID
	depth   uint64 // where a catch-up of the room starts if the queue is full
	text    string // the message's text, when hasText (an import made it: no decode)
	hasText bool
	enc     bool // the room is encrypted (its messages' bodies are sealed)
	remove  bool // apply the event's tombstone
}

// indexCatch is a room to read from the store from depth from on.
type indexCatch struct {
	from uint64
	enc  bool
}

// indexer is the mailbox between the engine and the index's goroutine.
type indexer struct {
	ix      *searchIndex // the writing index; owned by ServeIndex
	store   crdt.Store
	log     *slog.Logger
	rebuild bool // clear the index before the first catch-up (ServeIndex)

	mu       sync.Mutex
	items    []indexItem
	over     []indexRef // events listed past the queue
	catch    map[crdt.RoomID]indexCatch
	handed   uint64            // hand-overs so far
	done     uint64            // hand-overs fully indexed
	progress chan struct{}     // closed (and replaced) when done advances
	running  bool              // ServeIndex runs
	closed   bool              // ServeIndex stopped
	clean    bool              // ServeIndex stopped and marked the index closed cleanly
	wake     chan struct{}     // cap 1: work was handed over
	stopped  chan struct{}     // closed when ServeIndex returns
	fault    func(n int) error // test hook: called before each write batch with the events it indexes; an error stops the indexer as a crash would (the batch is lost)
	indexed  int               // events indexed (for tests: a catch-up indexes only what is missing)
}

func newIndexer(ix *searchIndex, store crdt.Store, log *slog.Logger) *indexer {
	return &indexer{ix: ix, store: store, log: log, progress: make(chan struct{}), wake: make(chan struct{}, 1), stopped: make(chan struct{})}
}

// hand gives the indexer a step's items and rooms to catch up, in order,
// without blocking. Events past the queue's bound become catch-ups of
// their rooms; tombstones are always queued. Once ServeIndex stopped,
// nothing is queued and the index is marked open again (not closed
// cleanly), so the next start catches up.
func (x *indexer) hand(items []indexItem, catch map[crdt.RoomID]indexCatch) {
	if len(items) == 0 && len(catch) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		if x.clean {
			if err := x.ix.local.PutLocal(indexStateName, []byte{indexFormat, indexOpen}); err != nil {
				x.log.Warn("search index state", "err", err)
			}
			x.clean = false
		}
		return
	}
	for _, it := range items {
		switch {
		case it.remove || len(x.items) < indexQueueCap:
			x.items = append(x.items, it)
		case len(x.over) < indexOverflowCap:
			x.over = append(x.over, indexRef{it.room, it.id, it.enc})
		default:
			x.catchFrom(it.room, indexCatch{it.depth, it.enc})
		}
	}
	for room, c := range catch {
		x.catchFrom(room, c)
	}
	x.handed++
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

func (x *indexer) catchFrom(room crdt.RoomID, c indexCatch) {
	if x.catch == nil {
		x.catch = map[crdt.RoomID]indexCatch{}
	}
	if old, ok := x.catch[room]; ok && old.from <= c.from {
		return
	}
	x.catch[room] = c
}

// wait waits until the indexer has indexed what was handed over before
// the call, or until d has passed or ctx is done, and reports whether it
// has. It reports false at once when the indexer does not run.
func (x *indexer) wait(ctx context.Context, d time.Duration) bool {
	x.mu.Lock()
	target := x.handed
	x.mu.Unlock()
	var timeout <-chan time.Time
	for {
		x.mu.Lock()
		done, running, progress := x.done, x.running, x.progress
		x.mu.Unlock()
		if done >= target {
			return true
		}
		if !running {
			return false
		}
		if timeout == nil {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-progress:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// ServeIndex runs the background indexer until ctx is done. On return it
// marks the index closed cleanly when everything handed over is indexed.
func (e *Engine) ServeIndex(ctx context.Context) error {
	x := e.ixr
	if x == nil { // no index: searches scan
		<-ctx.Done()
		return nil
	}
	defer close(x.stopped)
	x.mu.Lock()
	x.running = true
	x.mu.Unlock()
	if x.rebuild {
		if err := x.ix.clearPostings(); err != nil {
			x.log.Warn("rebuild search index", "err", err)
		}
	} else if err := x.tombstones(); err != nil {
		x.log.Warn("search index tombstones", "err", err)
	}
	for {
		x.mu.Lock()
		items, over, catch, upto := x.items, x.over, x.catch, x.handed
		x.items, x.over, x.catch = nil, nil, nil
		x.mu.Unlock()
		if len(items)+len(over)+len(catch) > 0 {
			if err := x.work(ctx, items, over, catch); err != nil {
				if ctx.Err() == nil {
					x.log.Warn("search index: caught up at the next start", "err", err)
				}
				x.stop(false)
				return nil
			}
		}
		x.mu.Lock()
		if x.done < upto {
			x.done = upto
			close(x.progress)
			x.progress = make(chan struct{})
		}
		idle := len(x.items)+len(x.over)+len(x.catch) == 0
		x.mu.Unlock()
		if !idle {
			continue
		}
		select {
		case <-ctx.Done():
			x.stop(true)
			return nil
		case <-x.wake:
		}
	}
}

// stop marks the indexer stopped and, when everything handed over is
// indexed (ok, and nothing queued), the index closed cleanly.
func (x *indexer) stop(ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.running, x.closed = false, true
	close(x.progress)
	x.progress = make(chan struct{})
	if !ok || len(x.items)+len(x.over)+len(x.catch) > 0 || x.ix.broken {
		return
	}
	if err := x.ix.close(); err != nil {
		x.log.Warn("close search index: caught up at the next start", "err", err)
		return
	}
	x.clean = x.ix.sealed == nil
}

// work indexes items in order, then the events listed past the queue,
// then catches the rooms up.
func (x *indexer) work(ctx context.Context, items []indexItem, over []indexRef, catch map[crdt.RoomID]indexCatch) error {
	n := 0
	for _, it := range items {
		if it.remove {
			if err := x.bury(it.id); err != nil {
				return err
			}
		} else if it.hasText {
			x.ix.add(it.room, it.ev.ID, it.text)
			n++
		} else if text, ok := messageText(it.room, it.ev, it.body); ok {
			x.ix.add(it.room, it.ev.ID, text)
			n++
		}
		if x.ix.full() {
			if err := x.flush(n); err != nil {
				return err
			}
			n = 0
		}
	}
	if err := x.flush(n); err != nil {
		return err
	}
	for len(over) > 0 {
		k := min(len(over), indexReadBatch)
		if err := x.readBack(ctx, over[:k]); err != nil {
			return err
		}
		over = over[k:]
	}
	for room, c := range catch {
		if err := x.catchUp(ctx, room, c); err != nil {
			return err
		}
	}
	return nil
}

// flush writes the pending postings, marks and deletions in one batch;
// n is the number of events they index.
func (x *indexer) flush(n int) error {
	x.mu.Lock()
	fault := x.fault
	x.mu.Unlock()
	if fault != nil {
		if err := fault(n); err != nil {
			return err
		}
	}
	if err := x.ix.flush(); err != nil {
		return err
	}
	x.mu.Lock()
	x.indexed += n
	x.mu.Unlock()
	return nil
}

// bury applies event id's tombstone, if it is still there.
func (x *indexer) bury(id crdt.EventID) error {
	hs, err := x.ix.local.GetLocal(indexTombKey(id))
	if errors.Is(err, crdt.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read search index tombstone: %w", err)
	}
	x.ix.bury(id, hs)
	return nil
}

// tombstones applies the tombstones a crash left (before anything else is
// indexed: the postings they list may have been written after them).
func (x *indexer) tombstones() error {
	var ids []crdt.EventID
	err := x.ix.local.ScanLocal(indexTombs, func(k, _ []byte) bool {
		ids = append(ids, crdt.EventID(bytes.Clone(k[len(indexTombs):])))
		return true
	})
	if err != nil {
		return fmt.Errorf("scan search index tombstones: %w", err)
	}
	for _, id := range ids {
		if err := x.bury(id); err != nil {
			return err
		}
	}
	return x.flush(0)
}

// indexReadBatch is how many listed events readBack reads in one store
// transaction.
const indexReadBatch = 256

// readBack indexes events listed past the queue, read back from the
// store: those still held, accepted and readable (a redacted one has lost
// its body, and a sealed one's plaintext is read from the local store,
// where the driver wrote it before it handed the event over), as the
// queue would have. They were not queued, so they have no done mark to
// look up.
func (x *indexer) readBack(ctx context.Context, refs []indexRef) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ids := make([]crdt.EventID, len(refs))
	enc := make(map[crdt.EventID]indexRef, len(refs))
	for i, r := range refs {
		ids[i] = r.id
		enc[r.id] = r
	}
	sts, err := crdt.GetMany(x.store, ids)
	if err != nil {
		return fmt.Errorf("read back listed events: %w", err)
	}
	n := 0
	for _, s := range sts {
		ev, r := s.Event, enc[s.Event.ID]
		if s.Status != crdt.StatusAccepted || ev.Type != rooms.TypeMessage || ev.Body == nil || ev.Room != r.room {
			continue
		}
		body := ev.Body
		if r.enc && rooms.Sealed(ev.Type) {
			pt, err := x.ix.local.GetLocal(plainKey(ev.ID))
			if err != nil {
				continue // purged since, or not readable: indexed when decrypted
			}
			body = pt
		}
		if text, ok := messageText(r.room, ev, body); ok {
			x.ix.add(r.room, ev.ID, text)
			n++
		}
		if x.ix.full() {
			if err := x.flush(n); err != nil {
				return err
			}
			n = 0
		}
	}
	return x.flush(n)
}

// catchUp indexes the readable messages of room from depth c.from on that
// have no done mark, reading them from the store: a sealed message's
// plaintext from the local store, where the driver wrote it before it
// handed the room over.
func (x *indexer) catchUp(ctx context.Context, room crdt.RoomID, c indexCatch) error {
	n := 0
	var ferr error
	err := x.store.Scan(room, c.from, func(s crdt.Stored) bool {
		if ferr = ctx.Err(); ferr != nil {
			return false
		}
		ev := s.Event
		if s.Status != crdt.StatusAccepted || ev.Type != rooms.TypeMessage || ev.Body == nil {
			return true
		}
		if _, err := x.ix.local.GetLocal(indexDoneKey(ev.ID)); err == nil {
			return true
		} else if !errors.Is(err, crdt.ErrNotFound) {
			ferr = fmt.Errorf("read search index mark: %w", err)
			return false
		}
		body := ev.Body
		if c.enc && rooms.Sealed(ev.Type) {
			pt, err := x.ix.local.GetLocal(plainKey(ev.ID))
			if err != nil {
				return true // not readable (yet): indexed when decrypted
			}
			body = pt
		}
		if text, ok := messageText(room, ev, body); ok {
			x.ix.add(room, ev.ID, text)
			n++
		}
		if x.ix.full() {
			ferr = x.flush(n)
			n = 0
		}
		return ferr == nil
	})
	if err = errors.Join(err, ferr); err != nil {
		return fmt.Errorf("catch up room %s: %w", room, err)
	}
	return x.flush(n)
}
