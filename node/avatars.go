package node

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
)

// Avatars of rooms and users live in the media store like any attachment:
// `room set --avatar` and `profile set --avatar` import the image
// (encrypted under a fresh file key, addressed by the CID of the
// ciphertext), and the room.avatar or profile event carries an avatar link
// naming the blob, its key, MIME type and dimensions. In an encrypted room
// those events are sealed, so the key travels only to members. Older
// avatars (the ID of a `blob` event holding the image inline) stay readable:
// they are shown as they are.

// avatarScheme prefixes an avatar link:
// parley:media/CID?mime=M&width=W&height=H#KEY.
const avatarScheme = "parley:media/"

// maxAvatarFile bounds an avatar image read into memory for its dimensions.
const maxAvatarFile = 16 << 20

// AvatarRef is an avatar image in the media store.
type AvatarRef struct {
	CID    string
	Key    string // MediaKeyString
	MIME   string
	Width  uint32
	Height uint32
}

// String is the avatar link carried by room.avatar and profile events.
func (a AvatarRef) String() string {
	q := url.Values{}
	q.Set("mime", a.MIME)
	q.Set("width", strconv.FormatUint(uint64(a.Width), 10))
	q.Set("height", strconv.FormatUint(uint64(a.Height), 10))
	return avatarScheme + a.CID + "?" + q.Encode() + "#" + a.Key
}

// ParseAvatarRef reads an avatar link; ok is false for anything else (an
// old blob event ID, or garbage).
func ParseAvatarRef(s string) (AvatarRef, bool) {
	rest, ok := strings.CutPrefix(s, avatarScheme)
	if !ok {
		return AvatarRef{}, false
	}
	rest, key, _ := strings.Cut(rest, "#")
	id, query, _ := strings.Cut(rest, "?")
	c, err := cid.Decode(id)
	if err != nil {
		return AvatarRef{}, false
	}
	if _, err := parseMediaCID(c.Bytes()); err != nil {
		return AvatarRef{}, false
	}
	if _, err := ParseMediaKey(key); err != nil {
		return AvatarRef{}, false
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return AvatarRef{}, false
	}
	w, _ := strconv.ParseUint(q.Get("width"), 10, 32)
	h, _ := strconv.ParseUint(q.Get("height"), 10, 32)
	return AvatarRef{CID: c.String(), Key: key, MIME: q.Get("mime"), Width: uint32(w), Height: uint32(h)}, true
}

// avatarOut is the API form of an avatar value: CID#KEY (what `media get`
// takes) and the reference for a media avatar; the value itself for an old
// blob avatar.
func avatarOut(v string) (string, *api.AvatarMedia) {
	a, ok := ParseAvatarRef(v)
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
		f, err := openRegular(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, maxAvatarFile+1)); err != nil {
			return "", errorf(api.KindInvalid, "cannot read %s: %v", path, unwrapPathErr(err))
		}
		if len(data) > maxAvatarFile {
			return "", errorf(api.KindInvalid, "the avatar %s is larger than %d MiB", path, maxAvatarFile>>20)
		}
	}
	img, err := media.ImageInfo(data)
	if err != nil {
		return "", errorf(api.KindInvalid, "avatar must be a PNG, JPEG or GIF image")
	}
	ref, err := n.media.importBytes(strings.NewReader(string(data)))
	if err != nil {
		return "", err
	}
	k, err := media.FileKeyFromBytes(ref.Key)
	if err != nil {
		return "", err
	}
	return AvatarRef{CID: ref.CID, Key: MediaKeyString(k), MIME: img.MIME, Width: uint32(img.Width), Height: uint32(img.Height)}.String(), nil
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
func (e *Engine) avatarRefs() []AvatarRef {
	var out []AvatarRef
	add := func(v string) {
		if a, ok := ParseAvatarRef(v); ok {
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
	var refs []AvatarRef
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
		if missing, err := media.Missing(n.media.store, c); err == nil && len(missing) == 0 {
			continue
		}
		if t, ok := failed[a.CID]; ok && time.Since(t) < mediaAvatarRecheck {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, mediaIdle)
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
