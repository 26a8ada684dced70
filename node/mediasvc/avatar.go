package mediasvc

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/ipfs/go-cid"
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

// AvatarRef is an avatar image in the media store.
type AvatarRef struct {
	CID    string
	Key    string // KeyString
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
	if _, err := ParseKey(key); err != nil {
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
