package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	pngenc "image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// The acceptance of issue 5 (messaging content) through the CLI, in an
// encrypted room whose two members meet only through a blind host:
// Markdown arrives rendered and sanitized with a plain body; replies and
// threads; edits (and the refusal to edit another user's message);
// reactions aggregated and withdrawn; a read receipt, typing and presence;
// bad input refused without a change.
func TestContentAcceptance(t *testing.T) {
	t.Parallel()
	a, h, b := trio(t, false) // a - h - b
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "content")
	room := rr.Room
	hostAndJoin(t, a, h, b, room)
	w := startWatch(t, a, room)

	// Markdown: rendered, sanitized, with a plain body.
	var ev api.EventResp
	a.must(&ev, "send", room, "**bold** move <script>alert(1)</script> <img src=x onerror=alert(2)>", "--markdown")
	root := ev.Event
	m := waitMessage(t, b, room, root, func(m api.TimelineEvent) bool { return m.Decrypted && m.HTML != "" })
	if !strings.Contains(m.HTML, "<strong>bold</strong>") || strings.Contains(m.HTML, "<script") || strings.Contains(m.HTML, "<img") {
		t.Fatalf("html %q", m.HTML)
	}
	if !strings.HasPrefix(m.Body, "bold move") || m.Formatted != m.HTML {
		t.Fatalf("body %q formatted %q", m.Body, m.Formatted)
	}

	// A reply and two thread replies.
	b.must(&ev, "send", room, "a reply", "--reply-to", root)
	reply := ev.Event
	b.must(&ev, "send", room, "thread from b", "--thread", root)
	t1 := ev.Event
	waitMessage(t, a, room, t1, nil)
	a.must(&ev, "send", room, "thread from a", "--thread", root)
	t2 := ev.Event
	if m := waitMessage(t, a, room, reply, nil); m.ReplyTo != root {
		t.Fatalf("reply_to %q, want %q", m.ReplyTo, root)
	}
	var th api.HistoryResp
	a.must(&th, "history", room, "--thread", root)
	var ids []string
	for _, e := range th.Events {
		ids = append(ids, e.ID)
	}
	if len(ids) != 3 || ids[0] != root || !slices.Contains(ids, t1) || !slices.Contains(ids, t2) {
		t.Fatalf("history --thread: %v (root %s, replies %s %s)", ids, root, t1, t2)
	}

	// An edit shows on the other node; editing another user's message is refused.
	a.must(nil, "edit", room, root, "edited text")
	waitMessage(t, b, room, root, func(m api.TimelineEvent) bool { return m.Edited && m.Body == "edited text" && m.Versions == 2 })
	refused(t, b.run("", "edit", room, root, "not mine"), "edit another user's message")

	// Reactions from two users aggregate; withdrawing one withdraws it everywhere.
	var react api.EventResp
	a.must(&react, "react", room, root, "👍")
	b.must(nil, "react", room, root, "👍")
	both := []string{a.user, b.user}
	slices.Sort(both)
	for _, d := range []*daemon{a, b} {
		waitMessage(t, d, room, root, func(m api.TimelineEvent) bool {
			got := slices.Clone(m.Reactions["👍"])
			slices.Sort(got)
			return slices.Equal(got, both)
		})
	}
	b.must(nil, "unreact", room, root, "👍")
	for _, d := range []*daemon{a, b} {
		waitMessage(t, d, room, root, func(m api.TimelineEvent) bool { return slices.Equal(m.Reactions["👍"], []string{a.user}) })
	}

	// A read receipt reaches the other node (history and watch).
	b.must(nil, "read", room, t2)
	waitMessage(t, a, room, t2, func(m api.TimelineEvent) bool { return slices.Contains(m.ReadBy, b.user) })
	w.wait(t, "a receipt", func(it api.WatchItem) bool {
		return it.Kind == "receipt" && it.Signal.User == b.user && it.Signal.Read == t2
	}, nil)

	// Typing and presence reach the other node's watch (re-sent until the
	// ephemeral topic's mesh carries them).
	w.wait(t, "typing", func(it api.WatchItem) bool {
		return it.Kind == "typing" && it.Signal.User == b.user && it.Signal.Typing != nil && *it.Signal.Typing
	}, func() { b.run("", "typing", room) })
	w.wait(t, "presence away", func(it api.WatchItem) bool {
		return it.Kind == "presence" && it.Signal.User == b.user && it.Signal.Presence == "away"
	}, func() { b.run("", "presence", "away") })
	var p api.PresenceResp
	a.must(&p, "presence", "get", b.user)
	if p.Presence != "away" || p.LastActiveMS == 0 {
		t.Fatalf("presence get: %+v", p)
	}

	// The host relays all of it and reads none of it.
	evs, err := h.history(room)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == "message" && (e.Decrypted || e.Body != "") {
			t.Fatalf("the host reads a message: %+v", e)
		}
	}

	// Bad input: exit 1, one line, nothing changes.
	var other api.RoomResp
	a.must(&other, "room", "create", "--name", "elsewhere") // its create event is no event of room
	before, err := a.history(room)
	if err != nil {
		t.Fatal(err)
	}
	for what, args := range map[string][]string{
		"edit an unknown event": {"edit", room, other.Room, "x"},
		"edit a reaction":       {"edit", room, react.Event, "x"},
		"edit with empty text":  {"edit", room, root, " "},
		"edit with huge text":   {"edit", room, root, strings.Repeat("x", 70_000)},
		"react to nothing":      {"react", room, room, "x"},
		"unreact absent":        {"unreact", room, root, "🎉"},
		"read an unknown event": {"read", room, other.Room},
	} {
		refused(t, a.run("", args...), what)
	}
	after, err := a.history(room)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("bad input changed the history: %d -> %d entries", len(before), len(after))
	}
}

// waitMessage polls d's history until message id shows and ok (if not
// nil) holds for it.
func waitMessage(t *testing.T, d *daemon, room, id string, ok func(api.TimelineEvent) bool) api.TimelineEvent {
	t.Helper()
	var got api.TimelineEvent
	eventually(t, govTimeout, d.name+" shows message "+id, func() error {
		evs, err := d.history(room)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.ID == id {
				if ok == nil || ok(e) {
					got = e
					return nil
				}
				return fmt.Errorf("%+v", e)
			}
		}
		return fmt.Errorf("not listed")
	})
	return got
}

// watcher collects the lines of one `parley watch --json`.
type watcher struct {
	mu    sync.Mutex
	items []api.WatchItem // guarded by mu
	errs  syncBuffer
}

func startWatch(t *testing.T, d *daemon, room string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, parleyBin, "watch", room, "--json", "--home", d.home)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{}
	cmd.Stderr = &w.errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var it api.WatchItem
			if json.Unmarshal(sc.Bytes(), &it) == nil {
				w.mu.Lock()
				w.items = append(w.items, it)
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		<-done
	})
	// Nothing accepted after the ready line is missed.
	waitWatch(t, w, "the stream open", func(it api.WatchItem) bool { return it.Kind == api.WatchReady })
	return w
}

// wait polls until an item matches, calling poke (if not nil) each round.
func (w *watcher) wait(t *testing.T, what string, match func(api.WatchItem) bool, poke func()) {
	t.Helper()
	eventually(t, govTimeout, "watch shows "+what, func() error {
		if poke != nil {
			poke()
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, it := range w.items {
			if it.Signal != nil && match(it) {
				return nil
			}
		}
		return fmt.Errorf("%d lines so far; stderr %q", len(w.items), w.errs.String())
	})
}

// send-file: an image arrives with its dimensions and a thumbnail, a voice
// message with its duration and waveform; the file key travels only in the
// encrypted message, and the other member fetches and decrypts the file.
func TestContentSendFile(t *testing.T) {
	t.Parallel()
	a, h, b := trio(t, true)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "files")
	room := rr.Room
	h.must(nil, "room", "host", room, "--via", a.addr)
	a.must(nil, "room", "invite", room, b.user)
	b.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")

	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 400, 300))
	for y := range 300 {
		for x := range 400 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 99, 255})
		}
	}
	var png bytes.Buffer
	if err := pngenc.Encode(&png, img); err != nil {
		t.Fatal(err)
	}
	photo := filepath.Join(dir, "photo.png")
	wav := filepath.Join(dir, "voice.wav")
	if err := os.WriteFile(photo, png.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wav, testWAV(8000, 1500), 0o600); err != nil {
		t.Fatal(err)
	}

	var sf api.SendFileResp
	a.must(&sf, "send-file", room, photo, "--caption", "our view")
	m := waitMessage(t, b, room, sf.Event, func(m api.TimelineEvent) bool { return m.Media != nil })
	md := m.Media
	if md.CID != sf.CID || md.Width != 400 || md.Height != 300 || md.MIME != "image/png" || md.ThumbnailCID == "" || md.Key == "" || md.Name != "photo.png" {
		t.Fatalf("media %+v", md)
	}
	if !strings.Contains(m.Body, "photo.png") || !strings.Contains(m.Body, "parley:media/"+sf.CID) || !strings.Contains(m.Body, "our view") {
		t.Fatalf("fallback body %q", m.Body)
	}
	out := filepath.Join(t.TempDir(), "copy.png")
	b.must(nil, "media", "get", md.CID+"#"+md.Key, "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, png.Bytes()) {
		t.Fatalf("fetched file differs (%v)", err)
	}

	a.must(&sf, "send-file", room, wav, "--voice")
	m = waitMessage(t, b, room, sf.Event, func(m api.TimelineEvent) bool { return m.Media != nil })
	if v := m.Media; !v.Voice || v.DurationMS != 1500 || len(v.Waveform) != 64 {
		t.Fatalf("voice %+v", v)
	}
	for _, e := range mustHistory(t, h, room) {
		if e.Media != nil || e.Body != "" {
			t.Fatalf("the host reads a media message: %+v", e)
		}
	}

	video := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(video, testMP4(640, 480, 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	a.must(&sf, "send-file", room, video)
	m = waitMessage(t, b, room, sf.Event, func(m api.TimelineEvent) bool { return m.Media != nil })
	if v := m.Media; v.MIME != "video/mp4" || v.Width != 640 || v.Height != 480 || v.DurationMS != 2000 {
		t.Fatalf("video %+v", v)
	}

	refused(t, a.run("", "send-file", room, photo, "--voice"), "a picture as a voice message")
	refused(t, a.run("", "send-file", room, filepath.Join(dir, "missing.png")), "a missing file")
	refused(t, a.run("", "send-file", room, dir), "a folder")
}

// testMP4 is the smallest MP4 the media package reads as a video: ftyp,
// and moov with a movie header (ms timescale) and one video track of w×h.
func testMP4(w, h, ms uint32) []byte {
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	box := func(typ string, parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return bytes.Join([][]byte{be32(uint32(8 + len(body))), []byte(typ), body}, nil)
	}
	header := func(typ string, scale, dur uint32, tail int) []byte {
		return box(typ, be32(0), be32(0), be32(0), be32(scale), be32(dur), make([]byte, tail))
	}
	matrix := bytes.Join([][]byte{be32(0x10000), be32(0), be32(0), be32(0), be32(0x10000), be32(0), be32(0), be32(0), be32(0x40000000)}, nil)
	tkhd := box("tkhd", []byte{0, 0, 0, 3}, be32(0), be32(0), be32(1), be32(0), be32(ms), make([]byte, 16), matrix, be32(w<<16), be32(h<<16))
	avc1 := box("avc1", make([]byte, 6), []byte{0, 1}, make([]byte, 16), []byte{byte(w >> 8), byte(w), byte(h >> 8), byte(h)}, make([]byte, 50))
	stbl := box("stbl", box("stsd", be32(0), be32(1), avc1), box("stts", be32(0), be32(0)))
	hdlr := box("hdlr", be32(0), be32(0), []byte("vide"), make([]byte, 12), []byte("v\x00"))
	trak := box("trak", tkhd, box("mdia", header("mdhd", 1000, ms, 4), hdlr, box("minf", stbl)))
	return bytes.Join([][]byte{box("ftyp", []byte("isom"), be32(0), []byte("isomavc1")), box("moov", header("mvhd", 1000, ms, 80), trak), box("mdat", make([]byte, 256))}, nil)
}

func mustHistory(t *testing.T, d *daemon, room string) []api.TimelineEvent {
	t.Helper()
	evs, err := d.history(room)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// testWAV is ms milliseconds of a 16-bit mono PCM tone at rate Hz.
func testWAV(rate, ms int) []byte {
	n := rate * ms / 1000
	return wavFile(rate, n, func(i int) int16 {
		return int16(8000 * math.Sin(float64(i)*2*math.Pi*440/float64(rate)) * float64(i) / float64(n))
	})
}

// wavFile is a 16-bit mono PCM WAV file of n samples at rate Hz.
func wavFile(rate, n int, sample func(i int) int16) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
	le(uint32(rate))
	le(uint32(2 * rate))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(2 * n))
	for i := range n {
		le(sample(i))
	}
	return b.Bytes()
}
