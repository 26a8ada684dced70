package media_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/media/mediatest"
)

func TestMemStoreConformance(t *testing.T) {
	mediatest.RunBlobStoreConformance(t, func(t *testing.T) (media.BlobStore, func(cid.Cid)) {
		s := media.NewMemStore()
		return s, s.Corrupt
	})
}

func key(t testing.TB, seed byte) media.FileKey {
	k, err := media.NewFileKey(rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func data(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8)}).Read(b)
	return b
}

func TestImportRead(t *testing.T) {
	k := key(t, 1)
	oneBlock := media.ChunksPerBlock * media.ChunkSize
	for _, n := range []int{0, 1, media.ChunkSize, oneBlock - 1, oneBlock, oneBlock + 1, 5<<20 + 17} {
		s := media.NewMemStore()
		pt := data(n)
		blob, err := media.Import(s, bytes.NewReader(pt), k)
		if err != nil {
			t.Fatal(err)
		}
		ct, _ := media.Seal(k, pt)
		if blob.Size != int64(n) || blob.CiphertextSize != int64(len(ct)) || blob.Hash != sha256.Sum256(ct) {
			t.Errorf("size %d: blob %+v", n, blob)
		}
		blocks, err := media.Blocks(s, blob.Root)
		if err != nil {
			t.Fatal(err)
		}
		wantBlocks := (len(ct) + media.BlockSize - 1) / media.BlockSize
		if len(blocks) != wantBlocks {
			t.Errorf("size %d: %d blocks, want %d", n, len(blocks), wantBlocks)
		}
		if wantBlocks == 1 && (blob.Root != blob.ContentCID() || blob.Root.Type() != cid.Raw) {
			t.Errorf("size %d: single-block root %s is not the ciphertext's raw CID %s", n, blob.Root, blob.ContentCID())
		}
		if wantBlocks > 1 && blob.Root.Type() != cid.DagCBOR {
			t.Errorf("size %d: root codec %x", n, blob.Root.Type())
		}
		r, err := media.NewReader(s, blob.Root, k)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("size %d: read back %d octets, %v", n, len(got), err)
		}
		cr, _ := media.NewCiphertextReader(s, blob.Root)
		gotCT, err := io.ReadAll(cr)
		if err != nil || !bytes.Equal(gotCT, ct) {
			t.Fatalf("size %d: ciphertext differs: %v", n, err)
		}
		if r, _ := media.NewReader(s, blob.Root, key(t, 2)); r != nil {
			if _, err := io.ReadAll(r); !errors.Is(err, media.ErrDecrypt) {
				t.Errorf("size %d: wrong key: %v", n, err)
			}
		}
	}
}

// A blind host holds only ciphertext: no block contains a run of the
// plaintext.
func TestBlocksAreCiphertext(t *testing.T) {
	s := media.NewMemStore()
	pt := bytes.Repeat([]byte("PLAINTEXT-MARKER "), 200_000)
	if _, err := media.Import(s, bytes.NewReader(pt), key(t, 3)); err != nil {
		t.Fatal(err)
	}
	_ = s.List(func(c cid.Cid) bool {
		b, _ := s.Get(c)
		if bytes.Contains(b, []byte("PLAINTEXT-MARKER")) {
			t.Errorf("block %s holds plaintext", c)
		}
		return true
	})
}

// A transfer from a host to a fetcher, interrupted and resumed, driven by
// Missing and verified on Put.
func TestResumableTransfer(t *testing.T) {
	host, fetcher := media.NewMemStore(), media.NewMemStore()
	k := key(t, 4)
	pt := data(5 << 20)
	blob, err := media.Import(host, bytes.NewReader(pt), k)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(limit int) int {
		got := 0
		for got < limit {
			missing, err := media.Missing(fetcher, blob.Root)
			if err != nil {
				t.Fatal(err)
			}
			if len(missing) == 0 {
				break
			}
			b, err := host.Get(missing[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := fetcher.Put(missing[0], b); err != nil {
				t.Fatal(err)
			}
			got++
		}
		return got
	}
	if n := fetch(3); n != 3 { // manifest + 2 blocks, then the link drops
		t.Fatalf("fetched %d", n)
	}
	if _, err := media.NewReader(fetcher, blob.Root, k); err != nil {
		t.Fatal(err)
	}
	missing, _ := media.Missing(fetcher, blob.Root)
	if len(missing) != 3 { // 5 MiB: 5 blocks of 1 MiB plaintext each
		t.Fatalf("after interruption %d blocks missing, want 3", len(missing))
	}
	// A peer sending a wrong block is caught before it is stored.
	if err := fetcher.Put(missing[0], []byte("garbage")); !errors.Is(err, media.ErrMismatch) {
		t.Fatalf("wrong block: %v", err)
	}
	fetch(100)
	r, _ := media.NewReader(fetcher, blob.Root, k)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("resumed transfer: %v", err)
	}
}

func TestCorruptBlockOnRead(t *testing.T) {
	s := media.NewMemStore()
	k := key(t, 5)
	blob, _ := media.Import(s, bytes.NewReader(data(3<<20)), k)
	blocks, _ := media.Blocks(s, blob.Root)
	s.Corrupt(blocks[1])
	r, _ := media.NewReader(s, blob.Root, k)
	if _, err := io.ReadAll(r); !errors.Is(err, media.ErrCorrupt) {
		t.Fatalf("corrupt block: err = %v", err)
	}
	s.Corrupt(blob.Root)
	if _, err := media.NewReader(s, blob.Root, k); !errors.Is(err, media.ErrCorrupt) {
		t.Fatalf("corrupt manifest: err = %v", err)
	}
}

func TestGC(t *testing.T) {
	s := media.NewMemStore()
	k := key(t, 6)
	big1, _ := media.Import(s, bytes.NewReader(data(3<<20)), k)
	big2, _ := media.Import(s, bytes.NewReader(data(2<<20+5)), k)
	small, _ := media.Import(s, bytes.NewReader(data(100)), k)
	count := func() int {
		n := 0
		_ = s.List(func(cid.Cid) bool { n++; return true })
		return n
	}
	b1, _ := media.Blocks(s, big1.Root)
	if total := count(); len(b1) != 3 || total != 4+4+1 { // manifests + 3 blocks each, 1 small
		t.Fatalf("store holds %d blocks (%d in big1)", total, len(b1))
	}
	drop, err := media.Unreferenced(s, []cid.Cid{big1.Root, big2.Root, small.Root})
	if err != nil || len(drop) != 0 {
		t.Fatalf("everything referenced, yet %d unreferenced (%v)", len(drop), err)
	}
	b2, _ := media.Blocks(s, big2.Root)
	n, err := media.Collect(s, []cid.Cid{big1.Root, small.Root})
	if err != nil || n != len(b2)+1 {
		t.Fatalf("collected %d, want %d (%v)", n, len(b2)+1, err)
	}
	for _, root := range []cid.Cid{big1.Root, small.Root} {
		if missing, err := media.Missing(s, root); err != nil || len(missing) != 0 {
			t.Fatalf("kept blob lost blocks: %v %v", missing, err)
		}
	}
	// A corrupt manifest of a kept root stops the collection.
	s.Corrupt(big1.Root)
	if _, err := media.Collect(s, []cid.Cid{big1.Root}); err == nil {
		t.Fatal("collected around a corrupt manifest")
	}
	if _, err := media.Collect(s, nil); err != nil || count() != 0 {
		t.Fatalf("collecting with no roots left %d blocks (%v)", count(), err)
	}
}

// Import and read of 64 MiB allocate about a block, not the file.
func TestImportMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	const n = 64 << 20
	s := &discardStore{MemStore: media.NewMemStore()}
	k := key(t, 7)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	blob, err := media.Import(s, io.LimitReader(rand.NewChaCha8([32]byte{1}), n), k)
	runtime.ReadMemStats(&after)
	if err != nil || blob.Size != n {
		t.Fatalf("import: %+v %v", blob, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("importing 64 MiB allocated %d MiB", alloc>>20)
	}
}

// discardStore keeps only manifests, so that the memory test measures
// Import, not the store.
type discardStore struct{ *media.MemStore }

func (d *discardStore) Put(c cid.Cid, b []byte) error {
	if c.Type() == cid.Raw {
		return media.VerifyBlock(c, b)
	}
	return d.MemStore.Put(c, b)
}
