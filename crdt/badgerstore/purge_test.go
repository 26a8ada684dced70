package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/storetest"
)

// filesContaining lists the files below dir whose bytes contain marker.
func filesContaining(t *testing.T, dir string, marker []byte) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, marker) {
			hits = append(hits, filepath.Base(path))
		}
		return nil
	})
	return hits
}

// TestPurgeBodyLeavesNoBytes checks that a purged body is gone from every
// file of the store, while the rest of the store is intact.
func TestPurgeBodyLeavesNoBytes(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	defer s.Close()
	f := storetest.NewFixture(t, "purge-marker-7f3a", 20, 7)
	for _, b := range f.Batches {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	victim := f.Events[5]
	marker := victim.Body
	if hits := filesContaining(t, dir, marker); len(hits) == 0 {
		t.Fatalf("body %q not on disk before the purge: the check would prove nothing", marker)
	}
	if err := s.PurgeBody(victim.ID); err != nil {
		t.Fatal(err)
	}
	if hits := filesContaining(t, dir, marker); len(hits) > 0 {
		t.Fatalf("body %q still in %v after PurgeBody", marker, hits)
	}
	got, err := s.Get(victim.ID)
	if err != nil || got.Event.Body != nil {
		t.Fatalf("purged event: %v, body %q", err, got.Event.Body)
	}
	other, err := s.Get(f.Events[6].ID)
	if err != nil || !bytes.Equal(other.Event.Body, f.Events[6].Body) {
		t.Fatalf("neighbour damaged: %v", err)
	}
	// And after a restart.
	s.Close()
	s = open(t, dir)
	defer s.Close()
	if got, err := s.Get(victim.ID); err != nil || got.Event.Body != nil {
		t.Fatalf("after reopen: %v, body %q", err, got.Event.Body)
	}
}

// TestPurgeFinishedAtOpen: a purge that a crash cut after it recorded
// what it would write is finished when the store opens again: the event
// is held, without its body, and the body's bytes are gone from the
// files. In layout 2 the record is the value to write (before dropping
// e/<id>, or after); in layout 3 the event's record is rewritten and the
// body's place recorded, and the crash comes before the zeros.
func TestPurgeFinishedAtOpen(t *testing.T) {
	for _, layout := range []int{2, 3} {
		t.Run(fmt.Sprintf("layout%d", layout), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir)
			f := storetest.NewFixture(t, "purge-crash-5c1e", 20, 7)
			for _, b := range f.Batches {
				if layout == 2 {
					writeLayout2(t, s, b)
				} else if err := s.Commit(b); err != nil {
					t.Fatal(err)
				}
			}
			victim := f.Events[5]
			record := purgingKey(victim.ID)
			if layout == 2 {
				// As PurgeBody records it, then the "crash".
				stripped := appendEventValue(nil, crdt.StatusAccepted, "", victim.Envelope, nil)
				if err := s.PutLocal(record, stripped); err != nil {
					t.Fatal(err)
				}
			} else {
				record = zeroingKey(victim.ID)
				v := segValueOf(t, s, victim.ID)
				if _, err := s.recordPurgeSegment(victim.ID, v, victim.Envelope); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			if hits := filesContaining(t, dir, victim.Body); len(hits) == 0 {
				t.Fatal("body not on disk before the purge is finished: the check would prove nothing")
			}
			s = open(t, dir)
			defer s.Close()
			if hits := filesContaining(t, dir, victim.Body); len(hits) > 0 {
				t.Fatalf("body still in %v after the open finished the purge", hits)
			}
			got, err := s.Get(victim.ID)
			if err != nil || got.Event.Body != nil || got.Status != crdt.StatusAccepted {
				t.Fatalf("purged event: %v, body %q", err, got.Event.Body)
			}
			if _, err := s.GetLocal(record); !errors.Is(err, crdt.ErrNotFound) {
				t.Fatalf("purge record left: %v", err)
			}
			if n := len(scanAll(t, s, f.Room)); n != len(f.Events) {
				t.Fatalf("%d events scanned, want %d", n, len(f.Events))
			}
		})
	}
}

// segValueOf reads the e/<id> value of layout 3 of id.
func segValueOf(t *testing.T, s *Store, id crdt.EventID) segValue {
	t.Helper()
	var v segValue
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(eventKey(id))
		if err != nil {
			return err
		}
		if item.UserMeta() != layoutSegment {
			return fmt.Errorf("event %s not of layout 3", id)
		}
		return item.Value(func(raw []byte) error {
			v, err = splitSegValue(bytes.Clone(raw))
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// writeLayout2 writes a batch as the store of layout 2 did (every event's
// bytes in its e/<id> value).
func writeLayout2(t *testing.T, s *Store, b crdt.Batch) {
	t.Helper()
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, st := range b.Events {
			sets := eventEntries(b.Room, st)
			for i := range sets {
				if err := txn.SetEntry(&sets[i]); err != nil {
					return err
				}
			}
		}
		if err := txn.Set(roomKey(b.Room), nil); err != nil {
			return err
		}
		return writeHeads(txn, b)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzEventValue: splitting any bytes as a layout 2 value gives an error
// or fields that write back to a value that splits the same.
func FuzzEventValue(f *testing.F) {
	f.Add(appendEventValue(nil, crdt.StatusRejected, "why", []byte{0xa9, 1}, []byte("body")))
	f.Add(appendEventValue(nil, crdt.StatusAccepted, "", []byte{0xa9}, nil))
	f.Fuzz(func(t *testing.T, v []byte) {
		ev, err := splitEventValue(v)
		if err != nil {
			return
		}
		again, err := splitEventValue(appendEventValue(nil, ev.status, string(ev.reason), ev.env, ev.body))
		if err != nil || again.status != ev.status || !bytes.Equal(again.reason, ev.reason) || !bytes.Equal(again.env, ev.env) ||
			!bytes.Equal(again.body, ev.body) || (again.body == nil) != (ev.body == nil) {
			t.Fatalf("%x: %+v, written back %+v, %v", v, ev, again, err)
		}
	})
}
