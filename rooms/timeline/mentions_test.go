package timeline

import (
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// Mentions (docs/protocol.md §5.2): links to parley:user/ID and the
// parley.mentions list; the shown version's mentions count.

// mention returns the Markdown link mentioning user name.
func (w *world) mention(name string) string {
	return mimi.MentionLink(w.user(name).String(), strings.ToUpper(name[:1])+name[1:])
}

// addContent adds c as an item by user name, like world.do.
func (w *world) addContent(t *testing.T, name, label string, depth uint64, c *mimi.Content) *made {
	t.Helper()
	raw, mid, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := &made{label: label, c: c, mid: mid}
	w.n++
	m.item = Item{ID: crdt.IDOf([]byte("event/" + label)), Depth: depth, Sender: w.user(name),
		Device: crdt.DeviceID(sha256.Sum256([]byte("device/" + name))), TS: int64(w.n), Content: raw}
	w.depth = max(w.depth, depth)
	w.labels[label], w.byMID[mid], w.byEvent[m.item.ID] = m, label, label
	w.ops = append(w.ops, op{item: &m.item})
	w.p.Add(m.item)
	return m
}

func (w *world) sortedUsers(names ...string) []crdt.UserID {
	var out []crdt.UserID
	for _, n := range names {
		out = append(out, w.user(n))
	}
	slices.SortFunc(out, cmpUser)
	return out
}

func TestMentionsThroughEdits(t *testing.T) {
	w := newWorld()
	w.do(t, "alice md hi "+w.mention("bob")+" and "+w.mention("carol")+" as=m", false)
	m := w.msg(t, "m")
	if !slices.Equal(m.Mentions, w.sortedUsers("bob", "carol")) {
		t.Fatalf("mentions %v", m.Mentions)
	}
	if m.Body != "hi @Bob and @Carol" || !strings.Contains(m.HTML, `href="parley:user/`+w.user("bob").String()+`"`) {
		t.Fatalf("body %q html %s", m.Body, m.HTML)
	}
	// An edit's mentions replace the original's.
	w.do(t, "alice edit-md m now "+w.mention("dave")+" as=e1", false)
	if got := w.msg(t, "m").Mentions; !slices.Equal(got, w.sortedUsers("dave")) {
		t.Fatalf("after the edit: mentions %v", got)
	}
	// An edit by another user changes nothing.
	w.do(t, "bob edit-md m "+w.mention("bob")+" as=x", false)
	// The list alone counts too (plain text), malformed entries do not.
	o := w.get(t, "m")
	c := mimi.Edit(w.header("alice"), o.mid, nil, nil, mimi.TextPart("plain @Erin"))
	c.SetMentions([]string{mimi.UserURIPrefix + w.user("erin").String(), mimi.UserURIPrefix + "not-a-user", "mimi://x/u/y"})
	w.addContent(t, "alice", "e2", w.depth+1, c)
	if got := w.msg(t, "m").Mentions; !slices.Equal(got, w.sortedUsers("erin")) {
		t.Fatalf("after the second edit: mentions %v", got)
	}
	vs := w.p.Versions(o.item.ID)
	if len(vs) != 3 || !slices.Equal(vs[0].Mentions, w.sortedUsers("bob", "carol")) ||
		!slices.Equal(vs[1].Mentions, w.sortedUsers("dave")) || !slices.Equal(vs[2].Mentions, w.sortedUsers("erin")) {
		t.Fatalf("versions %s", w.printVersions(vs))
	}
	// Disguised and foreign links are no mentions.
	w.do(t, "alice md [@Bob](javascript:alert(1)) [@Bob](parley:evil/"+w.user("bob").String()+") [@Bob](https://x.example/parley:user/"+w.user("bob").String()+") as=h", false)
	if h := w.msg(t, "h"); h.Mentions != nil || strings.Contains(h.HTML, "javascript") || strings.Contains(h.HTML, "parley:evil") {
		t.Fatalf("hostile: mentions %v html %s", h.Mentions, h.HTML)
	}
	// A redaction takes the mentions with the content.
	w.p.Redact(o.item.ID)
	if got := w.msg(t, "m"); got.Mentions != nil || !got.Redacted {
		t.Fatalf("redacted: %+v", got)
	}
	if err := w.converges(20, 1); err != nil {
		t.Fatal(err)
	}
}

// Concurrent edits with different mentions: the winning edit's mentions
// show on every order of delivery.
func TestMentionsConcurrentEdits(t *testing.T) {
	w := newWorld()
	w.do(t, "alice md hi as=m", false)
	w.do(t, "alice edit-md m "+w.mention("bob")+" depth=2 as=x", false)
	w.do(t, "alice edit-md m "+w.mention("carol")+" depth=2 as=y", false)
	want := w.sortedUsers("bob")
	if w.get(t, "x").item.Pos().Compare(w.get(t, "y").item.Pos()) < 0 {
		want = w.sortedUsers("carol")
	}
	if got := w.msg(t, "m").Mentions; !slices.Equal(got, want) {
		t.Fatalf("mentions %v, want %v", got, want)
	}
	if err := w.converges(20, 2); err != nil {
		t.Fatal(err)
	}
}
