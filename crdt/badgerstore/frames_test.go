package badgerstore

import (
	"bytes"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/storetest"
)

// TestGetFrames: GetFrames returns, in order, what Get's event encodes to
// for every held id (a purged body included) and skips the ids not held.
func TestGetFrames(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	f := storetest.NewFixture(t, "frames", 20, 3)
	for _, b := range f.Batches {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PurgeBody(f.Events[4].ID); err != nil {
		t.Fatal(err)
	}
	var ids []crdt.EventID
	var want [][]byte
	for i, ev := range f.Events {
		ids = append(ids, ev.ID)
		if i == 7 {
			ids = append(ids, crdt.IDOf([]byte("not held")))
		}
		st, err := s.Get(ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, st.Event.Encode())
	}
	got, err := s.GetFrames(ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames for %d held events", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("frame %d differs from the stored event's encoding", i)
		}
		ev, err := crdt.Decode(got[i])
		if err != nil || ev.ID != f.Events[i].ID {
			t.Errorf("frame %d does not decode to its event: %v", i, err)
		}
	}
}
