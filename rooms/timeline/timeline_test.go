package timeline

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/mimi"
)

func TestPositionOrder(t *testing.T) {
	a, b := crdt.EventID("a"), crdt.EventID("b")
	for _, c := range []struct {
		p, q Position
		want int
	}{
		{Position{1, b}, Position{2, a}, -1},
		{Position{2, a}, Position{2, b}, -1},
		{Position{2, b}, Position{2, a}, 1},
		{Position{3, a}, Position{3, a}, 0},
	} {
		if got := c.p.Compare(c.q); got != c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", c.p, c.q, got, c.want)
		}
	}
}

// Each case builds a world from action lines (see world.do), then
// applies redactions and receipts, and checks one property.
func TestProjection(t *testing.T) {
	for _, c := range []struct {
		name   string
		do     []string
		redact []string
		read   [][2]string // user, label
		check  func(t *testing.T, w *world)
	}{{
		name: "edit by the sender wins, by another user is refused",
		do:   []string{"alice say v1 as=m", "bob edit m hijack as=b", "alice edit m v2 as=a"},
		check: func(t *testing.T, w *world) {
			m := w.msg(t, "m")
			if m.Body != "v2" || !m.Edited || m.Versions != 2 {
				t.Errorf("got %q edited=%v versions=%d", m.Body, m.Edited, m.Versions)
			}
			w.wantIgnored(t, "b", ReasonEditSender)
		},
	}, {
		name: "concurrent edits: greatest (depth, ID) wins",
		do:   []string{"alice say v1 as=m", "alice edit m x depth=2 as=x", "alice edit m y depth=2 as=y"},
		check: func(t *testing.T, w *world) {
			x, y := w.get(t, "x").item, w.get(t, "y").item
			want := "x"
			if x.Pos().Compare(y.Pos()) < 0 {
				want = "y"
			}
			if got := w.msg(t, "m").Body; got != want {
				t.Errorf("body %q, want %q", got, want)
			}
			vs := w.p.Versions(w.get(t, "m").item.ID)
			if len(vs) != 3 || vs[0].Body != "v1" || vs[2].Body != want {
				t.Errorf("versions %+v", vs)
			}
		},
	}, {
		name: "an edit placed before its original is refused",
		do:   []string{"alice say v1 depth=5 as=m", "alice edit m early depth=4 as=e"},
		check: func(t *testing.T, w *world) {
			if m := w.msg(t, "m"); m.Body != "v1" || m.Edited {
				t.Errorf("got %+v", m)
			}
			w.wantIgnored(t, "e", ReasonEditOrder)
		},
	}, {
		name: "reactions from several users aggregate per key",
		do: []string{"alice say hi as=m", "bob react m 👍", "carol react m 👍", "carol react m 👍",
			"bob react m :) as=r", "bob unreact r"},
		check: func(t *testing.T, w *world) {
			rs := w.msg(t, "m").Reactions
			if len(rs) != 1 || rs[0].Key != "👍" || rs[0].Count != 2 || len(rs[0].Users) != 2 {
				t.Fatalf("reactions %+v", rs)
			}
			if bytes.Compare(rs[0].Users[0][:], rs[0].Users[1][:]) >= 0 {
				t.Error("users not in bytewise order")
			}
		},
	}, {
		name:   "a reaction to a redacted message disappears",
		do:     []string{"alice say hi as=m", "bob react m 👍 as=r"},
		redact: []string{"m"},
		check: func(t *testing.T, w *world) {
			if m := w.msg(t, "m"); !m.Redacted || m.Body != "" || len(m.Reactions) != 0 || m.Versions != 0 {
				t.Errorf("got %+v", m)
			}
			w.wantIgnored(t, "r", ReasonTargetGone)
		},
	}, {
		name:   "a reply to a redacted message keeps its reference",
		do:     []string{"alice say hi as=m", "bob reply m yo as=r"},
		redact: []string{"m"},
		check: func(t *testing.T, w *world) {
			r := w.msg(t, "r")
			if r.ReplyTo == nil || r.ReplyTo.Event != w.get(t, "m").item.ID || !r.ReplyTo.Redacted ||
				r.ReplyTo.Message != w.get(t, "m").mid {
				t.Errorf("reply-to %+v", r.ReplyTo)
			}
		},
	}, {
		name: "a thread reply is listed in its thread and reads as a reply",
		do:   []string{"alice say root as=root", "bob thread root root one as=t", "carol say other"},
		check: func(t *testing.T, w *world) {
			th := w.p.Thread(w.get(t, "root").item.ID)
			if len(th) != 2 || th[1].ID != w.get(t, "t").item.ID {
				t.Fatalf("thread %s", w.printMessages(th))
			}
			m := th[1]
			if m.ReplyTo == nil || m.ThreadRoot == nil || m.ReplyTo.Event != m.ThreadRoot.Event {
				t.Errorf("refs %+v %+v", m.ReplyTo, m.ThreadRoot)
			}
			if !strings.HasPrefix(m.Fallback, "> <mimi://parley.test/u/alice> root") {
				t.Errorf("fallback %q", m.Fallback)
			}
		},
	}, {
		name: "receipts: last writer wins by position, shown on the message at or before",
		do:   []string{"alice say a as=a", "bob say b as=b", "bob react b 👍 as=r"},
		read: [][2]string{{"carol", "r"}, {"carol", "a"}, {"dave", "a"}},
		check: func(t *testing.T, w *world) {
			if got := w.printMessages(w.p.Messages()); !strings.Contains(got, "a alice \"a\"\n  read-by: dave\n") ||
				!strings.Contains(got, "read-by: carol") || strings.Count(got, "carol") != 1 {
				t.Errorf("messages:\n%s", got)
			}
			if r, ok := w.p.ReadMarker(w.user("carol")); !ok || r.Event != w.get(t, "r").item.ID {
				t.Errorf("carol's marker %+v", r)
			}
		},
	}, {
		name: "Markdown renders to sanitized HTML, HTML parts are sanitized",
		do:   []string{"alice md **hi** [x](javascript:alert(1)) as=m"},
		check: func(t *testing.T, w *world) {
			if got := w.msg(t, "m").HTML; got != "<p><strong>hi</strong> x</p>\n" {
				t.Errorf("html %q", got)
			}
			h := w.header("bob")
			c := mimi.New(h, mimi.Part{Disposition: mimi.Render, Cardinality: mimi.SinglePart,
				ContentType: mimi.TypeHTML, Content: []byte(`<b onclick="x()">bold</b><script>x()</script>`)})
			w.add(t, "h", "bob", 9, c)
			m := w.msg(t, "h")
			if m.HTML != "<b>bold</b>" || m.Body != "bold" {
				t.Errorf("html %q body %q", m.HTML, m.Body)
			}
		},
	}, {
		name: "attachments list their media",
		check: func(t *testing.T, w *world) {
			cap := mimi.TextPart("my cat")
			c, err := mimi.Attach(w.header("alice"), mimi.MediaRef{CID: "bafkreiabc", Key: []byte{1}, Size: 2000,
				MIME: "image/png", Name: "cat.png"}, nil, &cap)
			if err != nil {
				t.Fatal(err)
			}
			w.add(t, "f", "alice", 1, c)
			m := w.msg(t, "f")
			if len(m.Media) != 1 || m.Media[0].Ref.CID != "bafkreiabc" ||
				m.Body != "[Image: cat.png, 2.0 kB] parley:media/bafkreiabc\nmy cat" {
				t.Errorf("got %+v", m)
			}
		},
	}, {
		name: "an item added without content, then with it, is filled in; not the other way",
		do:   []string{"alice say hi as=m"},
		check: func(t *testing.T, w *world) {
			it := w.get(t, "m").item
			purged := it
			purged.Content = nil
			p := New()
			p.Add(purged)
			if ms := p.Messages(); len(ms) != 1 || !ms[0].Redacted {
				t.Fatalf("purged: %+v", ms)
			}
			p.Add(it)
			p.Add(purged)
			if ms := p.Messages(); len(ms) != 1 || ms[0].Body != "hi" {
				t.Fatalf("filled in: %+v", ms)
			}
		},
	}, {
		name:   "redaction before the item arrives",
		redact: []string{},
		check: func(t *testing.T, w *world) {
			m := w.do(t, "alice say secret as=s", true)
			w.redact(t, "s")
			w.deliver(t, "s")
			if got := w.msg(t, "s"); !got.Redacted || got.Body != "" {
				t.Errorf("got %+v", got)
			}
			if w.p.Versions(m.item.ID) != nil {
				t.Error("versions of a redacted message")
			}
		},
	}, {
		name: "unknown events have no message, versions or thread",
		check: func(t *testing.T, w *world) {
			id := crdt.IDOf([]byte("nothing"))
			if _, ok := w.p.Message(id); ok || w.p.Versions(id) != nil || w.p.Thread(id) != nil {
				t.Error("unknown event answered")
			}
			if _, ok := w.p.ReadMarker(w.user("nobody")); ok {
				t.Error("unknown user has a marker")
			}
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			for _, l := range c.do {
				w.do(t, l, false)
			}
			for _, l := range c.redact {
				w.redact(t, l)
			}
			for _, r := range c.read {
				w.read(t, r[0], r[1])
			}
			c.check(t, w)
			if err := w.converges(10, 1); err != nil {
				t.Error(err)
			}
		})
	}
}

// msg returns the listed message labeled label.
func (w *world) msg(t *testing.T, label string) Message {
	t.Helper()
	m, ok := w.p.Message(w.get(t, label).item.ID)
	if !ok {
		t.Fatalf("%s is not listed:\n%s", label, w.printMessages(w.p.Messages()))
	}
	return m
}

func (w *world) wantIgnored(t *testing.T, label, reason string) {
	t.Helper()
	id := w.get(t, label).item.ID
	for _, i := range w.p.Ignored() {
		if i.Event == id {
			if i.Reason != reason {
				t.Errorf("%s ignored for %q, want %q", label, i.Reason, reason)
			}
			return
		}
	}
	t.Errorf("%s not ignored, want %q", label, reason)
}

// add adds content built outside the action language.
func (w *world) add(t *testing.T, label, user string, depth uint64, c *mimi.Content) {
	t.Helper()
	raw, mid, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := &made{label: label, c: c, mid: mid, item: Item{ID: crdt.IDOf([]byte("event/" + label)), Depth: depth,
		Sender: w.user(user), Content: raw}}
	w.labels[label], w.byEvent[m.item.ID], w.byMID[mid] = m, label, label
	w.ops = append(w.ops, op{item: &m.item})
	w.p.Add(m.item)
}
