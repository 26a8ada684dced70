package media

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// Block layout.
const (
	ChunksPerBlock = 16
	// BlockSize is the ciphertext octets of every block but the last
	// (1 MiB of plaintext); blocks start on chunk boundaries.
	BlockSize = ChunksPerBlock * SealedChunkSize
	// MaxBlocks bounds a manifest (64 GiB of plaintext).
	MaxBlocks = 1 << 16
)

// ErrManifest is returned for a manifest that does not decode or does not
// fit the ciphertext it describes.
var ErrManifest = errors.New("media: malformed manifest")

// Blob describes a stored encrypted file.
type Blob struct {
	// Root names the blob: the single block of a small blob (then equal
	// to ContentCID), or the manifest of a larger one.
	Root cid.Cid
	// Hash is the SHA-256 of the whole ciphertext: MIMI's contentHash
	// (hashAlg 1) and the digest of ContentCID.
	Hash           [32]byte
	Size           int64 // plaintext octets
	CiphertextSize int64
}

// ContentCID is the CIDv1 (raw, sha2-256) of the whole ciphertext.
func (b Blob) ContentCID() cid.Cid { return cidOf(cid.Raw, b.Hash[:]) }

// manifest is the root block of a blob of more than one block, encoded as
// DAG-CBOR (string keys in length-first order, links as tag 42).
type manifest struct {
	Version int        `cbor:"v"`
	Size    int64      `cbor:"size"` // ciphertext octets
	Hash    []byte     `cbor:"hash"` // SHA-256 of the whole ciphertext
	Blocks  []cbor.Tag `cbor:"blocks"`
}

var (
	manifestEnc = func() cbor.EncMode {
		m, err := cbor.CanonicalEncOptions().EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	manifestDec = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			IndefLength:       cbor.IndefLengthForbidden,
			ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
			MaxArrayElements:  MaxBlocks,
			MaxNestedLevels:   4,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

func link(c cid.Cid) cbor.Tag { return cbor.Tag{Number: 42, Content: append([]byte{0}, c.Bytes()...)} }

func encodeManifest(size int64, hash []byte, blocks []cid.Cid) ([]byte, error) {
	m := manifest{Version: 1, Size: size, Hash: hash, Blocks: make([]cbor.Tag, len(blocks))}
	for i, c := range blocks {
		m.Blocks[i] = link(c)
	}
	return manifestEnc.Marshal(m)
}

type decodedManifest struct {
	size   int64
	hash   []byte
	blocks []cid.Cid
}

func decodeManifest(b []byte) (*decodedManifest, error) {
	var m manifest
	if err := manifestDec.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if again, err := manifestEnc.Marshal(m); err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("%w: not canonical", ErrManifest)
	}
	n := int64(len(m.Blocks))
	if m.Version != 1 || len(m.Hash) != sha256.Size || n < 2 || n > MaxBlocks ||
		m.Size <= (n-1)*BlockSize || m.Size > n*BlockSize {
		return nil, fmt.Errorf("%w: fields do not fit", ErrManifest)
	}
	if _, err := PlaintextSize(m.Size); err != nil {
		return nil, fmt.Errorf("%w: impossible ciphertext size", ErrManifest)
	}
	d := &decodedManifest{size: m.Size, hash: m.Hash, blocks: make([]cid.Cid, n)}
	for i, t := range m.Blocks {
		raw, ok := t.Content.([]byte)
		if t.Number != 42 || !ok || len(raw) < 1 || raw[0] != 0 {
			return nil, fmt.Errorf("%w: bad link", ErrManifest)
		}
		c, err := cid.Cast(raw[1:])
		if err != nil || c.Type() != cid.Raw {
			return nil, fmt.Errorf("%w: bad link", ErrManifest)
		}
		if _, err := digestOf(c); err != nil {
			return nil, fmt.Errorf("%w: bad link", ErrManifest)
		}
		d.blocks[i] = c
	}
	return d, nil
}

// blockWriter cuts ciphertext into blocks and puts them into a store.
type blockWriter struct {
	store  BlobStore
	buf    []byte
	blocks []cid.Cid
	hash   hash.Hash
	size   int64
}

func (w *blockWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.hash.Write(p)
	w.size += int64(n)
	for len(p) > 0 {
		if len(w.buf) == BlockSize {
			if err := w.flush(); err != nil {
				return 0, err
			}
		}
		k := copy(w.buf[len(w.buf):BlockSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
	}
	return n, nil
}

func (w *blockWriter) flush() error {
	c := BlockCID(cid.Raw, w.buf)
	if err := w.store.Put(c, w.buf); err != nil {
		return fmt.Errorf("put block %d: %w", len(w.blocks), err)
	}
	w.blocks = append(w.blocks, c)
	w.buf = w.buf[:0]
	if len(w.blocks) > MaxBlocks {
		return errors.New("media: file too large")
	}
	return nil
}

// Import encrypts the plaintext read from r with key and stores it in
// blocks. It reads and writes block by block: memory stays near one block
// whatever the size of r. On error, blocks already put stay in the store
// until a garbage collection.
func Import(store BlobStore, r io.Reader, key FileKey) (Blob, error) {
	bw := &blockWriter{store: store, buf: make([]byte, 0, BlockSize), hash: sha256.New()}
	ew, err := NewEncryptWriter(bw, key)
	if err != nil {
		return Blob{}, err
	}
	buf := make([]byte, ChunkSize)
	n, err := io.CopyBuffer(ew, onlyReader{r}, buf)
	if err != nil {
		return Blob{}, fmt.Errorf("media: import: %w", err)
	}
	if err := ew.Close(); err != nil {
		return Blob{}, fmt.Errorf("media: import: %w", err)
	}
	if err := bw.flush(); err != nil {
		return Blob{}, fmt.Errorf("media: import: %w", err)
	}
	b := Blob{Size: n, CiphertextSize: bw.size}
	copy(b.Hash[:], bw.hash.Sum(nil))
	if len(bw.blocks) == 1 {
		b.Root = bw.blocks[0]
		return b, nil
	}
	m, err := encodeManifest(bw.size, b.Hash[:], bw.blocks)
	if err != nil {
		return Blob{}, err
	}
	b.Root = BlockCID(cid.DagCBOR, m)
	if err := store.Put(b.Root, m); err != nil {
		return Blob{}, fmt.Errorf("media: import: put manifest: %w", err)
	}
	return b, nil
}

// onlyReader hides WriterTo/ReaderFrom so that io.CopyBuffer uses the
// bounded buffer.
type onlyReader struct{ io.Reader }

// Blocks returns the blocks of the blob root, in order: root itself for a
// single-block blob, the manifest's list otherwise. It needs the root
// block (not the others).
func Blocks(store BlobStore, root cid.Cid) ([]cid.Cid, error) {
	switch root.Type() {
	case cid.Raw:
		if _, err := digestOf(root); err != nil {
			return nil, err
		}
		return []cid.Cid{root}, nil
	case cid.DagCBOR:
		b, err := store.Get(root)
		if err != nil {
			return nil, err
		}
		m, err := decodeManifest(b)
		if err != nil {
			return nil, err
		}
		return m.blocks, nil
	}
	return nil, ErrBadCID
}

// Missing returns what store still lacks of the blob root, in fetch
// order: just the root if the manifest itself is missing (ask again after
// fetching it), else the blocks not held. An empty result means the blob
// is complete. Fetching what Missing returns, verifying each block
// (VerifyBlock, or Put does it) and asking again resumes an interrupted
// transfer.
func Missing(store BlobStore, root cid.Cid) ([]cid.Cid, error) {
	if root.Type() == cid.DagCBOR {
		ok, err := store.Has(root)
		if err != nil {
			return nil, err
		}
		if !ok {
			return []cid.Cid{root}, nil
		}
	}
	blocks, err := Blocks(store, root)
	if err != nil {
		return nil, err
	}
	var missing []cid.Cid
	for _, c := range blocks {
		ok, err := store.Has(c)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, c)
		}
	}
	return missing, nil
}

// cipherReader reads a blob's ciphertext block by block, verifying each
// block on read and the whole-ciphertext hash at the end.
type cipherReader struct {
	store  BlobStore
	blocks []cid.Cid
	want   []byte // whole-ciphertext SHA-256, for manifests
	size   int64  // expected ciphertext octets, for manifests
	hash   hash.Hash
	read   int64
	cur    []byte
}

func (r *cipherReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if len(r.blocks) == 0 {
			if r.want != nil && (r.read != r.size || !bytes.Equal(r.hash.Sum(nil), r.want)) {
				return 0, fmt.Errorf("%w: ciphertext does not match the manifest", ErrCorrupt)
			}
			return 0, io.EOF
		}
		b, err := r.store.Get(r.blocks[0])
		if err != nil {
			return 0, err
		}
		last := len(r.blocks) == 1
		if r.want != nil && ((!last && len(b) != BlockSize) || (last && int64(len(b)) != r.size-r.read)) {
			return 0, fmt.Errorf("%w: block %s has %d octets", ErrCorrupt, r.blocks[0], len(b))
		}
		r.blocks = r.blocks[1:]
		r.cur = b
		if r.hash != nil {
			r.hash.Write(b)
		}
		r.read += int64(len(b))
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// NewCiphertextReader returns the ciphertext of the blob root as stored,
// verifying every block (for serving or exporting it).
func NewCiphertextReader(store BlobStore, root cid.Cid) (io.Reader, error) {
	r := &cipherReader{store: store}
	switch root.Type() {
	case cid.Raw:
		if _, err := digestOf(root); err != nil {
			return nil, err
		}
		r.blocks = []cid.Cid{root}
	case cid.DagCBOR:
		b, err := store.Get(root)
		if err != nil {
			return nil, err
		}
		m, err := decodeManifest(b)
		if err != nil {
			return nil, err
		}
		r.blocks, r.want, r.size, r.hash = m.blocks, m.hash, m.size, sha256.New()
	default:
		return nil, ErrBadCID
	}
	return r, nil
}

// Size returns the plaintext octets of the blob root, reading only its
// root block (the manifest, or the single raw block).
func Size(store BlobStore, root cid.Cid) (int64, error) {
	if _, err := digestOf(root); err != nil {
		return 0, err
	}
	b, err := store.Get(root)
	if err != nil {
		return 0, err
	}
	c := int64(len(b))
	if root.Type() == cid.DagCBOR {
		m, err := decodeManifest(b)
		if err != nil {
			return 0, err
		}
		c = m.size
	}
	return PlaintextSize(c)
}

// NewReader returns the plaintext of the blob root, decrypted with key
// and verified block by block and chunk by chunk as it streams. All blocks
// must be in store (see Missing).
func NewReader(store BlobStore, root cid.Cid, key FileKey) (io.Reader, error) {
	cr, err := NewCiphertextReader(store, root)
	if err != nil {
		return nil, err
	}
	return NewDecryptReader(cr, key)
}
