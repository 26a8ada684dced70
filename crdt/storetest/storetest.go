// Package storetest is the conformance suite every crdt.Store passes: the
// contract written on crdt.Store, checked the same way for MemStore and
// badgerstore.Store.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// Opener makes stores for the suite.
type Opener struct {
	// Open returns a new, empty store. The suite closes it.
	Open func(t *testing.T) crdt.Store
	// Reopen, when set, closes s and returns a store over the same data
	// (the durability tests are skipped without it).
	Reopen func(t *testing.T, s crdt.Store) crdt.Store
}

// RunStoreConformance runs the contract of crdt.Store against stores made by o.
func RunStoreConformance(t *testing.T, o Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, o Opener)
	}{
		{"CommitGetHas", testCommitGetHas},
		{"NotFound", testNotFound},
		{"GetMany", testGetMany},
		{"IdempotentRecommit", testIdempotentRecommit},
		{"NewBatches", testNewBatches},
		{"Atomicity", testAtomicity},
		{"Heads", testHeads},
		{"Rooms", testRooms},
		{"ScanOrderAndFrom", testScan},
		{"ScanEarlyStop", testScanEarlyStop},
		{"PurgeBody", testPurgeBody},
		{"Concurrent", testConcurrent},
		{"Reopen", testReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, o) })
	}
}

func open(t *testing.T, o Opener) crdt.Store {
	t.Helper()
	s := o.Open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

// Fixture is a small signed room: a create event and a DAG of messages from
// two devices with a fork and a merge, cut into batches the way a Log would.
type Fixture struct {
	Room    crdt.RoomID
	Events  []*crdt.Event // topological (depth, id) order
	Batches []crdt.Batch
}

// NewFixture builds a room of n messages after the create event, with the
// log's batches of at most per events each. tag separates rooms.
func NewFixture(t testing.TB, tag string, n, per int) *Fixture {
	t.Helper()
	ids := []*crdt.Identity{identity(t, tag+"/a"), identity(t, tag+"/b")}
	create, err := crdt.Sign(ids[0], crdt.Draft{Type: crdt.TypeCreate, TS: 1, Body: []byte("create " + tag)})
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{Room: create.ID}
	logs := []*crdt.Log{crdt.NewLog(f.Room, crdt.LogConfig{}), crdt.NewLog(f.Room, crdt.LogConfig{})}
	all := crdt.NewLog(f.Room, crdt.LogConfig{})
	var pending []*crdt.Event
	flush := func() {
		if len(pending) == 0 {
			return
		}
		r := all.Add(pending...)
		if len(r.Batch.Events) != len(pending) {
			t.Fatalf("fixture: %d of %d events processed", len(r.Batch.Events), len(pending))
		}
		f.Batches = append(f.Batches, r.Batch)
		pending = nil
	}
	for _, l := range logs {
		l.Add(create)
	}
	f.Events = append(f.Events, create)
	pending = append(pending, create)
	for i := range n {
		w := i % 2
		if i%5 == 4 { // the devices see each other's events now and then
			o := logs[1-w]
			for _, id := range o.Order() {
				if !logs[w].Has(id) {
					logs[w].Add(eventByID(f.Events, id))
				}
			}
		}
		d := logs[w].Prepare(ids[w].Device.Public(), int64(10+i), crdt.Draft{Type: "message", Auth: []crdt.EventID{f.Room}, Body: []byte(fmt.Sprintf("%s message %d", tag, i))})
		ev, err := crdt.Sign(ids[w], d)
		if err != nil {
			t.Fatal(err)
		}
		logs[w].Add(ev)
		f.Events = append(f.Events, ev)
		pending = append(pending, ev)
		if len(pending) == per {
			flush()
		}
	}
	flush()
	slices.SortFunc(f.Events, func(a, b *crdt.Event) int {
		if a.Depth != b.Depth {
			return int(a.Depth) - int(b.Depth)
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return f
}

// Heads returns the heads after all batches.
func (f *Fixture) Heads() []crdt.EventID {
	l := crdt.NewLog(f.Room, crdt.LogConfig{})
	l.Add(f.Events...)
	return l.Heads()
}

func eventByID(evs []*crdt.Event, id crdt.EventID) *crdt.Event {
	for _, e := range evs {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func identity(t testing.TB, name string) *crdt.Identity {
	seed := func(s string) []byte {
		b := make([]byte, 32)
		copy(b, s)
		return b
	}
	master, err := crdt.SecretKeyFromSeed(seed("user " + name))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crdt.SecretKeyFromSeed(seed("device " + name))
	if err != nil {
		t.Fatal(err)
	}
	return &crdt.Identity{User: master.Public(), Device: dev, Cert: crdt.CertifyDevice(master, dev.Public())}
}

func commitAll(t *testing.T, s crdt.Store, bs []crdt.Batch) {
	t.Helper()
	for i, b := range bs {
		if err := s.Commit(b); err != nil {
			t.Fatalf("commit batch %d: %v", i, err)
		}
	}
}

func sameEvent(t *testing.T, got crdt.Stored, want *crdt.Event, status crdt.Status) {
	t.Helper()
	if got.Event == nil {
		t.Fatalf("%s: nil event", want.ID)
	}
	if got.Event.ID != want.ID || !bytes.Equal(got.Event.Envelope, want.Envelope) || !bytes.Equal(got.Event.Body, want.Body) {
		t.Fatalf("%s: got a different event back (id %s)", want.ID, got.Event.ID)
	}
	if got.Event.Depth != want.Depth || got.Event.Room != want.Room || got.Event.Seq != want.Seq {
		t.Fatalf("%s: decoded fields differ", want.ID)
	}
	if got.Status != status {
		t.Fatalf("%s: status %d, want %d", want.ID, got.Status, status)
	}
}

func testCommitGetHas(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "cgh", 30, 8)
	commitAll(t, s, f.Batches)
	for _, e := range f.Events {
		got, err := s.Get(e.ID)
		if err != nil {
			t.Fatalf("get %s: %v", e.ID, err)
		}
		sameEvent(t, got, e, crdt.StatusAccepted)
		if ok, err := s.Has(e.ID); err != nil || !ok {
			t.Fatalf("has %s = %v, %v", e.ID, ok, err)
		}
	}
	// A rejected event keeps its status and reason.
	rej := f.Events[len(f.Events)-1]
	other := NewFixture(t, "cgh-rejected", 1, 8)
	bad := other.Events[len(other.Events)-1]
	b := crdt.Batch{Room: other.Room, Events: []crdt.Stored{{Event: bad, Status: crdt.StatusRejected, Reason: "depth 9, want 1"}}}
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(bad.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, bad, crdt.StatusRejected)
	if got.Reason != "depth 9, want 1" {
		t.Fatalf("reason %q", got.Reason)
	}
	_ = rej
}

func testNotFound(t *testing.T, o Opener) {
	s := open(t, o)
	id := crdt.IDOf([]byte("nothing"))
	if _, err := s.Get(id); !errors.Is(err, crdt.ErrNotFound) {
		t.Fatalf("get of unknown id: %v, want ErrNotFound", err)
	}
	if ok, err := s.Has(id); err != nil || ok {
		t.Fatalf("has of unknown id = %v, %v", ok, err)
	}
	if err := s.PurgeBody(id); !errors.Is(err, crdt.ErrNotFound) {
		t.Fatalf("purge of unknown id: %v, want ErrNotFound", err)
	}
	if h, err := s.Heads(id); err != nil || len(h) != 0 {
		t.Fatalf("heads of unknown room = %v, %v", h, err)
	}
	n := 0
	if err := s.Scan(id, 0, func(crdt.Stored) bool { n++; return true }); err != nil || n != 0 {
		t.Fatalf("scan of unknown room: %d events, %v", n, err)
	}
}

// testGetMany: crdt.GetMany returns the held events among the ids, in
// order, and leaves out the ones not held, whether the store reads many
// at once or crdt.GetMany falls back to Get.
func testGetMany(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "getmany", 6, 3)
	commitAll(t, s, f.Batches)
	ids := []crdt.EventID{f.Events[2].ID, crdt.IDOf([]byte("nothing")), f.Events[0].ID, f.Events[5].ID}
	got, err := crdt.GetMany(s, ids)
	if err != nil {
		t.Fatal(err)
	}
	want := []*crdt.Event{f.Events[2], f.Events[0], f.Events[5]}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		sameEvent(t, got[i], w, crdt.StatusAccepted)
	}
}

func testIdempotentRecommit(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "idem", 20, 5)
	commitAll(t, s, f.Batches)
	commitAll(t, s, f.Batches) // again: nothing changes
	// Recommitting an event with another status does not change it either.
	e := f.Events[3]
	if err := s.Commit(crdt.Batch{Room: f.Room, Events: []crdt.Stored{{Event: e, Status: crdt.StatusRejected, Reason: "x"}}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameEvent(t, got, e, crdt.StatusAccepted)
	checkHeads(t, s, f.Room, f.Heads())
	checkScan(t, s, f.Room, 0, f.Events)
}

// testNewBatches: batches marked New (crdt.Batch.New: the caller knows the
// store holds none of their events, so it may skip its check of held
// events) are stored exactly as unmarked ones: every event, its status and
// reason, the heads, the room, the scan order, after a reopen too; an
// unmarked recommit changes nothing; and a batch marked New wrongly (its
// events held, with the same status) leaves each held once.
func testNewBatches(t *testing.T, o Opener) {
	s := o.Open(t)
	defer func() { s.Close() }()
	f := NewFixture(t, "new", 30, 7)
	bs := slices.Clone(f.Batches)
	for i := range bs {
		bs[i].New = true
	}
	bs[len(bs)-1].Durable = true
	commitAll(t, s, bs)
	other := NewFixture(t, "new-rejected", 1, 8)
	bad := other.Events[len(other.Events)-1]
	if err := s.Commit(crdt.Batch{Room: other.Room, New: true, Events: []crdt.Stored{{Event: bad, Status: crdt.StatusRejected, Reason: "depth 9, want 1"}}}); err != nil {
		t.Fatal(err)
	}
	check := func(s crdt.Store) {
		t.Helper()
		for _, e := range f.Events {
			sameEvent(t, mustGet(t, s, e.ID), e, crdt.StatusAccepted)
			if ok, err := s.Has(e.ID); err != nil || !ok {
				t.Fatalf("has %s = %v, %v", e.ID, ok, err)
			}
		}
		if got := mustGet(t, s, bad.ID); got.Status != crdt.StatusRejected || got.Reason != "depth 9, want 1" {
			t.Fatalf("rejected event: status %d, reason %q", got.Status, got.Reason)
		}
		checkHeads(t, s, f.Room, f.Heads())
		checkScan(t, s, f.Room, 0, f.Events)
		if rooms, err := s.Rooms(); err != nil || len(rooms) != 2 || !slices.Contains(rooms, f.Room) || !slices.Contains(rooms, other.Room) {
			t.Fatalf("rooms = %v, %v", rooms, err)
		}
	}
	check(s)
	commitAll(t, s, f.Batches) // unmarked, again: nothing changes
	check(s)
	commitAll(t, s, bs) // marked wrongly: the same events, each held once
	check(s)
	if o.Reopen != nil {
		s = o.Reopen(t, s)
		check(s)
	}
}

func testAtomicity(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "atom", 10, 100)
	g := NewFixture(t, "atom-other", 1, 100)
	b := f.Batches[0]
	// An entry without an event: nothing of the batch is written.
	broken := b
	broken.Events = append(slices.Clone(b.Events), crdt.Stored{Status: crdt.StatusAccepted})
	if err := s.Commit(broken); err == nil {
		t.Fatal("commit of a batch with a nil event succeeded")
	}
	// An event of another room: refused as a whole too.
	broken.Events = append(slices.Clone(b.Events), crdt.Stored{Event: g.Events[1], Status: crdt.StatusAccepted})
	if err := s.Commit(broken); err == nil {
		t.Fatal("commit of a batch with a foreign event succeeded")
	}
	for _, e := range f.Events {
		if ok, _ := s.Has(e.ID); ok {
			t.Fatalf("event %s of a refused batch was written", e.ID)
		}
	}
	checkHeads(t, s, f.Room, nil)
	if rooms, _ := s.Rooms(); len(rooms) != 0 {
		t.Fatalf("rooms after refused batches: %v", rooms)
	}
	// The heads reflect exactly the batches committed, one at a time.
	l := crdt.NewLog(f.Room, crdt.LogConfig{})
	for i, e := range f.Events {
		r := l.Add(e)
		if err := s.Commit(r.Batch); err != nil {
			t.Fatal(err)
		}
		checkHeads(t, s, f.Room, l.Heads())
		checkScan(t, s, f.Room, 0, f.Events[:i+1])
	}
}

func testHeads(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "heads", 40, 7)
	l := crdt.NewLog(f.Room, crdt.LogConfig{})
	for _, b := range f.Batches {
		evs := make([]*crdt.Event, len(b.Events))
		for i, st := range b.Events {
			evs[i] = st.Event
		}
		r := l.Add(evs...)
		if err := s.Commit(r.Batch); err != nil {
			t.Fatal(err)
		}
		checkHeads(t, s, f.Room, l.Heads())
	}
	if len(l.Heads()) == 0 {
		t.Fatal("no heads")
	}
}

func testRooms(t *testing.T, o Opener) {
	s := open(t, o)
	var want []crdt.RoomID
	for _, tag := range []string{"r1", "r2", "r3"} {
		f := NewFixture(t, tag, 3, 10)
		commitAll(t, s, f.Batches)
		want = append(want, f.Room)
	}
	slices.Sort(want)
	got, err := s.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rooms %v, want %v", got, want)
	}
}

func testScan(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "scan", 50, 9)
	g := NewFixture(t, "scan-other", 5, 9)
	// Commit in reverse batch order: Scan must still sort.
	for i := len(f.Batches) - 1; i >= 0; i-- {
		if err := s.Commit(f.Batches[i]); err != nil {
			t.Fatal(err)
		}
	}
	commitAll(t, s, g.Batches)
	checkScan(t, s, f.Room, 0, f.Events)
	checkScan(t, s, g.Room, 0, g.Events)
	for _, from := range []uint64{1, 5, 17, 1 << 40} {
		var want []*crdt.Event
		for _, e := range f.Events {
			if e.Depth >= from {
				want = append(want, e)
			}
		}
		checkScan(t, s, f.Room, from, want)
	}
}

func testScanEarlyStop(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "stop", 30, 10)
	commitAll(t, s, f.Batches)
	var got []crdt.EventID
	err := s.Scan(f.Room, 0, func(st crdt.Stored) bool {
		got = append(got, st.Event.ID)
		return len(got) < 7
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Fatalf("scan went on after fn returned false: %d calls", len(got))
	}
	for i, id := range got {
		if id != f.Events[i].ID {
			t.Fatalf("scan[%d] = %s, want %s", i, id, f.Events[i].ID)
		}
	}
}

func testPurgeBody(t *testing.T, o Opener) {
	s := open(t, o)
	f := NewFixture(t, "purge", 5, 10)
	commitAll(t, s, f.Batches)
	e := f.Events[3]
	if err := s.PurgeBody(e.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeBody(e.ID); err != nil { // again: still fine
		t.Fatal(err)
	}
	got, err := s.Get(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Event.Body != nil {
		t.Fatalf("body after purge: %q", got.Event.Body)
	}
	if got.Event.ID != e.ID || !bytes.Equal(got.Event.Envelope, e.Envelope) || got.Status != crdt.StatusAccepted {
		t.Fatal("purge changed more than the body")
	}
	if _, err := crdt.Decode(got.Event.Encode()); err != nil {
		t.Fatalf("purged event no longer verifies: %v", err)
	}
	// Others keep theirs, Scan sees the purge, a recommit does not bring it back.
	sameEvent(t, mustGet(t, s, f.Events[2].ID), f.Events[2], crdt.StatusAccepted)
	commitAll(t, s, f.Batches)
	if got := mustGet(t, s, e.ID); got.Event.Body != nil {
		t.Fatal("recommit restored a purged body")
	}
	s.Scan(f.Room, 0, func(st crdt.Stored) bool {
		if st.Event.ID == e.ID && st.Event.Body != nil {
			t.Fatal("scan returns a purged body")
		}
		return true
	})
}

func testConcurrent(t *testing.T, o Opener) {
	s := open(t, o)
	var fs []*Fixture
	for i := range 4 {
		fs = append(fs, NewFixture(t, fmt.Sprintf("conc%d", i), 25, 5))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for _, f := range fs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for _, b := range f.Batches {
				if err := s.Commit(b); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for _, e := range f.Events {
				if _, err := s.Has(e.ID); err != nil {
					errs <- err
				}
				if _, err := s.Heads(f.Room); err != nil {
					errs <- err
				}
				if err := s.Scan(f.Room, 0, func(crdt.Stored) bool { return true }); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, f := range fs {
		checkHeads(t, s, f.Room, f.Heads())
		checkScan(t, s, f.Room, 0, f.Events)
	}
}

func testReopen(t *testing.T, o Opener) {
	if o.Reopen == nil {
		t.Skip("store has no durable form")
	}
	s := o.Open(t)
	f := NewFixture(t, "reopen", 30, 7)
	last := len(f.Batches) - 1
	commitAll(t, s, f.Batches[:last])
	b := f.Batches[last]
	b.Durable = true
	if err := s.Commit(b); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeBody(f.Events[2].ID); err != nil {
		t.Fatal(err)
	}
	s = o.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	checkHeads(t, s, f.Room, f.Heads())
	rooms, err := s.Rooms()
	if err != nil || !slices.Equal(rooms, []crdt.RoomID{f.Room}) {
		t.Fatalf("rooms after reopen: %v, %v", rooms, err)
	}
	if got := mustGet(t, s, f.Events[2].ID); got.Event.Body != nil {
		t.Fatal("purged body back after reopen")
	}
	// A log restored from the store has the same heads and order.
	l := crdt.NewLog(f.Room, crdt.LogConfig{})
	if err := s.Scan(f.Room, 0, func(st crdt.Stored) bool { l.Restore(st); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Heads(), f.Heads()) || l.Len() != len(f.Events) || l.MissingCount() != 0 {
		t.Fatalf("restored log: heads %v len %d missing %d", l.Heads(), l.Len(), l.MissingCount())
	}
}

func mustGet(t *testing.T, s crdt.Store, id crdt.EventID) crdt.Stored {
	t.Helper()
	st, err := s.Get(id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return st
}

func checkHeads(t *testing.T, s crdt.Store, room crdt.RoomID, want []crdt.EventID) {
	t.Helper()
	got, err := s.Heads(room)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("heads %v, want %v", got, want)
	}
}

func checkScan(t *testing.T, s crdt.Store, room crdt.RoomID, from uint64, want []*crdt.Event) {
	t.Helper()
	var got []crdt.EventID
	if err := s.Scan(room, from, func(st crdt.Stored) bool {
		got = append(got, st.Event.ID)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("scan from %d: %d events, want %d", from, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i].ID {
			t.Fatalf("scan from %d: [%d] = %s, want %s", from, i, got[i], want[i].ID)
		}
	}
}
