package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
)

// storeInPart leaves event id in the badger store in dir as the split
// commit before 91091ec could: its envelope key only (e/<id>; every other
// key ending in the id dropped), in a store not yet repaired (the marker
// l/badgerstore/repaired-partial-events dropped).
func storeInPart(t *testing.T, dir string, id crdt.EventID) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	env := append([]byte("e/"), id...)
	var drop [][]byte
	err = db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); bytes.HasSuffix(k, []byte(id)) && !bytes.Equal(k, env) {
				drop = append(drop, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(drop) < 1 { // its depth key at least
		t.Fatalf("%d keys of the event found", len(drop))
	}
	drop = append(drop, []byte("l/badgerstore/repaired-partial-events"))
	err = db.Update(func(txn *badger.Txn) error {
		for _, k := range drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestartRepairsPartialEvent: a node restarts over a badger store
// holding a message by its envelope alone (as the split commit before
// 91091ec left them); opening the store removes it, the node starts and
// its restored log counts it missing, and a copy that arrives (here
// ingested from the peer's store: a sync session with equal heads does
// not reconcile, so nothing fetches it yet) is stored whole, body
// included, where the old store skipped it as held. After one more
// restart the timelines agree (the running node's room state judged the
// message's descendants without it).
func TestRestartRepairsPartialEvent(t *testing.T) {
	dir := t.TempDir()
	openStore := func() *badgerstore.Store {
		s, err := badgerstore.Open(dir, badgerstore.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	bs := openStore()
	tn := newTestNetWith(t, 2, func(i int, s crdt.Store) crdt.Store {
		if i == 1 {
			return bs
		}
		return s
	})
	t.Cleanup(func() { tn.stopWait(1); bs.Close() }) // before tn.close
	tn.link(0, 1)
	room := setupRoom(t, tn)
	const n = 20
	send(t, tn, 0, room, n, "before")
	tn.converged(room, 2+n, convergeWithin, 0, 1)
	h := tn.history(1, room)
	x, err := crdt.ParseID(h[len(h)/2]) // a message with later ones
	if err != nil {
		t.Fatal(err)
	}
	want, err := tn.stores[0].Get(x)
	if err != nil || len(want.Event.Body) == 0 {
		t.Fatalf("the event on node 0: %v", err)
	}

	restart := func() {
		tn.stopWait(1)
		if err := bs.Close(); err != nil {
			t.Fatal(err)
		}
		bs = openStore()
		tn.stores[1] = bs
		tn.start(1)
	}
	tn.stopWait(1)
	if err := bs.Close(); err != nil {
		t.Fatal(err)
	}
	storeInPart(t, dir, x)
	bs = openStore()
	tn.stores[1] = bs
	if ok, err := bs.Has(x); ok || err != nil {
		t.Fatalf("the event stored in part is held after the repair (%v)", err)
	}
	tn.start(1)
	info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	if info.Sync.Missing != 1 {
		t.Fatalf("after the restart the log misses %d events, want 1", info.Sync.Missing)
	}
	if err := tn.reps[1].Engine.Ingest(tn.ctx, "", []*crdt.Event{want.Event}); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "the event stored whole", func() (bool, string) {
		got, err := bs.Get(x)
		if err != nil {
			return false, err.Error()
		}
		return bytes.Equal(got.Event.Body, want.Event.Body), "body differs"
	})
	eventually(t, convergeWithin, "no gap", func() (bool, string) {
		info, err := tn.reps[1].Engine.Info(tn.ctx, api.RoomReq{Room: room})
		return err == nil && info.Sync.Missing == 0 && info.Sync.Pending == 0, fmt.Sprintf("%+v, %v", info.Sync, err)
	})
	t.Logf("before the second restart: node 0 shows %d events, node 1 %d", count(tn, 0, room), count(tn, 1, room))
	restart()
	tn.converged(room, 2+n, convergeWithin, 0, 1)
	send(t, tn, 1, room, 1, "after")
	tn.converged(room, 2+n+1, convergeWithin, 0, 1)
}
