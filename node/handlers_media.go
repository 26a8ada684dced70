package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media/fsstore"
	"github.com/parley-p2p/parley/node/mediasvc"
)

// mediaDir is the blob store's folder in the home.
const mediaDir = "media"

// registerMedia opens the blob store under HOME/media and binds the media
// methods. serveMedia runs the protocol.
func (n *Node) registerMedia(h host.Host) {
	store, err := fsstore.Open(filepath.Join(n.cfg.Home, mediaDir))
	if err != nil {
		n.mediaErr = fmt.Errorf("open media store: %w", err)
		Handle(n.api, api.EpRoomSet, n.engine.SetRoom) // serveMedia stops the node
		Handle(n.api, api.EpProfileSet, n.engine.ProfileSet)
		return
	}
	n.media = mediasvc.New(h, store, n.log)
	n.media.SetRelayPolicy(n.sharesRoom)
	Handle(n.api, api.EpMediaAdd, n.media.Add)
	Handle(n.api, api.EpMediaGet, n.mediaGet)
	Handle(n.api, api.EpMediaSave, n.mediaSave)
	Handle(n.api, api.EpMediaGC, n.mediaGC)
	// Avatars go into the media store (avatars.go).
	Handle(n.api, api.EpRoomSet, n.setRoom)
	Handle(n.api, api.EpProfileSet, n.setProfile)
}

// mediaGet is Media.Get, with the key, when none is given, from a message
// that refers to the blob.
func (n *Node) mediaGet(ctx context.Context, req api.MediaGetReq) (api.MediaGetResp, error) {
	if req.Key == "" {
		key, err := n.engine.mediaKey(ctx, req.CID)
		if err != nil {
			return api.MediaGetResp{}, err
		}
		req.Key = key
	}
	p, done := n.progress.start(req.Progress)
	defer done()
	var pr mediasvc.Progress // a nil *progress would be a non-nil Progress
	if p != nil {
		pr = p
	}
	return n.media.Get(ctx, req, pr)
}

// mediaSave writes the file of a media message, decrypted with the key the
// message carries.
func (n *Node) mediaSave(ctx context.Context, req api.MediaSaveReq) (api.MediaSaveResp, error) {
	mm, err := n.engine.messageFile(ctx, req.Room, req.Event)
	if err != nil {
		return api.MediaSaveResp{}, err
	}
	out := req.Out
	if out == "" {
		dir, err := absPath(req.Dir, "folder to save into")
		if err != nil {
			return api.MediaSaveResp{}, err
		}
		out = filepath.Join(dir, saveName(mm.Name))
		if _, err := os.Lstat(out); err == nil {
			return api.MediaSaveResp{}, errorf(api.KindInvalid, "%s exists (name another file with -o FILE)", out)
		}
	}
	r, err := n.media.Get(ctx, api.MediaGetReq{CID: mm.CID, Key: mm.Key, Out: out}, nil)
	if err != nil {
		return api.MediaSaveResp{}, err
	}
	return api.MediaSaveResp{CID: r.CID, Size: r.Size, Path: out}, nil
}

// saveName makes the name a sender gave a file safe as a file name in a
// folder: no folders, no leading dot, no control characters.
func saveName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(filepath.Base(name), ".")
	if name == "" || name == "/" {
		return "file"
	}
	return name
}

// serveMedia runs the component registerMedia made until ctx is done.
func (n *Node) serveMedia(ctx context.Context) error {
	if n.media == nil {
		return errors.Join(errors.New("media: not registered"), n.mediaErr)
	}
	t := time.NewTicker(mediasvc.GCEvery)
	defer t.Stop()
	done := make(chan error, 1)
	go func() { done <- n.keepMedia(ctx, t.C) }()
	err := n.media.Serve(ctx)
	return errors.Join(err, <-done)
}
