package faultstore_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
	"github.com/parley-p2p/parley/crdt/storetest"
	"github.com/parley-p2p/parley/internal/puretest"
)

func TestPureImports(t *testing.T) {
	puretest.CheckImports(t, ".", puretest.Base...)
}

// TestPassThroughConformance: with no injector the wrapper is a store like
// any other.
func TestPassThroughConformance(t *testing.T) {
	storetest.RunStoreConformance(t, storetest.Opener{
		Open: func(*testing.T) crdt.Store { return faultstore.New(crdt.NewMemStore(), nil) },
	})
}

// snapshot is everything a store holds for a room, as text.
func snapshot(t *testing.T, s *faultstore.Store, room crdt.RoomID) string {
	t.Helper()
	heads, err := s.Heads(room)
	if err != nil {
		t.Fatal(err)
	}
	rooms, err := s.Rooms()
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("rooms %v heads %v;", rooms, heads)
	err = s.Scan(room, 0, func(st crdt.Stored) bool {
		out += fmt.Sprintf(" %s/%d/%d/%q", st.Event.ID, st.Status, len(st.Event.Body), st.Reason)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	var local []string
	s.ScanLocal(nil, func(k, v []byte) bool { local = append(local, fmt.Sprintf("%s=%s", k, v)); return true })
	return out + fmt.Sprint(" local ", local)
}

// TestInjectedFaultsChangeNothing runs a fixture's batches, purges and local
// writes through every injector: each injected failure leaves the store
// exactly as it was, and writing again without faults ends in the same
// store as a run that never failed.
func TestInjectedFaultsChangeNothing(t *testing.T) {
	f := storetest.NewFixture(t, "faults", 40, 5)
	injectors := []faultstore.Injector{
		faultstore.NthCommit(1), faultstore.NthCommit(3), faultstore.NthCommit(len(f.Batches)),
		faultstore.Probability(0.5, 7), faultstore.Probability(0.2, 99),
		faultstore.Room(f.Room), faultstore.LocalPrefix([]byte("p/")), faultstore.Always(),
	}
	ref := faultstore.New(crdt.NewMemStore(), nil)
	writeAll := func(s *faultstore.Store) []error {
		var errs []error
		for _, b := range f.Batches {
			errs = append(errs, s.Commit(b))
		}
		errs = append(errs, s.PurgeBody(f.Events[3].ID))
		errs = append(errs, s.PutLocal([]byte("p/x"), []byte("plain")), s.PutLocal([]byte("k/y"), []byte("key")))
		errs = append(errs, s.DeleteLocal([]byte("k/y")))
		return errs
	}
	for _, err := range writeAll(ref) {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := snapshot(t, ref, f.Room)
	for _, inj := range injectors {
		t.Run(inj.String(), func(t *testing.T) {
			s := faultstore.New(crdt.NewMemStore(), inj)
			failed := 0
			for i, b := range f.Batches {
				before := snapshot(t, s, f.Room)
				err := s.Commit(b)
				if err == nil {
					continue
				}
				failed++
				if !errors.Is(err, faultstore.ErrInjected) {
					t.Fatalf("%s: commit %d: %v", inj, i, err)
				}
				if after := snapshot(t, s, f.Room); after != before {
					t.Fatalf("%s: a failed commit changed the store:\n%s\n%s", inj, before, after)
				}
			}
			for _, w := range []func() error{
				func() error { return s.PurgeBody(f.Events[3].ID) },
				func() error { return s.PutLocal([]byte("p/x"), []byte("plain")) },
				func() error { return s.PutLocal([]byte("k/y"), []byte("key")) },
				func() error { return s.DeleteLocal([]byte("k/y")) },
			} {
				before := snapshot(t, s, f.Room)
				if err := w(); err != nil && !errors.Is(err, crdt.ErrNotFound) { // a purge of an event whose commit failed
					failed++
					if after := snapshot(t, s, f.Room); after != before || !errors.Is(err, faultstore.ErrInjected) {
						t.Fatalf("%s: failed write (%v) changed the store:\n%s\n%s", inj, err, before, after)
					}
				}
			}
			if failed == 0 || len(s.Faults()) != failed {
				t.Fatalf("%s: %d failures, %d recorded (%v)", inj, failed, len(s.Faults()), s.Faults())
			}
			s.Inject(nil)
			for _, err := range writeAll(s) {
				if err != nil {
					t.Fatalf("%s: pass-through: %v", inj, err)
				}
			}
			if got := snapshot(t, s, f.Room); got != want {
				t.Fatalf("%s: store after retry differs from a run without faults:\n%s\n%s", inj, got, want)
			}
		})
	}
}

func TestInjectorsPrintThemselves(t *testing.T) {
	got := []string{
		faultstore.NthCommit(4).String(), faultstore.Probability(0.25, 3).String(),
		faultstore.LocalPrefix([]byte("k/")).String(), faultstore.Always().String(),
	}
	want := []string{"fail commit #4", "fail writes with probability 0.25 (seed 3)", `fail local writes under "k/"`, "fail every write"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	s := faultstore.New(crdt.NewMemStore(), faultstore.NthCommit(1))
	f := storetest.NewFixture(t, "print", 1, 5)
	err := s.Commit(f.Batches[0])
	if err == nil || err.Error() != fmt.Sprintf("faultstore: injected fault: commit #1 of room %s (fail commit #1)", f.Room) {
		t.Fatalf("error %v", err)
	}
}
