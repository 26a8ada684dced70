package node

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/rooms"
)

// testPNG writes a w×h PNG into dir and returns its path and bytes.
func testPNG(t *testing.T, dir string, w, h int) (string, []byte) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 3), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "img.png")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, buf.Bytes()
}

// testMedia is a media component on a memory store whose clock the test
// moves.
func testMedia() (*mediasvc.Service, *time.Time) {
	m := mediasvc.New(nil, media.NewMemStore(), nil)
	now := time.Unix(1_000_000, 0)
	m.SetClock(func() time.Time { return now })
	return m, &now
}

func cidStrings(cs []cid.Cid) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.String())
	}
	return out
}

func holds(t *testing.T, m *mediasvc.Service, s string) bool {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := media.Missing(m.Store(), c)
	return err == nil && len(missing) == 0
}

// An avatar set through the media store is a reference (CID, key, MIME,
// dimensions) sealed in an encrypted room, readable by a member.
func TestAvatarMediaRef(t *testing.T) {
	b := newBus(t, 1, 2)
	room, _ := b.contentRoom(true)
	m, _ := testMedia()
	n := &Node{media: m}
	_, data := testPNG(t, t.TempDir(), 64, 48)
	link, err := n.importAvatar("", data)
	b.ok(err)
	if _, err := b.engines[0].setRoom(b.ctx, api.RoomSetReq{Room: room}, link); err != nil {
		t.Fatal(err)
	}
	if _, err := b.engines[1].profileSet(b.ctx, api.ProfileSetReq{}, link); err != nil {
		t.Fatal(err)
	}
	b.drain()
	info, err := b.engines[1].Info(b.ctx, api.RoomReq{Room: room})
	b.ok(err)
	a := info.AvatarMedia
	if a == nil || a.Width != 64 || a.Height != 48 || a.MIME != "image/png" || info.Avatar != a.CID+"#"+a.Key {
		t.Fatalf("room avatar %q %+v", info.Avatar, a)
	}
	p, err := b.engines[0].ProfileGet(b.ctx, api.UserReq{User: b.user(1)})
	b.ok(err)
	if p.AvatarMedia == nil || p.AvatarMedia.CID != a.CID {
		t.Fatalf("profile %+v", p)
	}
	// The key opens the blob.
	c, _ := cid.Decode(a.CID)
	k, err := mediasvc.ParseKey(a.Key)
	b.ok(err)
	if got := readBlob(t, m.Store(), c, k); !bytes.Equal(got, data) {
		t.Fatal("the avatar blob does not decrypt to the image")
	}
	// Sealed: the room's avatar event body does not hold the link.
	if bytes.Contains([]byte(b.engines[0].roomsAvatarBody(t, room)), []byte(a.CID)) {
		t.Fatal("the avatar link is in the clear in an encrypted room")
	}
	for _, bad := range []string{"", "parley:media/xyz#k", "bafy", "parley:media/" + a.CID + "?mime=image/png#!!"} {
		if _, ok := mediasvc.ParseAvatarRef(bad); ok {
			t.Fatalf("mediasvc.ParseAvatarRef(%q) ok", bad)
		}
	}
	if r, ok := mediasvc.ParseAvatarRef(link); !ok || r.String() != link {
		t.Fatalf("round trip %q: %+v", link, r)
	}
}

// Collection frees what nothing references: an upload past its grace
// period, and a message's file and thumbnail once it is redacted; avatars
// stay.
func TestMediaGC(t *testing.T) {
	b := newBus(t, 2, 2)
	room, _ := b.contentRoom(true)
	m, now := testMedia()
	n := &Node{media: m}
	dir := t.TempDir()
	path, data := testPNG(t, dir, 320, 240)
	file, thumb, err := m.Attach(path, false)
	b.ok(err)
	if thumb == nil {
		t.Fatal("no thumbnail")
	}
	sent, err := b.engines[0].SendFile(b.ctx, room, file, thumb, "")
	b.ok(err)
	link, err := n.importAvatar("", data)
	b.ok(err)
	avatar, _ := mediasvc.ParseAvatarRef(link)
	b.ok2(b.engines[0].setRoom(b.ctx, api.RoomSetReq{Room: room}, link))
	unsent, err := m.ImportBytes(bytes.NewReader(bytes.Repeat([]byte("unsent "), 100_000)))
	b.ok(err)
	b.drain()

	collect := func(e *Engine, grace time.Duration) api.MediaGCResp {
		t.Helper()
		var roots []cid.Cid
		b.ok(e.do(b.ctx, func() error { roots = e.mediaRoots(); return nil }))
		r, err := m.Collect(roots, grace)
		b.ok(err)
		return r
	}
	// The member's node finds the same references in the sealed events.
	var roots []cid.Cid
	b.ok(b.engines[1].do(b.ctx, func() error { roots = b.engines[1].mediaRoots(); return nil }))
	for _, want := range []string{file.CID, thumb.CID, avatar.CID} {
		if !slices.Contains(cidStrings(roots), want) {
			t.Fatalf("member's roots %v lack %s", cidStrings(roots), want)
		}
	}

	if r := collect(b.engines[0], api.MediaGCGrace); len(r.Blobs) != 0 || r.Blocks != 0 {
		t.Fatalf("collected within the grace period: %+v", r)
	}
	*now = now.Add(2 * api.MediaGCGrace)
	if r := collect(b.engines[0], api.MediaGCGrace); !slices.Equal(r.Blobs, []string{unsent.CID}) || r.Blocks < 1 {
		t.Fatalf("after the grace period: %+v, want the unsent upload %s", r, unsent.CID)
	}
	for _, c := range []string{file.CID, thumb.CID, avatar.CID} {
		if !holds(t, m, c) {
			t.Fatalf("%s was collected while referenced", c)
		}
	}

	b.ok2(b.engines[0].Redact(b.ctx, api.RedactReq{Room: room, Event: sent.Event}))
	b.drain()
	r := collect(b.engines[0], api.MediaGCGrace)
	want := []string{file.CID, thumb.CID}
	slices.Sort(want)
	if !slices.Equal(r.Blobs, want) {
		t.Fatalf("after the redaction: %+v, want %v", r, want)
	}
	if holds(t, m, file.CID) || holds(t, m, thumb.CID) || !holds(t, m, avatar.CID) {
		t.Fatal("wrong blobs left after the redaction")
	}
	if r := collect(b.engines[0], 0); r.Blocks != 0 {
		t.Fatalf("a second collection freed %+v", r)
	}
}

// roomsAvatarBody is the stored body of the room's avatar event.
func (e *Engine) roomsAvatarBody(t *testing.T, room string) string {
	t.Helper()
	var body []byte
	err := e.do(context.Background(), func() error {
		_, rc, err := e.roomOf(room)
		if err != nil {
			return err
		}
		id := rc.room.StateID(rooms.TypeAvatar, "")
		if id == "" {
			return errors.New("no avatar event")
		}
		s, err := e.store.Get(id)
		if err != nil {
			return err
		}
		body = s.Event.Body
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// The node's media loop collects on each tick of its clock, after the grace
// period, and stops with its context.
func TestMediaKeeperCollects(t *testing.T) {
	b := newBus(t, 3, 1)
	m, _ := testMedia()
	var clock atomic.Int64 // the loop reads it while the test moves it
	clock.Store(time.Unix(1_000_000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	m.SetClock(now)
	n := &Node{media: m, engine: b.engines[0], log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ref, err := m.ImportBytes(bytes.NewReader([]byte("an upload never sent")))
	b.ok(err)
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	done := make(chan error, 1)
	go func() { done <- n.keepMedia(ctx, tick) }()
	tick <- now()
	tick <- now() // the first tick is taken once the second is: collected by then
	if !holds(t, m, ref.CID) {
		t.Fatal("collected within the grace period")
	}
	clock.Add(int64(api.MediaGCGrace + time.Second))
	tick <- now()
	tick <- now()
	if holds(t, m, ref.CID) {
		t.Fatal("not collected after the grace period")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
