package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
)

// TestCreateRoomFailureLeaksNothing is the regression test of the leaked
// create event: a room create whose Nth commit fails (N > 1: the create
// event itself was committed) drops the room, and its step's Ready holds
// nothing of that room but the commits the store made: no track, no
// publish, no heads, no watch item, no timer. Before the fix the create
// event was published (and the room tracked) although the room was dropped.
func TestCreateRoomFailureLeaksNothing(t *testing.T) {
	// An encrypted room commits four batches when founded: create, device
	// announcement, first rotation, sealed name (a plaintext room one).
	enc := true
	for n := 2; n <= 4; n++ {
		master, _ := crdt.GenerateKey(rand.Reader)
		ident, _ := crdt.NewIdentity(master, rand.Reader)
		fs := faultstore.New(crdt.NewMemStore(), nil)
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		e, err := NewEngineWith(ident, fs, "", quiet, KeyOptions{Local: NewMemLocal(), Seed: uint64(n)})
		if err != nil {
			t.Fatal(err)
		}
		e.noTimers = true
		var rds []Ready
		e.onReady = func(rd *Ready) {
			c := *rd
			c.Commits, c.Track, c.Publish, c.Heads = append([]Committed(nil), rd.Commits...), append([]crdt.RoomID(nil), rd.Track...), append([]Published(nil), rd.Publish...), append([]HeadsOut(nil), rd.Heads...)
			c.Accepted, c.Watch, c.Timers = append([]AcceptedOut(nil), rd.Accepted...), append([]WatchOut(nil), rd.Watch...), append([]Timer(nil), rd.Timers...)
			rds = append(rds, c)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		if _, _, err := e.Watch(ctx, ""); err != nil {
			t.Fatal(err)
		}
		rds = nil
		fs.Inject(faultstore.NthCommit(fs.Commits() + n))
		_, err = e.CreateRoom(ctx, api.RoomCreateReq{Name: "doomed", Topic: "t", Encrypted: &enc})
		if err == nil {
			t.Fatalf("encrypted=%v: failing commit %d of the create: no error", enc, n)
		}
		rooms, err := e.Rooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rooms.Rooms) != 0 {
			t.Fatalf("encrypted=%v, commit %d failing: the failed room is kept: %+v", enc, n, rooms.Rooms)
		}
		committed := 0
		for _, rd := range rds {
			committed += len(rd.Commits)
			if len(rd.Track)+len(rd.Publish)+len(rd.Heads)+len(rd.Accepted)+len(rd.Watch)+len(rd.Timers) > 0 {
				t.Fatalf("encrypted=%v, commit %d failing: the failed room's step left effects: track %v, publish %d, heads %d, accepted %d, watch %d, timers %v",
					enc, n, rd.Track, len(rd.Publish), len(rd.Heads), len(rd.Accepted), len(rd.Watch), rd.Timers)
			}
		}
		if committed != n-1 {
			t.Fatalf("encrypted=%v, commit %d failing: the Ready lists %d commits, want %d", enc, n, committed, n-1)
		}
	}
}

// TestEngineStopsWithDeadWatcher is the regression test of a crash on
// shutdown: a watcher too slow for its buffer was dropped and its channel
// closed (deliver); the engine's Serve then closed it again when it
// stopped, and panicked (close of closed channel). It happened to every
// import of more than about a thousand messages into a node whose avatar
// watcher was behind. A slow watcher is no longer dropped: it gets its
// buffer's worth of items but one, then one resync item for the rest
// (watcher.put), and Serve closes its channel once.
func TestEngineStopsWithDeadWatcher(t *testing.T) {
	b := newBus(t, 1, 1)
	plain := false
	r, err := b.engines[0].CreateRoom(b.ctx, api.RoomCreateReq{Name: "busy", Encrypted: &plain})
	b.ok(err)
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	ch, _, err := b.engines[0].Watch(ctx, "")
	b.ok(err)
	for k := range cap(ch) + 10 { // nobody reads ch: the watcher falls behind
		b.send(0, r.Room, fmt.Sprint("message ", k))
	}
	b.stop(0)
	b.wg.Wait() // Serve returned without a panic
	n, resyncs := 0, 0
	for it := range ch { // closed by Serve
		if it.Kind == api.WatchResync {
			resyncs++
		} else {
			n++
		}
	}
	if n != cap(ch)-1 || resyncs != 1 {
		t.Fatalf("the slow watcher got %d items and %d resyncs, want %d and 1", n, resyncs, cap(ch)-1)
	}
}
