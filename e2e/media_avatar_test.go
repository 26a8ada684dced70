package e2e

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	pngenc "image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestMediaAvatarsAndGC: room and profile avatars go through the media
// store (an encrypted room with a blind host): members see the reference
// with its dimensions, fetch the image in the background and keep it for
// offline use; `media gc` frees a redacted message's file and thumbnail
// and nothing that is still referenced.
func TestMediaAvatarsAndGC(t *testing.T) {
	t.Parallel()
	a, h, b := trio(t, true)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "avatars")
	room := rr.Room
	h.must(nil, "room", "host", room, "--via", a.addr)
	a.must(nil, "room", "invite", room, b.user)
	b.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")

	dir := t.TempDir()
	avatar := pngFile(t, dir, "room.png", 96, 64)
	face := pngFile(t, dir, "face.png", 32, 32)
	a.must(nil, "room", "set", room, "--avatar", filepath.Join(dir, "room.png"))
	b.must(nil, "profile", "set", "--avatar", filepath.Join(dir, "face.png"))

	var info api.RoomInfoResp
	eventually(t, govTimeout, "B sees the room avatar", func() error {
		if err := b.try(&info, "room", "info", room); err != nil {
			return err
		}
		if a := info.AvatarMedia; a == nil || a.Width != 96 || a.Height != 64 || a.MIME != "image/png" || info.Avatar != a.CID+"#"+a.Key {
			return fmt.Errorf("avatar %q %+v", info.Avatar, a)
		}
		return nil
	})
	var prof api.ProfileResp
	eventually(t, govTimeout, "A sees B's avatar", func() error {
		if err := a.try(&prof, "profile", "get", b.user); err != nil {
			return err
		}
		if p := prof.AvatarMedia; p == nil || p.Width != 32 || p.Height != 32 {
			return fmt.Errorf("profile %+v", prof)
		}
		return nil
	})
	// Fetched in the background: the blocks land in the stores.
	waitBlock(t, b, info.AvatarMedia.CID)
	waitBlock(t, a, prof.AvatarMedia.CID)

	// The blind host learns nothing of the avatars.
	var hinfo api.RoomInfoResp
	h.must(&hinfo, "room", "info", room)
	if hinfo.Avatar != "" || hinfo.AvatarMedia != nil {
		t.Fatalf("the host reads the avatar: %q %+v", hinfo.Avatar, hinfo.AvatarMedia)
	}

	// Collection: a message's file and thumbnail live while it does.
	var sf api.SendFileResp
	a.must(&sf, "send-file", room, filepath.Join(dir, "room.png"))
	msg := acceptMedia(t, b, room, sf.Event)
	var gc api.MediaGCResp
	a.must(&gc, "media", "gc", "--grace", "0")
	if len(gc.Blobs) != 0 {
		t.Fatalf("gc freed referenced blobs: %+v", gc)
	}
	a.must(nil, "redact", room, sf.Event)
	a.must(&gc, "media", "gc", "--grace", "0")
	want := []string{msg.CID, msg.ThumbnailCID}
	slices.Sort(want)
	if !slices.Equal(gc.Blobs, want) || gc.Blocks < 2 {
		t.Fatalf("gc after the redaction freed %+v, want %v", gc, want)
	}
	a.must(&gc, "media", "gc")
	if len(gc.Blobs) != 0 {
		t.Fatalf("a second gc freed %+v", gc)
	}
	if r := a.run("", "media", "gc", "--grace", "-1s"); r.code == 0 {
		t.Fatalf("a negative grace: %v", r)
	}

	// Offline: with A gone, B still has the room avatar, and A kept B's.
	a.stop()
	out := filepath.Join(t.TempDir(), "avatar.png")
	b.must(nil, "media", "get", info.Avatar, "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, avatar) {
		t.Fatalf("the room avatar differs (%v)", err)
	}
	a.start()
	a.must(nil, "media", "get", prof.Avatar, "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, face) {
		t.Fatalf("B's avatar differs (%v)", err)
	}
}

// pngFile writes a w×h PNG named name into dir and returns its bytes.
func pngFile(t *testing.T, dir, name string, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 5), uint8(y * 9), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := pngenc.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// waitBlock waits until d's media store holds the block c (a small blob's
// only block), in the store's layout HOME/media/LAST2/CID.
func waitBlock(t *testing.T, d *daemon, c string) {
	t.Helper()
	p := filepath.Join(d.home, "media", c[len(c)-2:], c)
	eventually(t, govTimeout, d.name+" stores "+c, func() error {
		_, err := os.Stat(p)
		return err
	})
}
