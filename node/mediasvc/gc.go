package mediasvc

import (
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
)

// Media garbage collection. A blob (its manifest and blocks) is deleted
// when nothing this node keeps refers to it: no message attachment or
// thumbnail (of a message not redacted) and no avatar, in any room this node
// keeps, nor this user's own avatar. Two kinds of blob survive anyway:
// those this node added or fetched within the grace period (an upload not
// sent yet, a fetch for a message whose key has not arrived, a block pulled
// through for a peer), and those being imported, fetched or read right now
// (gcMu). A node that cannot decrypt a message (a blind host) never learns
// its CIDs: the media it holds is what it pulled through for members
// (relay.go), a cache collected once the grace period is over.

// Defaults of the collection.
const (
	GCEvery = 30 * time.Minute // how often the node collects on its own
)

// touch records that root was added or fetched now.
func (m *Service) touch(root cid.Cid) {
	m.touchMu.Lock()
	m.touched[root.KeyString()] = m.now()
	m.touchMu.Unlock()
}

// recent returns the roots touched within grace and forgets the others.
func (m *Service) recent(grace time.Duration) []cid.Cid {
	m.touchMu.Lock()
	defer m.touchMu.Unlock()
	now := m.now()
	var out []cid.Cid
	for k, t := range m.touched {
		if now.Sub(t) < grace {
			if c, err := cid.Cast([]byte(k)); err == nil {
				out = append(out, c)
				continue
			}
		}
		delete(m.touched, k)
	}
	return out
}

// Collect deletes the blocks that neither roots nor the blobs touched
// within grace reach. It waits for the imports, fetches and reads in
// progress, and holds new ones off until it is done. It returns the blobs
// it freed (manifests, and single blocks no freed manifest lists) and how
// many blocks it deleted.
func (m *Service) Collect(roots []cid.Cid, grace time.Duration) (api.MediaGCResp, error) {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	keep := append(slices.Clone(roots), m.recent(grace)...)
	drop, err := media.Unreferenced(m.store, keep)
	if err != nil {
		return api.MediaGCResp{}, fmt.Errorf("Collect media: %w", err)
	}
	chunks := map[string]bool{}
	for _, c := range drop {
		if c.Type() != cid.DagCBOR {
			continue
		}
		blocks, err := media.Blocks(m.store, c)
		if err != nil {
			continue // a corrupt manifest of a dead blob: deleted all the same
		}
		for _, b := range blocks {
			chunks[b.KeyString()] = true
		}
	}
	resp := api.MediaGCResp{Blobs: []string{}}
	for _, c := range drop {
		if !chunks[c.KeyString()] {
			resp.Blobs = append(resp.Blobs, c.String())
		}
	}
	slices.Sort(resp.Blobs)
	for _, c := range drop {
		if err := m.store.Delete(c); err != nil {
			return resp, fmt.Errorf("Collect media: delete %s: %w", c, err)
		}
		resp.Blocks++
	}
	return resp, nil
}

// SetClock replaces the clock of the grace period (tests). Call it before
// the service is used.
func (m *Service) SetClock(now func() time.Time) { m.now = now }
