package node

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/internal/clientfile"
	"github.com/parley-p2p/parley/node/mediasvc"
)

// Avatars live in the media store (node/mediasvc/avatar.go has the avatar
// link): these wire the API's room/set and profile/set to it, and fetch
// the avatars of the rooms this node keeps ahead of time.

// maxAvatarFile bounds an avatar image read into memory for its dimensions.
const maxAvatarFile = 16 << 20

// avatarOut is the API form of an avatar value: CID#KEY (what `media get`
// takes) and the reference for a media avatar; the value itself for an old
// blob avatar.
func avatarOut(v string) (string, *api.AvatarMedia) {
	a, ok := mediasvc.ParseAvatarRef(v)
	if !ok {
		return v, nil
	}
	return a.CID + "#" + a.Key, &api.AvatarMedia{CID: a.CID, Key: a.Key, MIME: a.MIME, Width: a.Width, Height: a.Height}
}

// importAvatar stores the image at path (or data, when path is empty) in
// the media store and returns its link.
func (n *Node) importAvatar(path string, data []byte) (string, error) {
	if n.media == nil {
		return "", errorf(api.KindUnavailable, "the media store is not open")
	}
	if path != "" {
		if !filepath.IsAbs(path) {
			return "", errorf(api.KindInvalid, "avatar path %q is not absolute", path)
		}
		f, err := clientfile.OpenRegular(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, maxAvatarFile+1)); err != nil {
			return "", errorf(api.KindInvalid, "cannot read %s: %v", path, clientfile.UnwrapPathErr(err))
		}
		if len(data) > maxAvatarFile {
			return "", errorf(api.KindInvalid, "the avatar %s is larger than %d MiB", path, maxAvatarFile>>20)
		}
	}
	img, err := media.ImageInfo(data)
	if err != nil {
		return "", errorf(api.KindInvalid, "avatar must be a PNG, JPEG or GIF image")
	}
	ref, err := n.media.ImportBytes(strings.NewReader(string(data)))
	if err != nil {
		return "", err
	}
	k, err := media.FileKeyFromBytes(ref.Key)
	if err != nil {
		return "", err
	}
	return mediasvc.AvatarRef{CID: ref.CID, Key: mediasvc.KeyString(k), MIME: img.MIME, Width: uint32(img.Width), Height: uint32(img.Height)}.String(), nil
}

// setRoom is room/set with the avatar imported into the media store.
func (n *Node) setRoom(ctx context.Context, req api.RoomSetReq) (api.EventResp, error) {
	if req.AvatarPath == "" && req.Avatar == nil {
		return n.engine.SetRoom(ctx, req)
	}
	if _, err := crdt.ParseID(req.Room); err != nil {
		return api.EventResp{}, errorf(api.KindInvalid, "%q is not a room ID", req.Room)
	}
	if _, _, err := n.engine.roomOfChecked(ctx, req.Room); err != nil {
		return api.EventResp{}, err
	}
	link, err := n.importAvatar(req.AvatarPath, req.Avatar)
	if err != nil {
		return api.EventResp{}, err
	}
	req.AvatarPath, req.Avatar = "", nil
	return n.engine.setRoom(ctx, req, link)
}

// setProfile is profile/set with the avatar imported into the media store.
func (n *Node) setProfile(ctx context.Context, req api.ProfileSetReq) (api.ProfileResp, error) {
	if req.AvatarPath == "" && req.Avatar == nil {
		return n.engine.ProfileSet(ctx, req)
	}
	link, err := n.importAvatar(req.AvatarPath, req.Avatar)
	if err != nil {
		return api.ProfileResp{}, err
	}
	req.AvatarPath, req.Avatar = "", nil
	return n.engine.profileSet(ctx, req, link)
}

// avatarRefs lists the media avatars of the rooms this node keeps (the
// rooms' and their members'), and this user's own. Engine goroutine.
func (e *Engine) avatarRefs() []mediasvc.AvatarRef {
	var out []mediasvc.AvatarRef
	add := func(v string) {
		if a, ok := mediasvc.ParseAvatarRef(v); ok {
			out = append(out, a)
		}
	}
	add(e.prefs.AvatarLink)
	for _, rc := range e.rooms {
		if rc.room == nil {
			continue
		}
		st := e.stateOf(rc)
		add(st.Avatar)
		for _, m := range st.Members {
			add(m.Avatar)
		}
	}
	return out
}

// fetchAvatars fetches the media avatars not held yet, so that they show
// offline. A failure is logged and recorded in failed (by CID): that avatar
// is tried again only after mediaAvatarRecheck.
func (n *Node) fetchAvatars(ctx context.Context, failed map[string]time.Time) {
	var refs []mediasvc.AvatarRef
	if err := n.engine.do(ctx, func() error { refs = n.engine.avatarRefs(); return nil }); err != nil {
		return
	}
	seen := map[string]bool{}
	for _, a := range refs {
		if seen[a.CID] {
			continue
		}
		seen[a.CID] = true
		c, err := cid.Decode(a.CID)
		if err != nil {
			continue
		}
		if missing, err := media.Missing(n.media.Store(), c); err == nil && len(missing) == 0 {
			continue
		}
		if t, ok := failed[a.CID]; ok && time.Since(t) < mediaAvatarRecheck {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, mediasvc.Idle)
		err = n.media.Fetch(fctx, c)
		cancel()
		switch {
		case err == nil:
			delete(failed, a.CID)
		case ctx.Err() == nil:
			failed[a.CID] = time.Now()
			n.log.Debug("media: fetch avatar", "cid", a.CID, "err", fmt.Sprint(err))
		}
	}
	for k, t := range failed {
		if time.Since(t) > 10*mediaAvatarRecheck {
			delete(failed, k) // no longer referenced, or long given up
		}
	}
}
