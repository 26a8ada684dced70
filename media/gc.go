package media

import (
	"errors"

	"github.com/ipfs/go-cid"
)

// Unreferenced returns the blocks in store that no blob in roots reaches:
// what a garbage collection may delete. Roots are the blobs still referenced
// by messages, avatars, exports or transfers in progress (an import's blocks
// are unreferenced until its root is). A root whose manifest is missing
// keeps nothing but itself; a root whose manifest is corrupt stops the
// collection (ErrCorrupt or ErrManifest), so that a damaged store never
// loses the blocks of a live blob.
func Unreferenced(store BlobStore, roots []cid.Cid) ([]cid.Cid, error) {
	keep := make(map[string]bool)
	for _, r := range roots {
		keep[r.KeyString()] = true
		if r.Type() != cid.DagCBOR {
			continue
		}
		blocks, err := Blocks(store, r)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, b := range blocks {
			keep[b.KeyString()] = true
		}
	}
	var drop []cid.Cid
	err := store.List(func(c cid.Cid) bool {
		if !keep[c.KeyString()] {
			drop = append(drop, c)
		}
		return true
	})
	return drop, err
}

// Collect deletes the blocks Unreferenced returns and says how many.
func Collect(store BlobStore, roots []cid.Cid) (int, error) {
	drop, err := Unreferenced(store, roots)
	if err != nil {
		return 0, err
	}
	for i, c := range drop {
		if err := store.Delete(c); err != nil {
			return i, err
		}
	}
	return len(drop), nil
}
