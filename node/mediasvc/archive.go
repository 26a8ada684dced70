package mediasvc

import (
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/crdt/archive"
	"github.com/parley-p2p/parley/media"
)

// ArchiveBlocks reads the blocks of the blobs roots from the store. A
// blob this node does not hold whole (never fetched) is left out.
func (m *Service) ArchiveBlocks(roots []string) ([]archive.Block, int, error) {
	var out []archive.Block
	blobs := 0
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	for _, s := range roots {
		root, err := cid.Decode(s)
		if err != nil {
			continue // a message naming a malformed CID
		}
		if missing, err := media.Missing(m.store, root); err != nil || len(missing) > 0 {
			continue
		}
		list := []cid.Cid{}
		if root.Type() == cid.DagCBOR {
			list = append(list, root)
		}
		bs, err := media.Blocks(m.store, root)
		if err != nil {
			return nil, 0, fmt.Errorf("media %s: %w", root, err)
		}
		list = append(list, bs...)
		for _, c := range list {
			b, err := m.store.Get(c)
			if err != nil {
				return nil, 0, fmt.Errorf("media block %s: %w", c, err)
			}
			out = append(out, archive.Block{CID: c.Bytes(), Data: b})
		}
		blobs++
	}
	return out, blobs, nil
}

// PutBlocks stores the media blocks of an archive (Put checks each against
// its CID), touched so that they are kept through the grace period, until
// the archive's messages, imported next, refer to them.
func (m *Service) PutBlocks(blocks []archive.Block) error {
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	for _, b := range blocks {
		c, err := cid.Cast(b.CID)
		if err == nil {
			err = m.store.Put(c, b.Data)
		}
		if err != nil {
			return err
		}
		m.touch(c) // kept through the grace period, until the messages refer to it
	}
	return nil
}
