package badgerstore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

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
// the value to write (before dropping e/<id>, or after) is finished when
// the store opens again: the event is held, without its body, and the
// body's bytes are gone from the files.
func TestPurgeFinishedAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	f := storetest.NewFixture(t, "purge-crash-5c1e", 20, 7)
	for _, b := range f.Batches {
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	victim := f.Events[5]
	// As PurgeBody records it, then the "crash".
	stripped := appendEventValue(nil, crdt.StatusAccepted, "", victim.Envelope, nil)
	if err := s.PutLocal(purgingKey(victim.ID), stripped); err != nil {
		t.Fatal(err)
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
	if _, err := s.GetLocal(purgingKey(victim.ID)); !errors.Is(err, crdt.ErrNotFound) {
		t.Fatalf("purge record left: %v", err)
	}
	if n := len(scanAll(t, s, f.Room)); n != len(f.Events) {
		t.Fatalf("%d events scanned, want %d", n, len(f.Events))
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
