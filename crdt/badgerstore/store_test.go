package badgerstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// ristretto's cache and badger's watermarks stop asynchronously after Close.
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*Cache[...]).processItems"),
	)
}

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	dirs := map[crdt.Store]string{}
	storetest.RunStoreConformance(t, storetest.Opener{
		Open: func(t *testing.T) crdt.Store {
			dir := t.TempDir()
			s := open(t, dir)
			dirs[s] = dir
			return s
		},
		Reopen: func(t *testing.T, s crdt.Store) crdt.Store {
			dir := dirs[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			n := open(t, dir)
			dirs[n] = dir
			return n
		},
	})
}

func TestInMemoryConformance(t *testing.T) {
	storetest.RunStoreConformance(t, storetest.Opener{
		Open: func(t *testing.T) crdt.Store {
			s, err := Open("", Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

func TestServeStops(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	s.opts.GCInterval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	f := storetest.NewFixture(t, "gc", 20, 10)
	for _, b := range f.Batches {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestBigBatchSplits(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	// A 1 MiB memtable caps a transaction at ~150 kB: 600 events do not fit.
	dir := t.TempDir()
	s, err := Open(dir, Options{memTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	f := storetest.NewFixture(t, "big", 600, 1<<30)
	if len(f.Batches) != 1 {
		t.Fatalf("%d batches", len(f.Batches))
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		for _, st := range f.Batches[0].Events {
			if err := writeEvent(s, txn, f.Room, st); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("the batch fits one transaction (%v): the test does not test splitting", err)
	}
	if err := s.Commit(f.Batches[0]); err != nil {
		t.Fatal(err)
	}
	heads, err := s.Heads(f.Room)
	if err != nil || !slices.Equal(heads, f.Heads()) {
		t.Fatalf("heads %v, %v", heads, err)
	}
	n := 0
	s.Scan(f.Room, 0, func(crdt.Stored) bool { n++; return true })
	if n != len(f.Events) {
		t.Fatalf("%d events stored, want %d", n, len(f.Events))
	}
	s.Close()
}

// TestFlushingWALs: of a store folder's files, the memtable write-ahead
// files but the newest (by number, not by name) are the ones set aside.
func TestFlushingWALs(t *testing.T) {
	names := []string{"MANIFEST", "00001.vlog", "00009.mem", "000010.mem", "00008.mem", "x.mem", "00003.sst"}
	if got, want := flushingWALs(names), []string{"00008.mem", "00009.mem"}; !slices.Equal(got, want) {
		t.Errorf("flushing %v, want %v", got, want)
	}
	if got := flushingWALs([]string{"00001.mem", "00002.sst"}); got != nil {
		t.Errorf("one memtable: %v set aside", got)
	}
}

// TestDurableSplitSyncsFlushingWALs: a durable batch too big for one
// transaction, committed while badger sets memtables aside (a 1 MiB
// memtable), syncs the set-aside memtables' files as well as the active
// one; a batch in one transaction does not list the folder. (A power loss
// is not simulated; this shows the files are synced, and that the batch
// is stored whole.)
func TestDurableSplitSyncsFlushingWALs(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	s, err := Open(t.TempDir(), Options{memTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	calls, files := syncFlushingCalls.Load(), syncFlushingFiles.Load()
	small := storetest.NewFixture(t, "small", 3, 1<<30)
	for _, b := range small.Batches {
		b.Durable = true
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := syncFlushingCalls.Load() - calls; got != 0 {
		t.Fatalf("%d syncs of set-aside memtables for batches in one transaction", got)
	}
	f := storetest.NewFixture(t, "big", 2000, 1<<30)
	for _, b := range f.Batches {
		b.Durable = true
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	if got := syncFlushingCalls.Load() - calls; got == 0 {
		t.Fatal("a split durable batch did not sync the set-aside memtables")
	}
	t.Logf("%d set-aside memtable files synced", syncFlushingFiles.Load()-files)
	n := 0
	s.Scan(f.Room, 0, func(crdt.Stored) bool { n++; return true })
	if n != len(f.Events) {
		t.Fatalf("%d events stored, want %d", n, len(f.Events))
	}
}

// TestOpenAfterKillEmptyMemtable: a process killed between badger's
// creating a memtable file and sizing it leaves an empty *.mem file; the
// store must open again with what was committed (issue 16: a daemon killed
// in the middle of a 100,000-event catch-up could not start).
func TestOpenAfterKillEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutLocal([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00099.mem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open after an empty memtable file was left: %v", err)
	}
	defer s.Close()
	if v, err := s.GetLocal([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("committed value after reopening: %q, %v", v, err)
	}
}

// TestSplitKeepsWholeEvents: wherever a transaction fills up (memtables
// of several sizes move the point), a split batch stores every event
// whole: its envelope, body, meta and indexes, none of them left out
// because part of the event went into the transaction before.
func TestSplitKeepsWholeEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	f := storetest.NewFixture(t, "split", 600, 1<<30)
	for i := range 6 {
		s, err := Open(t.TempDir(), Options{memTableSize: 1<<20 + int64(i)*977})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(f.Batches[0]); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := s.Scan(f.Room, 0, func(crdt.Stored) bool { n++; return true }); err != nil {
			t.Fatalf("memtable %d: scan: %v", i, err)
		}
		for _, ev := range f.Events {
			if _, err := s.Get(ev.ID); err != nil {
				t.Fatalf("memtable %d: event %s: %v", i, ev.ID, err)
			}
		}
		if n != len(f.Events) {
			t.Fatalf("memtable %d: %d events scanned, want %d", i, n, len(f.Events))
		}
		s.Close()
	}
}

// TestSyncAfterBatches: Sync after batches committed without Durable
// records the segments synced to their end and syncs the memtables set
// aside meanwhile; the events stay readable after a reopen.
func TestSyncAfterBatches(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dir := t.TempDir()
	f := storetest.NewFixture(t, "bulk", 2000, 1000)
	s := openCommitted(t, dir, Options{memTableSize: 1 << 20}, f.Batches)
	calls := syncFlushingCalls.Load()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if syncFlushingCalls.Load() == calls {
		t.Fatal("Sync did not sync the set-aside memtables")
	}
	if m, err := s.readSynced(); err != nil || m != [2]uint64{s.seg.cur, uint64(s.seg.end)} {
		t.Fatalf("synced mark %v (%v) after Sync, want the segments' end %d/%d", m, err, s.seg.cur, s.seg.end)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openCommitted(t, dir, Options{}, nil)
	defer s.Close()
	if n := len(scanAll(t, s, f.Room)); n != len(f.Events) {
		t.Fatalf("%d events stored after a reopen, want %d", n, len(f.Events))
	}
}

// openCommitted opens the store in dir and commits bs into it.
func openCommitted(t *testing.T, dir string, o Options, bs []crdt.Batch) *Store {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	return s
}
