package node

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/archive"
	"github.com/parley-p2p/parley/media"
)

// Archives with media (docs/protocol.md §7): export adds the blocks of
// every blob the room's messages reference (files and thumbnails), as
// stored (ciphertext; the file keys exist only inside the messages, sealed
// in an encrypted room); import stores them before taking in the events,
// so that a fresh node opens every image offline.

// export is the API method export: the archive with media unless
// req.NoMedia.
func (n *Node) export(ctx context.Context, req api.ExportReq) (api.ExportResp, error) {
	p, done := n.progress.start(req.Progress)
	defer done()
	if req.NoMedia || n.media == nil {
		return n.engine.export(ctx, req, nil, p)
	}
	return n.engine.export(ctx, req, n.media.archiveBlocks, p)
}

// exportRoots lists the root CIDs of the blobs the room's messages
// reference, each once, in log order.
func (e *Engine) exportRoots(room crdt.RoomID, rc *roomCtl) []string {
	seen := map[string]bool{}
	var out []string
	e.roomMediaRoots(room, rc, func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	})
	return out
}

// archiveBlocks reads the blocks of the blobs roots from the store. A
// blob this node does not hold whole (never fetched) is left out.
func (m *Media) archiveBlocks(roots []string) ([]archive.Block, int, error) {
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

// importArchive is the API method import: the media blocks first (each
// checked against its CID by the store), then the events.
func (n *Node) importArchive(ctx context.Context, req api.ImportReq) (api.ImportResp, error) {
	p, done := n.progress.start(req.Progress)
	defer done()
	path, a, err := readArchive(req.Path)
	if err != nil {
		return api.ImportResp{}, err
	}
	if len(a.Media) > 0 && n.media == nil {
		return api.ImportResp{}, errorf(api.KindUnavailable, "the media store is not open")
	}
	if len(a.Media) > 0 {
		n.media.gcMu.RLock()
		for _, b := range a.Media {
			c, err := cid.Cast(b.CID)
			if err == nil {
				err = n.media.store.Put(c, b.Data)
			}
			if err != nil {
				n.media.gcMu.RUnlock()
				return api.ImportResp{}, fmt.Errorf("store media block of %s: %w", path, err)
			}
			n.media.touch(c) // kept through the grace period, until the messages refer to it
		}
		n.media.gcMu.RUnlock()
	}
	resp, err := n.engine.importArchive(ctx, path, a, p)
	resp.Blocks = len(a.Media)
	return resp, err
}
