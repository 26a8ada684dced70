package badgerstore

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

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
