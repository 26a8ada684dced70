package fsstore

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/parley-p2p/parley/media"
)

// Files of every size class round-trip through Import and NewReader on
// the disk store: empty, one octet, one chunk, one chunk and one octet,
// several chunks, one block, several blocks.
func TestImportReadRoundTrip(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := media.NewFileKey(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	oneBlock := media.ChunksPerBlock * media.ChunkSize
	for _, n := range []int{0, 1, media.ChunkSize, media.ChunkSize + 1, 3*media.ChunkSize + 5, oneBlock, 2*oneBlock + 1} {
		pt := make([]byte, n)
		_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(pt)
		blob, err := media.Import(s, bytes.NewReader(pt), key)
		if err != nil {
			t.Fatalf("size %d: import: %v", n, err)
		}
		if blob.Size != int64(n) || blob.CiphertextSize != media.CiphertextSize(int64(n)) {
			t.Fatalf("size %d: blob %+v", n, blob)
		}
		if miss, err := media.Missing(s, blob.Root); err != nil || len(miss) != 0 {
			t.Fatalf("size %d: missing %d blocks (%v)", n, len(miss), err)
		}
		r, err := media.NewReader(s, blob.Root, key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: read back %d octets, %v", n, len(got), err)
		}
	}
}
