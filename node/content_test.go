package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// Message content (issue 5) on engines joined by the seeded bus: the
// projection (edits, reactions, replies, threads, receipts, redactions)
// converges on every node whatever the delivery order, in plaintext and
// encrypted rooms.

// contentRoom has engine 0 create a room (encrypted or not) that engines
// 1..n-1 join.
func (b *bus) contentRoom(encrypted bool) (string, crdt.RoomID) {
	b.t.Helper()
	r, err := b.engines[0].CreateRoom(b.ctx, api.RoomCreateReq{Name: "content", Encrypted: &encrypted})
	b.ok(err)
	b.drain()
	for m := 1; m < len(b.engines); m++ {
		b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: r.Room, User: b.user(m)}))
		b.drain()
		b.join(m, r.Room)
	}
	id, _ := crdt.ParseID(r.Room)
	return r.Room, id
}

// messages returns engine i's projected messages by event ID, and its
// whole history as JSON (to compare nodes).
func (b *bus) messages(i int, room string) (map[string]api.TimelineEvent, string) {
	b.t.Helper()
	h, err := b.engines[i].History(b.ctx, api.HistoryReq{Room: room})
	b.ok(err)
	out := map[string]api.TimelineEvent{}
	for _, ev := range h.Events {
		if ev.Type == rooms.TypeMessage {
			out[ev.ID] = ev
		}
	}
	j, _ := json.Marshal(h.Events)
	return out, string(j)
}

func (b *bus) sendReq(i int, req api.SendReq) string {
	b.t.Helper()
	r, err := b.engines[i].Send(b.ctx, req)
	b.ok(err)
	return r.Event
}

func TestContentConverges(t *testing.T) {
	for _, enc := range []bool{false, true} {
		for _, seed := range seeds(t) {
			t.Run(fmt.Sprintf("encrypted=%v/seed=%d", enc, seed), func(t *testing.T) { contentConverges(t, enc, seed) })
		}
	}
}

func contentConverges(t *testing.T, enc bool, seed uint64) {
	b := newBus(t, seed, 3)
	room, _ := b.contentRoom(enc)
	ctx := b.ctx
	root := b.sendReq(0, api.SendReq{Room: room, Text: "**hi** <script>alert(1)</script> <a href=x onclick=y>l</a>", Markdown: true})
	b.drain()
	reply := b.sendReq(1, api.SendReq{Room: room, Text: "a reply", ReplyTo: root})
	t1 := b.sendReq(1, api.SendReq{Room: room, Text: "thread one", Thread: root})
	t2 := b.sendReq(2, api.SendReq{Room: room, Text: "thread two", Thread: root})
	// Concurrent: two edits by the sender, reactions by everyone.
	b.ok2(b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: root, Text: "edit one"}))
	b.ok2(b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: root, Text: "edit *two*", Markdown: true}))
	b.ok2(b.engines[1].React(ctx, api.ReactReq{Room: room, Event: root, Key: "👍"}))
	b.ok2(b.engines[2].React(ctx, api.ReactReq{Room: room, Event: root, Key: "👍"}))
	b.ok2(b.engines[0].React(ctx, api.ReactReq{Room: room, Event: root, Key: "🎉"}))
	doomed := b.sendReq(1, api.SendReq{Room: room, Text: "to be redacted"})
	b.drain()
	if _, err := b.engines[1].Edit(ctx, api.EditReq{Room: room, Event: root, Text: "not mine"}); KindOf(err) != api.KindPermission {
		t.Fatalf("seed %d: editing another user's message: %v, want a permission error", seed, err)
	}
	b.ok2(b.engines[2].React(ctx, api.ReactReq{Room: room, Event: doomed, Key: "x"}))
	b.drain()
	b.ok2(b.engines[2].Unreact(ctx, api.ReactReq{Room: room, Event: root, Key: "👍"}))
	b.ok2(b.engines[1].Redact(ctx, api.RedactReq{Room: room, Event: doomed}))
	b.ok2(b.engines[1].MarkRead(ctx, api.ReadReq{Room: room, Event: reply}))
	b.ok2(b.engines[2].MarkRead(ctx, api.ReadReq{Room: room, Event: root}))
	b.drain()

	var first string
	for i := range 3 {
		ms, all := b.messages(i, room)
		if first == "" {
			first = all
		} else if all != first {
			t.Fatalf("seed %d: node %d's history differs:\n%s\nvs\n%s", seed, i, all, first)
		}
		r := ms[root]
		if !r.Decrypted || r.Body != "edit two" || !r.Edited || r.Versions != 3 || !strings.Contains(r.HTML, "<em>two</em>") {
			t.Fatalf("seed %d: node %d root: %+v", seed, i, r)
		}
		if got := r.Reactions; len(got) != 2 || !slices.Equal(got["👍"], []string{b.user(1)}) || !slices.Equal(got["🎉"], []string{b.user(0)}) {
			t.Fatalf("seed %d: node %d reactions %v", seed, i, got)
		}
		if !slices.Equal(r.ReadBy, []string{b.user(2)}) {
			t.Fatalf("seed %d: node %d root read by %v", seed, i, r.ReadBy)
		}
		if ms[reply].ReplyTo != root || !slices.Equal(ms[reply].ReadBy, []string{b.user(1)}) {
			t.Fatalf("seed %d: node %d reply %+v", seed, i, ms[reply])
		}
		if d := ms[doomed]; !d.Redacted || d.Body != "" || d.Reactions != nil {
			t.Fatalf("seed %d: node %d redacted message %+v", seed, i, d)
		}
		if len(ms) != 5 {
			t.Fatalf("seed %d: node %d lists %d messages, want 5 (edits and reactions fold in)", seed, i, len(ms))
		}
		th, err := b.engines[i].History(ctx, api.HistoryReq{Room: room, Thread: root})
		b.ok(err)
		var ids []string
		for _, ev := range th.Events {
			ids = append(ids, ev.ID)
			if ev.ID != root && ev.Thread != root {
				t.Fatalf("seed %d: node %d thread entry %+v", seed, i, ev)
			}
		}
		if len(ids) != 3 || ids[0] != root || !slices.Contains(ids, t1) || !slices.Contains(ids, t2) {
			t.Fatalf("seed %d: node %d thread %v", seed, i, ids)
		}
	}
	// --before and --limit apply to the projected list.
	h, err := b.engines[1].History(ctx, api.HistoryReq{Room: room, Limit: 1, Before: reply})
	b.ok(err)
	if len(h.Events) != 1 || h.Events[0].ID == reply || h.Events[0].Depth > ms0(b, room)[reply].Depth {
		t.Fatalf("seed %d: history --limit 1 --before reply: %+v", seed, h.Events)
	}
}

// TestHistoryPages: before, after and around cut the same list the whole
// history is, wherever the page falls (the web app's windowed timeline
// pages both ways and jumps to a message with them); two users write
// concurrently, so that several events share a depth.
func TestHistoryPages(t *testing.T) {
	b := newBus(t, 3, 2)
	room, _ := b.contentRoom(false)
	for i := range 20 {
		b.send(0, room, fmt.Sprintf("a%d", i))
		b.send(1, room, fmt.Sprintf("b%d", i))
		if i%3 == 0 {
			b.drain()
		}
	}
	b.drain()
	page := func(req api.HistoryReq) []string {
		t.Helper()
		req.Room = room
		h, err := b.engines[1].History(b.ctx, req)
		b.ok(err)
		ids := []string{}
		for _, ev := range h.Events {
			ids = append(ids, ev.ID)
		}
		return ids
	}
	all := page(api.HistoryReq{})
	if len(all) < 40 {
		t.Fatalf("history lists %d entries, want 40 messages and more", len(all))
	}
	n := len(all)
	for _, lim := range []int{0, 1, 2, 7, 50} {
		for k, id := range all {
			span := func(lo, hi int) []string {
				lo, hi = max(lo, 0), min(hi, n)
				return all[lo:hi]
			}
			want := span(k+1, k+1+lim)
			if lim == 0 {
				want = span(k+1, n)
			}
			if got := page(api.HistoryReq{After: id, Limit: lim}); !slices.Equal(got, want) {
				t.Fatalf("after %d limit %d: %v, want %v", k, lim, got, want)
			}
			want = span(k-lim, k)
			if lim == 0 {
				want = span(0, k)
			}
			if got := page(api.HistoryReq{Before: id, Limit: lim}); !slices.Equal(got, want) {
				t.Fatalf("before %d limit %d: %v, want %v", k, lim, got, want)
			}
			// Around: the newer half from the event on, the older half, and
			// the page filled from one side where the other runs out.
			lo, hi := k-lim/2, k+(lim+1)/2
			if lo < 0 {
				hi -= lo
			}
			if hi > n {
				lo -= hi - n
			}
			want = span(lo, hi)
			if lim == 0 {
				want = all
			}
			if got := page(api.HistoryReq{Around: id, Limit: lim}); !slices.Equal(got, want) {
				t.Fatalf("around %d limit %d: %v, want %v", k, lim, got, want)
			}
		}
	}
	for _, bad := range []api.HistoryReq{{Before: all[3], After: all[1]}, {After: all[1], Around: all[2]}, {Around: all[2], Before: all[4]}, {Thread: all[5], After: all[1]}, {After: "zzz"}} {
		bad.Room = room
		if _, err := b.engines[1].History(b.ctx, bad); err == nil {
			t.Fatalf("history %+v: no error", bad)
		}
	}
}

// Markdown arrives rendered and sanitized, with a plain body; a plain
// old-style body (rooms.MessageBody) still reads, and can be answered.
func TestContentMarkdownAndLegacy(t *testing.T) {
	b := newBus(t, 1, 2)
	room, id := b.contentRoom(false)
	md := b.sendReq(0, api.SendReq{Room: room, Text: "**bold** <script>alert(1)</script><img src=x onerror=alert(2)>", Markdown: true})
	var legacy string
	b.ok(b.engines[0].do(b.ctx, func() error {
		rc := b.engines[0].rooms[id]
		ev, err := b.engines[0].author(id, rc, rooms.TypeMessage, nil, rooms.Encode(rooms.MessageBody{Text: "old style"}))
		if err == nil {
			legacy = ev.ID.String()
		}
		return err
	}))
	b.drain()
	ans := b.sendReq(1, api.SendReq{Room: room, Text: "answer", ReplyTo: legacy})
	b.drain()
	ms, _ := b.messages(1, room)
	m := ms[md]
	if !strings.Contains(m.HTML, "<strong>bold</strong>") || m.Format != "html" || m.Formatted != m.HTML {
		t.Fatalf("markdown not rendered: %+v", m)
	}
	for _, bad := range []string{"<script", "<img"} { // raw HTML is escaped into text
		if strings.Contains(m.HTML, bad) {
			t.Fatalf("sanitized HTML keeps %q: %s", bad, m.HTML)
		}
	}
	if !strings.HasPrefix(m.Body, "bold") || strings.Contains(m.Body, "**") {
		t.Fatalf("plain body %q", m.Body)
	}
	if ms[legacy].Body != "old style" || ms[ans].ReplyTo != legacy {
		t.Fatalf("legacy %+v, answer %+v", ms[legacy], ms[ans])
	}
}

// Bad input is refused with a clear error and changes nothing.
func TestContentBadInput(t *testing.T) {
	b := newBus(t, 1, 2)
	room, id := b.contentRoom(true)
	ctx := b.ctx
	msg := b.sendReq(0, api.SendReq{Room: room, Text: "hello"})
	react, err := b.engines[0].React(ctx, api.ReactReq{Room: room, Event: msg, Key: "+1"})
	b.ok(err)
	b.drain()
	before := b.count(0, id, rooms.TypeMessage)
	other, err := b.engines[1].CreateRoom(ctx, api.RoomCreateReq{Name: "elsewhere"})
	b.ok(err)
	unknown := other.Room // an event ID, but not of this room
	cases := map[string]func() error{
		"unknown event": func() error {
			_, err := b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: unknown, Text: "x"})
			return err
		},
		"malformed event": func() error {
			_, err := b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: "nope", Text: "x"})
			return err
		},
		"edit a reaction": func() error {
			_, err := b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: react.Event, Text: "x"})
			return err
		},
		"empty edit": func() error {
			_, err := b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: msg, Text: " "})
			return err
		},
		"huge edit": func() error {
			_, err := b.engines[0].Edit(ctx, api.EditReq{Room: room, Event: msg, Text: strings.Repeat("x", MaxMessage+1)})
			return err
		},
		"empty send": func() error { _, err := b.engines[0].Send(ctx, api.SendReq{Room: room, Text: ""}); return err },
		"huge send": func() error {
			_, err := b.engines[0].Send(ctx, api.SendReq{Room: room, Text: strings.Repeat("y", MaxMessage+1)})
			return err
		},
		"huge markdown": func() error {
			_, err := b.engines[0].Send(ctx, api.SendReq{Room: room, Text: strings.Repeat("*y* ", MaxMessage/4), Markdown: true})
			return err
		},
		"reply to nothing": func() error {
			_, err := b.engines[0].Send(ctx, api.SendReq{Room: room, Text: "x", ReplyTo: unknown})
			return err
		},
		"react twice": func() error {
			_, err := b.engines[0].React(ctx, api.ReactReq{Room: room, Event: msg, Key: "+1"})
			return err
		},
		"react empty": func() error {
			_, err := b.engines[0].React(ctx, api.ReactReq{Room: room, Event: msg, Key: ""})
			return err
		},
		"react long": func() error {
			_, err := b.engines[0].React(ctx, api.ReactReq{Room: room, Event: msg, Key: strings.Repeat("k", 65)})
			return err
		},
		"react to reaction": func() error {
			_, err := b.engines[0].React(ctx, api.ReactReq{Room: room, Event: react.Event, Key: "y"})
			return err
		},
		"unreact absent": func() error {
			_, err := b.engines[1].Unreact(ctx, api.ReactReq{Room: room, Event: msg, Key: "+1"})
			return err
		},
		"read unknown": func() error {
			_, err := b.engines[0].MarkRead(ctx, api.ReadReq{Room: room, Event: unknown})
			return err
		},
	}
	for name, fn := range cases {
		err := fn()
		if err == nil || KindOf(err) == api.KindInternal {
			t.Errorf("%s: %v, want a clear refusal", name, err)
		}
	}
	b.drain()
	if after := b.count(0, id, rooms.TypeMessage); after != before {
		t.Fatalf("bad input wrote %d message events", after-before)
	}
}

// A 10,000-message room: the projection is built once, then kept up to
// date; history stays fast.
func TestContentHistoryLargeRoom(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 2_000
	}
	b := newBus(t, 1, 1)
	room, _ := b.contentRoom(false)
	ctx := context.Background()
	for i := range n {
		b.sendReq(0, api.SendReq{Room: room, Text: fmt.Sprintf("message %d", i)})
	}
	e := b.engines[0]
	e.do(ctx, func() error { e.rooms[mustID(t, room)].tl = nil; return nil }) // force a rebuild
	for _, what := range []string{"rebuild", "cached", "after a send"} {
		if what == "after a send" {
			b.sendReq(0, api.SendReq{Room: room, Text: "one more"})
		}
		start := time.Now()
		h, err := e.History(ctx, api.HistoryReq{Room: room, Limit: 50})
		b.ok(err)
		d := time.Now().Sub(start)
		t.Logf("%d messages, history --limit 50 (%s): %v", n, what, d)
		if len(h.Events) != 50 || d.Seconds() > 10 {
			t.Fatalf("%s: %d events in %v", what, len(h.Events), d)
		}
	}
}

func mustID(t *testing.T, s string) crdt.RoomID {
	id, err := crdt.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ms0(b *bus, room string) map[string]api.TimelineEvent { m, _ := b.messages(0, room); return m }

// watch shows an edit or a reaction as the updated message it changes, and
// a receipt as kind "receipt".
func TestContentWatch(t *testing.T) {
	b := newBus(t, 1, 2)
	room, _ := b.contentRoom(true)
	root := b.sendReq(0, api.SendReq{Room: room, Text: "first"})
	b.drain()
	ch, stop, err := b.engines[1].Watch(b.ctx, room)
	b.ok(err)
	defer stop()
	b.ok2(b.engines[0].Edit(b.ctx, api.EditReq{Room: room, Event: root, Text: "second"}))
	b.ok2(b.engines[0].React(b.ctx, api.ReactReq{Room: room, Event: root, Key: "ok"}))
	b.ok2(b.engines[0].MarkRead(b.ctx, api.ReadReq{Room: room, Event: root}))
	b.drain()
	seen := map[string]bool{}
	for len(seen) < 3 {
		select {
		case it := <-ch:
			switch {
			case it.Kind == "receipt" && it.Signal.Read == root && it.Signal.User == b.user(0):
				seen["receipt"] = true
			case it.Event != nil && it.Event.ID == root:
				if it.Event.Edited && it.Event.Body == "second" {
					seen["edit"] = true
				}
				if len(it.Event.Reactions["ok"]) == 1 {
					seen["reaction"] = true
				}
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("watch lines so far: %v", seen)
		}
	}
}

// Two devices of one user edit and react concurrently; every node picks the
// same last edit and one vote per user; a restart rebuilds the same
// projection from the store.
func TestContentTwoDevicesAndRestart(t *testing.T) {
	for _, enc := range []bool{false, true} {
		for _, seed := range seeds(t) {
			t.Run(fmt.Sprintf("encrypted=%v/seed=%d", enc, seed), func(t *testing.T) {
				b := newBus(t, seed, 2)
				room, _ := b.contentRoom(enc)
				d := b.device(0)
				b.join(d, room)
				root := b.sendReq(0, api.SendReq{Room: room, Text: "original"})
				b.drain()
				// Concurrent: neither device sees the other's edit first.
				b.ok2(b.engines[0].Edit(b.ctx, api.EditReq{Room: room, Event: root, Text: "from device one"}))
				b.ok2(b.engines[d].Edit(b.ctx, api.EditReq{Room: room, Event: root, Text: "from device two"}))
				b.ok2(b.engines[0].React(b.ctx, api.ReactReq{Room: room, Event: root, Key: "+1"}))
				b.ok2(b.engines[d].React(b.ctx, api.ReactReq{Room: room, Event: root, Key: "+1"}))
				b.drain()
				var want string
				for _, i := range []int{0, 1, d} {
					ms, all := b.messages(i, room)
					r := ms[root]
					if !r.Edited || r.Versions != 3 || (r.Body != "from device one" && r.Body != "from device two") {
						t.Fatalf("node %d: %+v", i, r)
					}
					if !slices.Equal(r.Reactions["+1"], []string{b.user(0)}) {
						t.Fatalf("node %d: reactions %v (one vote per user)", i, r.Reactions)
					}
					if want == "" {
						want = all
					} else if all != want {
						t.Fatalf("node %d differs:\n%s\nvs\n%s", i, all, want)
					}
				}
				// One unreaction withdraws the votes of both devices.
				b.ok2(b.engines[d].Unreact(b.ctx, api.ReactReq{Room: room, Event: root, Key: "+1"}))
				b.drain()
				for _, i := range []int{0, 1, d} {
					if ms, _ := b.messages(i, room); ms[root].Reactions != nil {
						t.Fatalf("node %d: reactions %v after unreact", i, ms[root].Reactions)
					}
				}
				_, before := b.messages(1, room)
				b.stop(1)
				b.start(1)
				if _, after := b.messages(1, room); after != before {
					t.Fatalf("after a restart:\n%s\nwant\n%s", after, before)
				}
			})
		}
	}
}
