package node

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// A watcher that falls behind is never dropped: an item that finds its
// channel full is left out, and a resync item that the watcher reads after
// the item was left out stands for it. A consumer reads at random moments
// (seeded); every item is either read or followed by a resync read later,
// no item is read twice, and the watcher takes items again once it has
// read.
func TestWatcherResync(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		w := &watcher{ch: make(chan api.WatchItem, 8)}
		const n = 2000
		leftOut := map[int]int{} // item -> clock when left out
		readAt := map[int]bool{}
		var resyncs []int // clocks at which a resync was read
		clock := 0
		read := func() {
			select {
			case it := <-w.ch:
				clock++
				if it.Kind == api.WatchResync {
					resyncs = append(resyncs, clock)
					return
				}
				var i int
				fmt.Sscan(it.Room, &i)
				if readAt[i] {
					t.Fatalf("seed %d: item %d read twice", seed, i)
				}
				readAt[i] = true
			default:
			}
		}
		for i := range n {
			clock++
			before := w.sent
			took := w.takes()
			w.put(api.WatchItem{Kind: "event", Room: fmt.Sprint(i)})
			sentItem := w.sent > before && w.resyncAt != w.sent
			if !sentItem {
				leftOut[i] = clock
			}
			if !took && w.sent != before {
				t.Fatalf("seed %d: item %d: takes said no, but put sent", seed, i)
			}
			for range rng.IntN(3) { // reads about as fast as items come, in bursts
				read()
			}
			if rng.IntN(50) == 0 { // now and then a long pause
				for range 20 {
					clock++
					w.put(api.WatchItem{Kind: "event", Room: fmt.Sprint(n + clock)}) // tagged out of range: only filling
				}
			}
		}
		for len(w.ch) > 0 {
			read()
		}
		if len(leftOut) == 0 {
			t.Fatalf("seed %d: nothing was left out; the test does not test", seed)
		}
		for i, at := range leftOut {
			covered := false
			for _, r := range resyncs {
				if r > at {
					covered = true
					break
				}
			}
			if !covered {
				t.Fatalf("seed %d: item %d was left out at %d and no resync was read after it (resyncs %v)", seed, i, at, resyncs)
			}
		}
		if !w.takes() {
			t.Fatalf("seed %d: a drained watcher takes no item", seed)
		}
	}
}

// takes: a watcher whose channel is full and holds a resync it has not
// read takes nothing (the engine makes no item for it); once it reads, it
// takes items again.
func TestWatcherTakes(t *testing.T) {
	w := &watcher{ch: make(chan api.WatchItem, 4)}
	for i := range 3 {
		if !w.takes() {
			t.Fatalf("item %d: an empty slot, and takes says no", i)
		}
		w.put(api.WatchItem{Kind: "event"})
	}
	if !w.takes() { // the kept slot: the next item becomes a resync
		t.Fatal("full up to the kept slot with no resync: takes must say yes (a resync goes in)")
	}
	w.put(api.WatchItem{Kind: "event"})
	if w.takes() {
		t.Fatal("full, an unread resync in it: takes must say no")
	}
	for range 3 {
		<-w.ch
	}
	if !w.takes() {
		t.Fatal("three read: takes must say yes")
	}
	if it := <-w.ch; it.Kind != api.WatchResync {
		t.Fatalf("the fourth item is %q, want resync", it.Kind)
	}
}

// A big import (more messages than a watcher's buffer in one batch) does
// not drop a watcher that keeps reading: it gets resync items for the
// room instead of one item per message, and the stream goes on (a message
// sent after the import arrives as an event). Before, the watcher's
// channel was closed at the first batch.
func TestImportKeepsWatcher(t *testing.T) {
	src := t.TempDir()
	const n = 4500 // three batches of importChatBatch
	writeTelegramExport(t, src, n)
	nd, ctx := serveTestNode(t)
	ch, stop, err := nd.engine.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	type seen struct {
		resyncs map[string]int
		events  map[string]bool // texts of event items
		closed  bool
	}
	got := make(chan seen, 1)
	marker := "after the import"
	go func() {
		s := seen{resyncs: map[string]int{}, events: map[string]bool{}}
		defer func() { got <- s }()
		for it := range ch {
			switch {
			case it.Kind == api.WatchResync:
				s.resyncs[it.Room]++
			case it.Event != nil && it.Event.Body == marker:
				s.events[marker] = true
				return
			}
		}
		s.closed = true
	}()
	r, err := nd.importChat(ctx, api.ImportChatReq{Format: "telegram", Path: src})
	if err != nil {
		t.Fatal(err)
	}
	if r.New != n {
		t.Fatalf("imported %d new of %d", r.New, n)
	}
	if _, err := nd.engine.Send(ctx, api.SendReq{Room: r.Room, Text: marker}); err != nil {
		t.Fatal(err)
	}
	var s seen
	select {
	case s = <-got:
	case <-time.After(120 * time.Second):
		t.Fatal("the watcher did not see the message sent after the import in 120 s")
	}
	if s.closed {
		t.Fatalf("the watcher was dropped during the import (resyncs %v)", s.resyncs)
	}
	if s.resyncs[r.Room] == 0 {
		t.Fatalf("no resync item for the imported room %s (resyncs %v)", r.Room, s.resyncs)
	}
	if !s.events[marker] {
		t.Fatal("the message sent after the import was not streamed")
	}
}
