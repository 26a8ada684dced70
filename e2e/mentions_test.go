package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// Mentions and versions through the CLI (issue 5, docs/protocol.md §5.2):
// two daemons; A mentions B, B's watch flags it, edits replace the
// mentions, and `history --versions` lists every version on both nodes.
func TestMentionsAndVersions(t *testing.T) {
	t.Parallel()
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	a.must(nil, "connect", b.addr)
	b.must(nil, "profile", "set", "--name", "Bob")
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "mentions")
	room := rr.Room
	a.must(nil, "room", "invite", room, b.user)
	b.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")
	eventually(t, govTimeout, "A knows B's name", func() error {
		if m := memberOf(t, a, room, b.user); m == nil || m.DisplayName != "Bob" {
			return fmt.Errorf("%+v", m)
		}
		return nil
	})
	w := startWatch(t, b, room)

	// --mention on plain text: a link showing the name, and the list.
	var ev api.EventResp
	a.must(&ev, "send", room, "the build is green", "--mention", b.user)
	msg := ev.Event
	m := waitMessage(t, b, room, msg, func(m api.TimelineEvent) bool { return m.Decrypted && len(m.Mentions) > 0 })
	if !slices.Equal(m.Mentions, []string{b.user}) || m.Body != "@Bob the build is green" ||
		!strings.Contains(m.HTML, `href="parley:user/`+b.user+`"`) {
		t.Fatalf("mention on B: %+v", m)
	}
	waitWatch(t, w, "mentions_me for "+msg, func(it api.WatchItem) bool {
		return it.Event != nil && it.Event.ID == msg && it.MentionsMe
	})

	// Two edits: "@USERID" in Markdown, then no mention at all.
	var e1, e2 api.EventResp
	a.must(&e1, "edit", room, msg, "**green** again, @"+b.user, "--markdown")
	a.must(&e2, "edit", room, msg, "never mind")
	waitMessage(t, b, room, msg, func(m api.TimelineEvent) bool { return m.Versions == 3 && m.Body == "never mind" && m.Mentions == nil })
	var want []api.TimelineEvent
	for _, d := range []*daemon{a, b} {
		var h api.HistoryResp
		d.must(&h, "history", room, "--versions", msg)
		vs := h.Events
		if len(vs) != 3 || vs[0].ID != msg || vs[1].ID != e1.Event || vs[2].ID != e2.Event {
			t.Fatalf("%s: versions %+v", d.name, vs)
		}
		if vs[1].Body != "green again, @Bob" || !strings.Contains(vs[1].HTML, "<strong>green</strong>") ||
			!slices.Equal(vs[1].Mentions, []string{b.user}) || vs[1].Replaces != msg || vs[2].Mentions != nil || vs[0].TS == 0 {
			t.Fatalf("%s: versions %+v", d.name, vs)
		}
		if want == nil {
			want = vs
		} else if fmt.Sprint(vs) != fmt.Sprint(want) {
			t.Fatalf("versions differ:\n%+v\n%+v", vs, want)
		}
		if r := d.run("", "history", room, "--versions", msg); r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "never mind") {
			t.Fatalf("%s: %v", d.name, r)
		}
	}

	// Refused: a malformed user ID or unknown name, versions of a non-message or unknown
	// event, --versions with --limit.
	var member string
	for _, e := range mustHistory(t, a, room) {
		if e.Type == "member" {
			member = e.ID
		}
	}
	unknown := msg[:len(msg)-6] + strings.Repeat("a", 6)
	if unknown == msg {
		unknown = msg[:len(msg)-6] + strings.Repeat("b", 6)
	}
	for _, args := range [][]string{
		{"send", room, "hi", "--mention", "nobody-here"},
		{"send", room, "hi", "--mention", b.user[:40]},
		{"edit", room, msg, "hi", "--mention", "parley:user/" + b.user},
		{"history", room, "--versions", member},
		{"history", room, "--versions", unknown},
	} {
		r := a.run("", args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Fatalf("%v (want exit 1 with one 'parley: ...' line)", r)
		}
	}
	if r := a.run("", "history", room, "--versions", msg, "--limit", "2"); r.code != 2 {
		t.Fatalf("%v (want a usage error)", r)
	}

	// Hostile: links dressed up as mentions lose their link and mention
	// nobody.
	a.must(&ev, "send", room, "[@Bob](javascript:alert(1)) [@Bob](parley:evil/"+b.user+")", "--markdown")
	h := waitMessage(t, b, room, ev.Event, func(m api.TimelineEvent) bool { return m.Decrypted })
	if h.Mentions != nil || strings.Contains(h.HTML, "href") || strings.Contains(h.HTML, "javascript") {
		t.Fatalf("hostile mention: %+v", h)
	}
}

// waitWatch polls w until an item matches.
func waitWatch(t *testing.T, w *watcher, what string, match func(api.WatchItem) bool) {
	t.Helper()
	eventually(t, govTimeout, "watch shows "+what, func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, it := range w.items {
			if match(it) {
				return nil
			}
		}
		return fmt.Errorf("%d lines so far; stderr %q", len(w.items), w.errs.String())
	})
}
