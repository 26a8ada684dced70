package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
)

// The disk guard keeps the node alive on a full disk. Badger writes
// through memory-mapped files, so a write that meets a full filesystem
// kills the process with SIGBUS instead of returning an error
// (badgerstore.Reserve). The guard checks the free space of the store's
// filesystem before every write of the store (commit, purge, local value)
// and refuses it below the store's reserve plus the write's size, with
// ErrDiskFull. The engine treats that as any refused commit: an own send
// fails with "parley: disk full: ..." and changes nothing, a peer's events
// count as not held. Reads, sync serving and the API go on. While the disk
// is full, Serve looks every second; once space returns it has every room
// synced with every peer and the deferred local writes retried, so the
// node catches up without a restart.

// diskGuard decides whether the store may write.
type diskGuard struct {
	dir     string
	reserve uint64
	free    func(dir string) (uint64, error)
	log     *slog.Logger
	full    atomic.Bool
	back    chan struct{} // capacity 1: space came back (seen by a write)
}

func newDiskGuard(dir string, reserve int64, log *slog.Logger) *diskGuard {
	return &diskGuard{dir: dir, reserve: uint64(reserve), free: freeSpace, log: log, back: make(chan struct{}, 1)}
}

// check returns ErrDiskFull (as a user-facing error) when fewer than the
// reserve plus need bytes are free. When the free space cannot be read, it
// lets the write through.
func (g *diskGuard) check(need int) error {
	free, err := g.free(g.dir)
	if err != nil {
		return nil
	}
	if free >= g.reserve+uint64(need) {
		if g.full.Swap(false) {
			select {
			case g.back <- struct{}{}:
			default:
			}
		}
		return nil
	}
	if !g.full.Swap(true) {
		g.log.Warn("disk full: refusing writes", "free", free, "reserve", g.reserve)
	}
	return &api.Error{Kind: api.KindUnavailable, Err: ErrDiskFull, Msg: fmt.Sprintf(
		"disk full: %s free on the filesystem of %s, below the %s the store keeps in reserve; free some space and the node catches up by itself",
		mib(free), g.dir, mib(g.reserve))}
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Serve watches the free space while the disk is full and calls back once
// it has returned.
func (g *diskGuard) Serve(ctx context.Context, back func(context.Context)) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.back:
		case <-t.C:
			if !g.full.Load() || g.check(0) != nil {
				continue
			}
			select {
			case <-g.back: // check signalled it: handled here
			default:
			}
		}
		g.log.Info("disk space is back: syncing")
		back(ctx)
	}
}

// guardedStore is the badger store with the disk guard before each write.
type guardedStore struct {
	*badgerstore.Store
	g *diskGuard
}

var (
	_ crdt.Store = guardedStore{}
	_ LocalStore = guardedStore{}
)

// Commit implements crdt.Store.
func (s guardedStore) Commit(b crdt.Batch) error {
	n := 0
	for _, e := range b.Events {
		n += len(e.Event.Envelope) + len(e.Event.Body) + 256 // keys and index entries
	}
	if err := s.g.check(n); err != nil {
		return err
	}
	return s.Store.Commit(b)
}

// PurgeBody implements crdt.Store.
func (s guardedStore) PurgeBody(id crdt.EventID) error {
	if err := s.g.check(0); err != nil {
		return err
	}
	return s.Store.PurgeBody(id)
}

// PutLocal implements LocalStore.
func (s guardedStore) PutLocal(k, v []byte) error {
	if err := s.g.check(len(k) + len(v)); err != nil {
		return err
	}
	return s.Store.PutLocal(k, v)
}

// WriteLocal writes the search index's batches (searchindex.go).
func (s guardedStore) WriteLocal(ws []crdt.LocalWrite) error {
	n := 0
	for _, w := range ws {
		n += len(w.Key) + len(w.Value)
	}
	if err := s.g.check(n); err != nil {
		return err
	}
	return s.Store.WriteLocal(ws)
}

// DeleteLocal implements LocalStore.
func (s guardedStore) DeleteLocal(k []byte) error {
	if err := s.g.check(0); err != nil {
		return err
	}
	return s.Store.DeleteLocal(k)
}
