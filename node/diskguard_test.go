package node

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
	"github.com/parley-p2p/parley/crdt/storetest"
)

// TestDiskGuard: below the reserve every write of the store is refused
// with a user-facing disk-full error and changes nothing; once space is
// back writes pass and Serve calls back (the node then syncs).
func TestDiskGuard(t *testing.T) {
	bs, err := badgerstore.Open(t.TempDir(), badgerstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	if got, want := bs.Reserve(), int64(136<<20); got != want {
		t.Fatalf("reserve %d, want %d (2 × 8 MiB memtables + 10 × 8 MiB level 0 + 40 MiB base level)", got, want)
	}
	g := newDiskGuard(bs.Dir(), bs.Reserve(), slog.New(slog.DiscardHandler))
	var free atomic.Uint64
	free.Store(uint64(bs.Reserve()) - 1)
	g.free = func(string) (uint64, error) { return free.Load(), nil }
	s := guardedStore{bs, g}
	f := storetest.NewFixture(t, "guard", 3, 10)
	b := f.Batches[0]
	for name, write := range map[string]func() error{
		"commit":       func() error { return s.Commit(b) },
		"purge":        func() error { return s.PurgeBody(f.Events[0].ID) },
		"put local":    func() error { return s.PutLocal([]byte("p/x"), []byte("y")) },
		"delete local": func() error { return s.DeleteLocal([]byte("p/x")) },
	} {
		err := write()
		if !errors.Is(err, ErrDiskFull) || KindOf(err) != api.KindUnavailable || !strings.HasPrefix(err.Error(), "disk full: ") {
			t.Fatalf("%s on a full disk: %v", name, err)
		}
	}
	if ok, _ := s.Has(f.Events[0].ID); ok {
		t.Fatal("a refused commit reached the store")
	}
	if _, err := s.GetLocal([]byte("p/x")); !errors.Is(err, crdt.ErrNotFound) {
		t.Fatalf("a refused local write reached the store: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	back := make(chan struct{}, 1)
	done := make(chan error)
	go func() { done <- g.Serve(ctx, func(context.Context) { back <- struct{}{} }) }()
	free.Store(1 << 40)
	select {
	case <-back:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not see the space come back")
	}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
