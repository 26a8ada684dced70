package media

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Errors of block stores and of block verification.
var (
	ErrNotFound = errors.New("media: block not found")
	// ErrCorrupt: a block read back does not hash to its CID.
	ErrCorrupt = errors.New("media: stored block does not match its CID")
	// ErrMismatch: a block given (to Put, or received from a peer) does
	// not hash to the CID it was given with.
	ErrMismatch = errors.New("media: block does not match its CID")
	// ErrBadCID: not a CIDv1 with sha2-256 and the raw or DAG-CBOR codec.
	ErrBadCID   = errors.New("media: unsupported CID")
	ErrTooLarge = errors.New("media: block too large")
)

// MaxBlockSize bounds every block a store accepts.
const MaxBlockSize = 2 << 20

// BlockCID returns the CIDv1 (sha2-256) of data with the given codec
// (cid.Raw for ciphertext blocks, cid.DagCBOR for manifests).
func BlockCID(codec uint64, data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	return cidOf(codec, sum[:])
}

func cidOf(codec uint64, digest []byte) cid.Cid {
	m, err := mh.Encode(digest, mh.SHA2_256)
	if err != nil {
		panic(err) // a 32-octet sha2-256 digest always encodes
	}
	return cid.NewCidV1(codec, m)
}

// digestOf returns the sha2-256 digest c names, checking that c is a kind
// of CID this package uses.
func digestOf(c cid.Cid) ([]byte, error) {
	if !c.Defined() || c.Version() != 1 || (c.Type() != cid.Raw && c.Type() != cid.DagCBOR) {
		return nil, ErrBadCID
	}
	d, err := mh.Decode(c.Hash())
	if err != nil || d.Code != mh.SHA2_256 || len(d.Digest) != sha256.Size {
		return nil, ErrBadCID
	}
	return d.Digest, nil
}

// VerifyBlock checks that data hashes to c; it returns ErrMismatch if not.
// Use it on every block received from a peer.
func VerifyBlock(c cid.Cid, data []byte) error {
	d, err := digestOf(c)
	if err != nil {
		return err
	}
	if len(data) > MaxBlockSize {
		return ErrTooLarge
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], d) {
		return fmt.Errorf("%w: %s", ErrMismatch, c)
	}
	return nil
}

// BlobStore holds content-addressed blocks. Implementations are safe for
// concurrent use, copy what they are given and return copies (the caller
// owns every slice), and pass mediatest.RunBlobStoreConformance.
type BlobStore interface {
	// Put stores data under c. It returns ErrMismatch (and stores
	// nothing) if data does not hash to c, ErrBadCID for unsupported CIDs
	// and ErrTooLarge above MaxBlockSize. Putting a held block again is a
	// no-op.
	Put(c cid.Cid, data []byte) error
	// Get returns the block c. It re-hashes what it read and returns
	// ErrCorrupt on a mismatch, ErrNotFound when c is not held.
	Get(c cid.Cid) ([]byte, error)
	// Has reports whether c is held (without verifying it).
	Has(c cid.Cid) (bool, error)
	// Delete removes c; deleting a block that is not held is no error.
	Delete(c cid.Cid) error
	// List calls fn for every held block, in no particular order, until
	// fn returns false. fn must not call into the store.
	List(fn func(cid.Cid) bool) error
}

// MemStore is an in-memory BlobStore.
type MemStore struct {
	mu     sync.RWMutex
	blocks map[string][]byte // by c.KeyString()
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{blocks: map[string][]byte{}} }

// Put implements BlobStore.
func (s *MemStore) Put(c cid.Cid, data []byte) error {
	if err := VerifyBlock(c, data); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blocks[c.KeyString()]; !ok {
		s.blocks[c.KeyString()] = bytes.Clone(data)
	}
	return nil
}

// Get implements BlobStore.
func (s *MemStore) Get(c cid.Cid) ([]byte, error) {
	d, err := digestOf(c)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	data, ok := s.blocks[c.KeyString()]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], d) {
		return nil, fmt.Errorf("%w: %s", ErrCorrupt, c)
	}
	return bytes.Clone(data), nil
}

// Has implements BlobStore.
func (s *MemStore) Has(c cid.Cid) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.blocks[c.KeyString()]
	return ok, nil
}

// Delete implements BlobStore.
func (s *MemStore) Delete(c cid.Cid) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocks, c.KeyString())
	return nil
}

// List implements BlobStore.
func (s *MemStore) List(fn func(cid.Cid) bool) error {
	s.mu.RLock()
	keys := make([]string, 0, len(s.blocks))
	for k := range s.blocks {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	for _, k := range keys {
		c, err := cid.Cast([]byte(k))
		if err != nil {
			return err
		}
		if !fn(c) {
			return nil
		}
	}
	return nil
}

// Corrupt flips one bit of a held block, for tests of verify-on-read.
func (s *MemStore) Corrupt(c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blocks[c.KeyString()]
	switch {
	case !ok:
	case len(b) > 0:
		b[len(b)/2] ^= 1
	default:
		s.blocks[c.KeyString()] = []byte{0}
	}
}
