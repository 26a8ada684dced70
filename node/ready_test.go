package node

import (
	"context"
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/api"
)

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
