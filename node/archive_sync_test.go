package node

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/archive"
	"github.com/parley-p2p/parley/crdt/badgerstore"
)

// syncCountStore is a badger store that records the Durable flag of each
// commit and counts the calls of Sync.
type syncCountStore struct {
	*badgerstore.Store

	mu                    sync.Mutex
	durable, plain, syncs int // commits with and without Durable, Sync calls
}

func (s *syncCountStore) Commit(b crdt.Batch) error {
	s.mu.Lock()
	if b.Durable {
		s.durable++
	} else {
		s.plain++
	}
	s.mu.Unlock()
	return s.Store.Commit(b)
}

func (s *syncCountStore) Sync() error {
	s.mu.Lock()
	s.syncs++
	s.mu.Unlock()
	return s.Store.Sync()
}

// noSync hides the store's Sync.
type noSync struct {
	crdt.Store
	LocalStore
}

// TestImportSyncsOnce: an import of 2,504 events (three batches) into a
// store that can sync what it committed commits its batches without
// Durable and syncs once before it returns; into one that cannot, each
// batch is durable.
func TestImportSyncsOnce(t *testing.T) {
	src, err := badgerstore.Open(t.TempDir(), badgerstore.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	room := buildRoom(t, src, 2500)
	var evs []*crdt.Event
	if err := src.Scan(room, 0, func(s crdt.Stored) bool { evs = append(evs, s.Event); return true }); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "room.car")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.Write(f, room, evs); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, withSync := range []bool{true, false} {
		dst, err := badgerstore.Open(t.TempDir(), badgerstore.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		cs := &syncCountStore{Store: dst}
		var store crdt.Store = cs
		if !withSync {
			store = noSync{cs, cs}
		}
		ctx, cancel := context.WithCancel(context.Background())
		e, err := NewEngine(newIdentity(t), store, "", quiet)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); e.Serve(ctx) }()
		resp, err := e.Import(ctx, api.ImportReq{Path: path})
		cancel()
		<-done
		dst.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.New != len(evs) {
			t.Fatalf("imported %d new events, want %d", resp.New, len(evs))
		}
		switch {
		case withSync && (cs.durable != 0 || cs.plain < 3 || cs.syncs != 1):
			t.Errorf("with Sync: %d durable and %d other commits, %d syncs; want no durable commit and one sync", cs.durable, cs.plain, cs.syncs)
		case !withSync && cs.durable < 3:
			t.Errorf("without Sync: %d durable and %d other commits; want each batch durable", cs.durable, cs.plain)
		}
	}
}
