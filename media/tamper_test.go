package media

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/ipfs/go-cid"
)

// blockPlain is the plaintext one full block carries.
const blockPlain = ChunksPerBlock * ChunkSize

// craftManifest stores a well-formed manifest listing blocks in the given
// order, with the size and hash of their concatenation: what a malicious
// sender could build from blocks it holds. Only decryption can tell.
func craftManifest(t *testing.T, s BlobStore, blocks []cid.Cid) cid.Cid {
	t.Helper()
	h := sha256.New()
	var size int64
	for _, c := range blocks {
		b, err := s.Get(c)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
		size += int64(len(b))
	}
	m, err := encodeManifest(size, h.Sum(nil), blocks)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeManifest(m); err != nil {
		t.Fatalf("crafted manifest does not decode: %v", err)
	}
	root := BlockCID(cid.DagCBOR, m)
	if err := s.Put(root, m); err != nil {
		t.Fatal(err)
	}
	return root
}

// readAll decrypts the blob root and returns its plaintext and the error
// that ended the read.
func readAll(t *testing.T, s BlobStore, root cid.Cid, key FileKey) ([]byte, error) {
	t.Helper()
	r, err := NewReader(s, root, key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// Blocks that are each authentic (they hash to their CIDs) but tampered
// with, dropped, reordered or repeated under a well-formed manifest are
// rejected when decrypting: the chunk counter and last-chunk flag bind
// every chunk to its place in the file.
func TestBlobTamperedTruncatedReorderedBlocks(t *testing.T) {
	key := testKey(t, 20)
	pt := payload(3*blockPlain+100, 21) // 4 blocks, the last short
	s := NewMemStore()
	blob, err := Import(s, bytes.NewReader(pt), key)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Blocks(s, blob.Root)
	if err != nil || len(blocks) != 4 {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	if got, err := readAll(t, s, blob.Root, key); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("untouched blob: %v", err)
	}
	if again := craftManifest(t, s, blocks); again != blob.Root {
		t.Fatalf("the crafted manifest of the original order is not the original root")
	}

	// A block with one flipped bit, re-addressed under its new CID.
	b1, _ := s.Get(blocks[1])
	b1[len(b1)/3] ^= 0x40
	tampered := BlockCID(cid.Raw, b1)
	if err := s.Put(tampered, b1); err != nil {
		t.Fatal(err)
	}
	// The last block one octet short (a short block where a full one
	// belongs already breaks the manifest's size rules).
	last, _ := s.Get(blocks[3])
	cutLast := BlockCID(cid.Raw, last[:len(last)-1])
	if err := s.Put(cutLast, last[:len(last)-1]); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		blocks []cid.Cid
	}{
		{"tampered block", []cid.Cid{blocks[0], tampered, blocks[2], blocks[3]}},
		{"reordered blocks", []cid.Cid{blocks[1], blocks[0], blocks[2], blocks[3]}},
		{"last block dropped (truncated on a block boundary)", blocks[:3]},
		{"middle block dropped", []cid.Cid{blocks[0], blocks[2], blocks[3]}},
		{"block repeated", []cid.Cid{blocks[0], blocks[0], blocks[1], blocks[2], blocks[3]}},
		{"last block cut short", []cid.Cid{blocks[0], blocks[1], blocks[2], cutLast}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := craftManifest(t, s, c.blocks)
			got, err := readAll(t, s, root, key)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v, want ErrDecrypt", err)
			}
			if !bytes.HasPrefix(pt, got) {
				t.Fatal("the reader returned plaintext that is not the file's")
			}
		})
	}
}

// A single-block blob whose ciphertext is truncated (on a chunk boundary,
// and elsewhere), extended or has two chunks swapped, then re-addressed,
// does not decrypt.
func TestSingleBlockTamperedTruncatedReordered(t *testing.T) {
	key := testKey(t, 22)
	pt := payload(3*ChunkSize+7, 23)
	s := NewMemStore()
	blob, err := Import(s, bytes.NewReader(pt), key)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := s.Get(blob.Root)
	if err != nil {
		t.Fatal(err)
	}
	swapped := bytes.Clone(ct)
	copy(swapped[:SealedChunkSize], ct[SealedChunkSize:2*SealedChunkSize])
	copy(swapped[SealedChunkSize:2*SealedChunkSize], ct[:SealedChunkSize])
	flipped := bytes.Clone(ct)
	flipped[2*SealedChunkSize+5] ^= 1
	for name, bad := range map[string][]byte{
		"truncated to 3 chunks": ct[:3*SealedChunkSize],
		"truncated to 1 chunk":  ct[:SealedChunkSize],
		"truncated mid-chunk":   ct[:len(ct)-3],
		"extended":              append(bytes.Clone(ct), ct[:SealedChunkSize]...),
		"chunks swapped":        swapped,
		"bit flipped":           flipped,
	} {
		root := BlockCID(cid.Raw, bad)
		if err := s.Put(root, bad); err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, s, root, key)
		if !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
		}
		if !bytes.HasPrefix(pt, got) {
			t.Errorf("%s: the reader returned plaintext that is not the file's", name)
		}
	}
}
