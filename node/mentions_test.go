package node

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// Mentions and versions (issue 5, docs/protocol.md §5.2) on engines joined
// by the seeded bus.

func TestContentMentions(t *testing.T) {
	for _, enc := range []bool{false, true} {
		for _, seed := range seeds(t) {
			t.Run(fmt.Sprintf("encrypted=%v/seed=%d", enc, seed), func(t *testing.T) { contentMentions(t, enc, seed) })
		}
	}
}

func contentMentions(t *testing.T, enc bool, seed uint64) {
	b := newBus(t, seed, 3)
	room, _ := b.contentRoom(enc)
	bob := "Bob"
	b.ok2(b.engines[1].ProfileSet(b.ctx, api.ProfileSetReq{Name: &bob}))
	b.drain()
	ch, stop, err := b.engines[1].Watch(b.ctx, room)
	b.ok(err)
	defer stop()

	// "@USERID" in Markdown, and --mention with plain text.
	md := b.sendReq(0, api.SendReq{Room: room, Text: "**hey** @" + b.user(1) + " look", Markdown: true})
	plain := b.sendReq(0, api.SendReq{Room: room, Text: "ping <b>x</b>", Mentions: []string{b.user(1), b.user(2)}})
	none := b.sendReq(2, api.SendReq{Room: room, Text: "no mention of anyone"})
	b.drain()
	for i := range 3 {
		ms, _ := b.messages(i, room)
		m := ms[md]
		if !slices.Equal(m.Mentions, []string{b.user(1)}) || m.Body != "hey @Bob look" ||
			!strings.Contains(m.HTML, `<a href="parley:user/`+b.user(1)+`"`) || !strings.Contains(m.HTML, "<strong>hey</strong>") {
			t.Fatalf("seed %d: node %d markdown mention %+v", seed, i, m)
		}
		p := ms[plain]
		want := []string{b.user(1), b.user(2)}
		slices.Sort(want)
		got := slices.Clone(p.Mentions)
		slices.Sort(got)
		if !slices.Equal(got, want) || !strings.HasPrefix(p.Body, "@Bob @") || !strings.HasSuffix(p.Body, " ping <b>x</b>") ||
			strings.Contains(p.HTML, "<b>") || strings.Count(p.HTML, `href="parley:user/`) != 2 {
			t.Fatalf("seed %d: node %d plain mention %+v", seed, i, p)
		}
		if ms[none].Mentions != nil {
			t.Fatalf("seed %d: node %d: %+v", seed, i, ms[none])
		}
	}
	// Watch: the two messages mentioning engine 1's user carry mentions_me.
	flagged := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for seen := 0; seen < 3; {
		select {
		case it := <-ch:
			if it.Event == nil || (it.Event.ID != md && it.Event.ID != plain && it.Event.ID != none) {
				continue
			}
			seen++
			flagged[it.Event.ID] = it.MentionsMe
		case <-deadline:
			t.Fatalf("seed %d: watch lines so far: %v", seed, flagged)
		}
	}
	if !flagged[md] || !flagged[plain] || flagged[none] {
		t.Fatalf("seed %d: mentions_me %v (md %s plain %s none %s)", seed, flagged, md, plain, none)
	}

	// A malformed user ID is refused, and nothing is sent.
	for _, bad := range []string{"bob", b.user(1)[:51], b.user(1) + "a", "parley:user/" + b.user(1)} {
		if _, err := b.engines[0].Send(b.ctx, api.SendReq{Room: room, Text: "hi", Mentions: []string{bad}}); KindOf(err) != api.KindInvalid {
			t.Fatalf("seed %d: mention %q: %v, want invalid", seed, bad, err)
		}
		if _, err := b.engines[0].Edit(b.ctx, api.EditReq{Room: room, Event: md, Text: "hi", Mentions: []string{bad}}); KindOf(err) != api.KindInvalid {
			t.Fatalf("seed %d: edit mention %q: %v, want invalid", seed, bad, err)
		}
	}

	// Two devices of the sender edit concurrently; the edits' mentions
	// replace the original's; versions are the same on every node.
	d := b.device(0)
	b.join(d, room)
	b.drain()
	b.ok2(b.engines[0].Edit(b.ctx, api.EditReq{Room: room, Event: md, Text: "now @" + b.user(2), Markdown: true}))
	b.ok2(b.engines[d].Edit(b.ctx, api.EditReq{Room: room, Event: md, Text: "no one"}))
	b.drain()
	var first string
	for _, i := range []int{0, 1, 2, d} {
		h, err := b.engines[i].History(b.ctx, api.HistoryReq{Room: room, Versions: md})
		b.ok(err)
		vs := h.Events
		if len(vs) != 3 || vs[0].ID != md || vs[0].Replaces != "" || vs[1].Replaces != md || vs[2].Replaces != md {
			t.Fatalf("seed %d: node %d versions %+v", seed, i, vs)
		}
		if vs[0].Body != "hey @Bob look" || !slices.Equal(vs[0].Mentions, []string{b.user(1)}) {
			t.Fatalf("seed %d: node %d original %+v", seed, i, vs[0])
		}
		ms, _ := b.messages(i, room)
		last := vs[2]
		if m := ms[md]; m.Body != last.Body || !slices.Equal(m.Mentions, last.Mentions) || m.Versions != 3 {
			t.Fatalf("seed %d: node %d shows %+v, last version %+v", seed, i, m, last)
		}
		j := fmt.Sprint(vs)
		if first == "" {
			first = j
		} else if j != first {
			t.Fatalf("seed %d: node %d versions differ:\n%s\nvs\n%s", seed, i, j, first)
		}
	}
	// Unknown events and non-messages are refused.
	h, err := b.engines[1].History(b.ctx, api.HistoryReq{Room: room})
	b.ok(err)
	var member string
	for _, ev := range h.Events {
		if ev.Type == "member" {
			member = ev.ID
		}
	}
	for _, c := range []struct {
		event string
		kind  api.Kind
	}{{member, api.KindInvalid}, {"nope", api.KindInvalid}, {strings.Replace(md, md[len(md)-4:], "aaaa", 1), api.KindNotFound}} {
		if _, err := b.engines[1].History(b.ctx, api.HistoryReq{Room: room, Versions: c.event}); KindOf(err) != c.kind {
			t.Fatalf("seed %d: versions of %q: %v, want kind %v", seed, c.event, err, c.kind)
		}
	}
}
