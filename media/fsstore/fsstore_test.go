package fsstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/media/mediatest"
)

func TestConformance(t *testing.T) {
	mediatest.RunBlobStoreConformance(t, func(t *testing.T) (media.BlobStore, func(cid.Cid)) {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s, func(c cid.Cid) {
			p := s.path(c)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 {
				b = []byte{0}
			} else {
				b[len(b)/2] ^= 1
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// A torn write leaves a temporary file, never a block under its CID; List
// skips it and the next Open removes it.
func TestLeftoverTempIgnored(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ab"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ab", tmpPrefix+"123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.List(func(cid.Cid) bool { n++; return true }); err != nil || n != 0 {
		t.Fatalf("List = %d, %v", n, err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ab", tmpPrefix+"123")); !os.IsNotExist(err) {
		t.Fatalf("Open left the temporary file: %v", err)
	}
}
