package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/mimi"
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
// (media_relay.go), a cache collected once the grace period is over.

// Defaults of the collection.
const (
	mediaGCEvery = 30 * time.Minute // how often the node collects on its own
)

// touch records that root was added or fetched now.
func (m *Media) touch(root cid.Cid) {
	m.touchMu.Lock()
	m.touched[root.KeyString()] = m.now()
	m.touchMu.Unlock()
}

// recent returns the roots touched within grace and forgets the others.
func (m *Media) recent(grace time.Duration) []cid.Cid {
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

// collect deletes the blocks that neither roots nor the blobs touched
// within grace reach. It waits for the imports, fetches and reads in
// progress, and holds new ones off until it is done. It returns the blobs
// it freed (manifests, and single blocks no freed manifest lists) and how
// many blocks it deleted.
func (m *Media) collect(roots []cid.Cid, grace time.Duration) (api.MediaGCResp, error) {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	keep := append(slices.Clone(roots), m.recent(grace)...)
	drop, err := media.Unreferenced(m.store, keep)
	if err != nil {
		return api.MediaGCResp{}, fmt.Errorf("collect media: %w", err)
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
			return resp, fmt.Errorf("collect media: delete %s: %w", c, err)
		}
		resp.Blocks++
	}
	return resp, nil
}

// mediaRoots lists the blobs the rooms this node keeps refer to: the
// attachments and thumbnails of messages not redacted, and the media
// avatars. Engine goroutine.
func (e *Engine) mediaRoots() []cid.Cid {
	var out []cid.Cid
	add := func(s string) {
		if c, err := cid.Decode(s); err == nil {
			out = append(out, c)
		}
	}
	for _, a := range e.avatarRefs() {
		add(a.CID)
	}
	for id, rc := range e.rooms {
		e.roomMediaRoots(id, rc, add)
	}
	return out
}

// roomMediaRoots calls add with the CID of every attachment and thumbnail
// of the room's messages not redacted (every version). Engine goroutine.
func (e *Engine) roomMediaRoots(id crdt.RoomID, rc *roomCtl, add func(cid string)) {
	if rc.room == nil {
		return
	}
	for _, evID := range rc.log.Order() {
		if rc.room.Redacted(evID) {
			continue
		}
		s, err := e.store.Get(evID)
		if err != nil || s.Event.Type != rooms.TypeMessage {
			continue
		}
		body, ok := e.contentOf(id, rc, s.Event)
		if !ok {
			continue
		}
		c, err := mimi.Decode(body)
		if err != nil {
			continue
		}
		for _, p := range c.MediaParts() {
			add(p.Ref.CID)
			if p.Thumbnail != nil {
				add(p.Thumbnail.CID)
			}
		}
	}
}

// collectMedia runs one collection with the given grace period.
func (n *Node) collectMedia(ctx context.Context, grace time.Duration) (api.MediaGCResp, error) {
	if n.media == nil {
		return api.MediaGCResp{}, errorf(api.KindUnavailable, "the media store is not open")
	}
	var roots []cid.Cid
	if err := n.engine.do(ctx, func() error { roots = n.engine.mediaRoots(); return nil }); err != nil {
		return api.MediaGCResp{}, err
	}
	return n.media.collect(roots, grace)
}

// mediaGC is the API method media/gc.
func (n *Node) mediaGC(ctx context.Context, req api.MediaGCReq) (api.MediaGCResp, error) {
	grace := api.MediaGCGrace
	if req.GraceMS != nil {
		if *req.GraceMS < 0 {
			return api.MediaGCResp{}, errorf(api.KindInvalid, "the grace period must not be negative")
		}
		grace = time.Duration(*req.GraceMS) * time.Millisecond
	}
	return n.collectMedia(ctx, grace)
}

// mediaAvatarRecheck: how often the node looks for avatars to fetch besides
// when events arrive (a sealed avatar becomes readable when its key does).
const mediaAvatarRecheck = time.Minute

// keepMedia fetches the avatars this node learns of (as events arrive) and
// collects unreferenced blobs on each tick of gc, until ctx is done.
func (n *Node) keepMedia(ctx context.Context, gc <-chan time.Time) error {
	wake := make(chan struct{}, 1)
	wake <- struct{}{} // a first look at start
	done := make(chan struct{})
	defer func() { <-done }()
	go func() { defer close(done); n.watchForAvatars(ctx, wake) }()
	failed := map[string]time.Time{} // avatars whose fetch failed, by CID
	recheck := time.NewTicker(mediaAvatarRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
			n.fetchAvatars(ctx, failed)
		case <-recheck.C:
			n.fetchAvatars(ctx, failed)
		case <-gc:
			r, err := n.collectMedia(ctx, api.MediaGCGrace)
			switch {
			case errors.Is(err, ErrClosed) || ctx.Err() != nil:
				return nil
			case err != nil:
				n.log.Warn("media: collect", "err", err)
			case r.Blocks > 0:
				n.log.Info("media: collected", "blobs", len(r.Blobs), "blocks", r.Blocks)
			}
		}
	}
}

// watchForAvatars pokes wake whenever an event shows in any room, until ctx
// is done.
// mayChangeAvatars reports whether a watched item can name a new avatar: a
// room avatar, a profile or a membership event, or a key event (a sealed
// avatar whose key comes later becomes readable then). Messages, receipts
// and signals cannot, and each look rebuilds every room's state, so they do
// not trigger one; the periodic recheck catches anything else.
func mayChangeAvatars(it api.WatchItem) bool {
	if it.Kind == api.WatchResync { // items were left out: any of them may have
		return true
	}
	if it.Kind != "event" || it.Event == nil {
		return false
	}
	switch it.Event.Type {
	case rooms.TypeAvatar, rooms.TypeProfile, rooms.TypeMember:
		return true
	case rooms.TypeRotate, rooms.TypeKeyFwd:
		// A key that arrives after a sealed avatar makes it readable:
		// look now rather than at the next minute's recheck.
		return true
	}
	return false
}

func (n *Node) watchForAvatars(ctx context.Context, wake chan<- struct{}) {
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	for {
		ch, stop, err := n.engine.Watch(ctx, "")
		if err != nil {
			return
		}
	read:
		for {
			select {
			case <-ctx.Done():
				stop()
				return
			case it, ok := <-ch:
				if !ok { // fell behind: watch again
					break read
				}
				if mayChangeAvatars(it) {
					poke()
				}
			}
		}
		stop()
		poke()
	}
}
