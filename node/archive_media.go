package node

import (
	"context"
	"fmt"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
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
	return n.engine.export(ctx, req, n.media.ArchiveBlocks, p)
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
		if err := n.media.PutBlocks(a.Media); err != nil {
			return api.ImportResp{}, fmt.Errorf("store media block of %s: %w", path, err)
		}
	}
	resp, err := n.engine.importArchive(ctx, path, a, p)
	resp.Blocks = len(a.Media)
	return resp, err
}
