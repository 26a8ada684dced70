package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// setFault sets the indexer's test hook.
func (x *indexer) setFault(f func(n int) error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.fault = f
}

func (x *indexer) indexedCount() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.indexed
}

// doneMarks counts the done marks in local.
func doneMarks(tb testing.TB, local LocalStore) int {
	tb.Helper()
	n := 0
	if err := local.ScanLocal(indexDone, func(_, _ []byte) bool { n++; return true }); err != nil {
		tb.Fatal(err)
	}
	return n
}

// sendWords sends n messages from engine 0, each delivered before the
// next, each with its own word ("<tag>007"), and returns their IDs.
func (b *bus) sendWords(room, tag string, from, n int) []string {
	b.t.Helper()
	var ids []string
	for i := from; i < from+n; i++ {
		ids = append(ids, b.sendReq(0, api.SendReq{Room: room, Text: fmt.Sprintf("%s%03d and more", tag, i)}))
		b.drain()
	}
	return ids
}

// findsEach checks that engine i finds every message of ids by its word,
// and has its postings.
func (b *bus) findsEach(i int, tag string, ids []string, from int) {
	b.t.Helper()
	for k, id := range ids {
		q := fmt.Sprintf("%s%03d", tag, from+k)
		if got, _ := b.searchIDs(i, api.SearchReq{Query: q}); !slices.Equal(got, []string{id}) {
			b.t.Fatalf("seed %d: engine %d: %q finds %v, want [%s]", b.seed, i, q, got, id)
		}
		if id, err := crdt.ParseID(id); err != nil || postingsOf(b.t, b.locals[i], id) == 0 {
			b.t.Fatalf("seed %d: engine %d: no postings of %s", b.seed, i, q)
		}
	}
}

// crashingIndexer makes a bus of two engines and a room, sends n messages
// tagged tag and waits for them to be indexed; then engine 1's indexer
// crashes at its next write batch.
func crashingIndexer(t *testing.T, seed uint64, enc bool, tag string, n int) (*bus, string, []string, *indexer) {
	t.Helper()
	b := newBus(t, seed, 2)
	room, _ := b.contentRoom(enc)
	ids := b.sendWords(room, tag, 0, n)
	b.indexed()
	x := b.engines[1].ixr
	x.setFault(func(int) error { return errors.New("crash") })
	return b, room, ids, x
}

func waitCrashed(t *testing.T, x *indexer) {
	t.Helper()
	select {
	case <-x.stopped:
	case <-time.After(time.Minute):
		t.Fatal("the indexer did not crash")
	}
}

// TestSearchIndexResumesAfterCrash: the indexer crashes (its write batch
// and what it still queued are lost, the index is left open) while it is
// behind; the engine meanwhile takes every message. At the next start it
// catches up from its done marks: it indexes exactly the messages it had
// not, none twice, and search finds every message.
func TestSearchIndexResumesAfterCrash(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			b, room, first, x := crashingIndexer(t, 21, enc, "resume", 20)
			before := doneMarks(t, b.locals[1])
			rest := b.sendWords(room, "resume", 20, 30)
			waitCrashed(t, x)
			b.stop(1)
			<-b.engines[1].stopped
			if st, _ := b.locals[1].GetLocal(indexStateName); !bytes.Equal(st, []byte{indexFormat, indexOpen}) {
				t.Fatalf("index state after the crash: %q", st)
			}
			if n := doneMarks(t, b.locals[1]); n != before {
				t.Fatalf("%d done marks after the crash, %d before: the crash lost nothing", n, before)
			}
			b.start(1)
			b.indexed()
			if n := b.engines[1].ixr.indexedCount(); n != len(rest) {
				t.Fatalf("the catch-up indexed %d messages, want the %d missing", n, len(rest))
			}
			b.findsEach(1, "resume", append(first, rest...), 0)
		})
	}
}

// TestSearchIndexStallDoesNotBlock: with both indexers stalled and a queue
// of 4, the engines keep authoring and ingesting (and searches, which
// scan the projection while the index is behind, find everything); once
// the indexers go on, they catch up with what did not fit the queue: the
// events listed past it, read back by id, or, past 4 of those too, their
// rooms, read from the store from the first one's depth.
func TestSearchIndexStallDoesNotBlock(t *testing.T) {
	defer func(q, o int, w time.Duration) { indexQueueCap, indexOverflowCap, searchIndexWait = q, o, w }(indexQueueCap, indexOverflowCap, searchIndexWait)
	for _, c := range []struct {
		enc  bool
		over int
	}{{false, 1 << 20}, {true, 1 << 20}, {false, 4}, {true, 4}} {
		indexQueueCap, indexOverflowCap, searchIndexWait = 4, c.over, 10*time.Millisecond
		enc := c.enc
		t.Run(fmt.Sprintf("encrypted=%v,listed=%d", enc, c.over), func(t *testing.T) {
			b := newBus(t, 22, 2)
			room, _ := b.contentRoom(enc)
			b.indexed()
			release := make(chan struct{})
			for _, e := range b.engines {
				e.ixr.setFault(func(int) error { <-release; return nil })
			}
			defer func() {
				select {
				case <-release:
				default:
					close(release)
				}
			}()
			marks := doneMarks(t, b.locals[1])
			sent := make(chan []string, 1)
			go func() { sent <- b.sendWords(room, "stall", 0, 40) }()
			var ids []string
			select {
			case ids = <-sent:
			case <-time.After(2 * time.Minute):
				t.Fatal("a stalled indexer blocks the engine")
			}
			for i := range 2 {
				if n := doneMarks(t, b.locals[i]); i == 1 && n != marks {
					t.Fatalf("engine %d: %d done marks while stalled, was %d", i, n, marks)
				}
			}
			if got, _ := b.searchIDs(1, api.SearchReq{Query: "stall039"}); !slices.Equal(got, ids[39:]) {
				t.Fatalf("while stalled: %v, want %v", got, ids[39:])
			}
			close(release)
			b.indexed()
			for i := range 2 {
				b.findsEach(i, "stall", ids, 0)
			}
		})
	}
}

// FuzzSearchIndexTombstone: a tombstone's value (read back from the
// local store) of any bytes deletes only the event's own postings, its
// done mark and itself, and never panics.
func FuzzSearchIndexTombstone(f *testing.F) {
	f.Add([]byte{}, []byte("e1"))
	f.Add(bytes.Repeat([]byte{1}, indexHashLen), []byte("e1"))
	f.Add(bytes.Repeat([]byte{2}, indexHashLen*2+5), []byte(""))
	f.Fuzz(func(t *testing.T, hs, id []byte) {
		if string(id) == "keep" {
			t.Skip("the other event's ID")
		}
		local := NewMemLocal()
		ix := testIndex(t, local)
		ix.add("room", "keep", "zebrafish words")
		ix.add("room", crdt.EventID(id), "zebrafish")
		if err := ix.flush(); err != nil {
			t.Fatal(err)
		}
		own := func(k []byte) bool { // a key of event id's
			return bytes.Equal(k, indexDoneKey(crdt.EventID(id))) ||
				bytes.HasPrefix(k, indexPostings) && len(k) == len(indexPostings)+indexHashLen+len(id) && bytes.HasSuffix(k, id)
		}
		var keep [][]byte
		local.Each(func(k, _ []byte) {
			if !own(k) {
				keep = append(keep, bytes.Clone(k))
			}
		})
		if err := local.PutLocal(indexTombKey(crdt.EventID(id)), hs); err != nil {
			t.Fatal(err)
		}
		x := newIndexer(ix, crdt.NewMemStore(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := x.tombstones(); err != nil {
			t.Fatal(err)
		}
		if _, err := local.GetLocal(indexTombKey(crdt.EventID(id))); !errors.Is(err, crdt.ErrNotFound) {
			t.Fatalf("the tombstone stays: %v", err)
		}
		for _, k := range keep {
			if _, err := local.GetLocal(k); err != nil {
				t.Fatalf("%q deleted: %v", k, err)
			}
		}
	})
}

// TestSearchIndexTombstoneAfterCrash: a message is redacted while the
// indexer is down (crashed); its body is purged and its tombstone kept,
// and the next start deletes its postings before anything else.
func TestSearchIndexTombstoneAfterCrash(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			b, room, ids, x := crashingIndexer(t, 23, enc, "tomb", 2)
			b.ok2(b.engines[0].Redact(b.ctx, api.RedactReq{Room: room, Event: ids[0]}))
			b.drain()
			ids = append(ids, b.sendWords(room, "tomb", 2, 1)...) // the crash comes at the latest with this
			waitCrashed(t, x)
			id := mustEventID(t, ids[0])
			if _, err := b.locals[1].GetLocal(indexTombKey(id)); err != nil {
				t.Fatalf("no tombstone of the redacted message: %v", err)
			}
			if postingsOf(t, b.locals[1], id) == 0 {
				t.Fatal("no postings left to delete: the test tests nothing")
			}
			b.stop(1)
			<-b.engines[1].stopped
			b.start(1)
			b.indexed()
			if n := postingsOf(t, b.locals[1], id); n != 0 {
				t.Fatalf("%d postings of the redacted message after the restart", n)
			}
			if _, err := b.locals[1].GetLocal(indexTombKey(id)); !errors.Is(err, crdt.ErrNotFound) {
				t.Fatalf("the tombstone stays: %v", err)
			}
			b.findsEach(1, "tomb", ids[1:], 1)
		})
	}
}
