package crdt_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.RunStoreConformance(t, storetest.Opener{
		Open: func(*testing.T) crdt.Store { return crdt.NewMemStore() },
	})
}

// An overlay over an empty frozen base passes the suite as any store does.
func TestMemStoreOverConformance(t *testing.T) {
	base := crdt.NewMemStore()
	base.Freeze()
	storetest.RunStoreConformance(t, storetest.Opener{
		Open: func(*testing.T) crdt.Store { return crdt.NewMemStoreOver(base) },
	})
}

// TestMemStoreOver checks that stores over a frozen base holding a room's
// first batches answer what a store that committed every batch answers, and
// that neither the base nor another store over it sees what one of them
// commits or purges.
func TestMemStoreOver(t *testing.T) {
	f := storetest.NewFixture(t, "over", 40, 7)
	cut := len(f.Batches) / 2
	ref, base := crdt.NewMemStore(), crdt.NewMemStore()
	for i, b := range f.Batches {
		if err := ref.Commit(b); err != nil {
			t.Fatal(err)
		}
		if i < cut {
			if err := base.Commit(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	base.Freeze()
	if err := base.Commit(f.Batches[cut]); err == nil {
		t.Fatal("commit to a frozen store succeeded")
	}
	before := storeView(t, base, f)
	o1, o2 := crdt.NewMemStoreOver(base), crdt.NewMemStoreOver(base)
	for _, b := range f.Batches[cut:] {
		if err := o1.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	// a base event and an own one lose their bodies in o1 and ref only
	for _, id := range []crdt.EventID{f.Events[1].ID, f.Events[len(f.Events)-1].ID} {
		for _, s := range []*crdt.MemStore{ref, o1} {
			if err := s.PurgeBody(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := storeView(t, o1, f), storeView(t, ref, f); got != want {
		t.Fatalf("store over the base:\n%s\nwant:\n%s", got, want)
	}
	if got := storeView(t, base, f); got != before {
		t.Fatalf("the base changed:\n%s\nwas:\n%s", got, before)
	}
	if got := storeView(t, o2, f); got != before {
		t.Fatalf("another store over the base changed:\n%s\nwas:\n%s", got, before)
	}
}

// storeView prints what s answers about f's room.
func storeView(t *testing.T, s crdt.Store, f *storetest.Fixture) string {
	t.Helper()
	var b strings.Builder
	rooms, err := s.Rooms()
	heads, err2 := s.Heads(f.Room)
	fmt.Fprintf(&b, "rooms %v heads %v errs %v %v\n", rooms, heads, err, err2)
	for _, from := range []uint64{0, 3} {
		err := s.Scan(f.Room, from, func(st crdt.Stored) bool {
			fmt.Fprintf(&b, "scan %d: %s %d %d body %d\n", from, st.Event.ID, st.Event.Depth, st.Status, len(st.Event.Body))
			return true
		})
		fmt.Fprintf(&b, "scan err %v\n", err)
	}
	for _, ev := range f.Events {
		st, err := s.Get(ev.ID)
		has, err2 := s.Has(ev.ID)
		fmt.Fprintf(&b, "get %s: %v %d %v %v\n", ev.ID, st.Event != nil, st.Status, has, errors.Join(err, err2))
	}
	return b.String()
}
