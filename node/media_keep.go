package node

import (
	"context"
	"errors"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// The node's side of the media service (node/mediasvc): what the engine
// refers to (kept by collection, avatars fetched ahead), the keeper loop,
// the API method media/gc, and the pull-through policy.

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
	return n.media.Collect(roots, grace)
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

// sharesRoom is the node's pull-through policy (relayPolicy).
func (n *Node) sharesRoom(ctx context.Context, p peer.ID) bool {
	return relayPolicy(n.engine)(ctx, p)
}

// relayPolicy allows pull-through for a peer whose device is announced by
// a user with a membership in a room e keeps.
func relayPolicy(e *Engine) func(ctx context.Context, p peer.ID) bool {
	return func(ctx context.Context, p peer.ID) bool {
		dev, err := deviceOfPeer(p)
		if err != nil {
			return false
		}
		_, ok := e.UserOfDevice(ctx, dev)
		return ok
	}
}

// deviceOfPeer is the device key behind a peer ID.
func deviceOfPeer(p peer.ID) (crdt.DeviceID, error) {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return crdt.DeviceID{}, errors.New("peer key is not an Ed25519 device key")
	}
	raw, err := pub.Raw()
	if err != nil || len(raw) != 32 {
		return crdt.DeviceID{}, errors.New("peer key is not an Ed25519 device key")
	}
	return crdt.KeyFromBytes(raw)
}
