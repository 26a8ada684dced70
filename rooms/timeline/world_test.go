package timeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// world builds items from a small action language and remembers every
// input, so that the same set can be replayed in other orders.
type world struct {
	p        *Projection
	labels   map[string]*made
	byEvent  map[crdt.EventID]string
	byMID    map[mimi.MessageID]string
	users    map[crdt.UserID]string
	ops      []op // every input, in the order first given
	depth    uint64
	salt     uint64
	n        int
	receipts []Receipt
}

// made is an item the world built, with the content it encoded.
type made struct {
	label string
	item  Item
	c     *mimi.Content
	mid   mimi.MessageID
}

// op is one input to a projection.
type op struct {
	item    *Item
	redact  crdt.EventID
	receipt *Receipt
}

func (o op) apply(p *Projection) {
	switch {
	case o.item != nil:
		p.Add(*o.item)
	case o.receipt != nil:
		p.Read(*o.receipt)
	default:
		p.Redact(o.redact)
	}
}

func newWorld() *world {
	return &world{
		p:       New(),
		labels:  map[string]*made{},
		byEvent: map[crdt.EventID]string{},
		byMID:   map[mimi.MessageID]string{},
		users:   map[crdt.UserID]string{},
	}
}

func (w *world) user(name string) crdt.UserID {
	u := crdt.UserID(sha256.Sum256([]byte("user/" + name)))
	w.users[u] = name
	return u
}

func (w *world) header(name string) mimi.Header {
	w.salt++
	var s mimi.Salt
	copy(s[:], strconv.FormatUint(w.salt, 10))
	return mimi.Header{Salt: s, SenderURI: "mimi://parley.test/u/" + name, RoomURI: "mimi://parley.test/r/room"}
}

func (w *world) get(t testing.TB, label string) *made {
	t.Helper()
	m := w.labels[label]
	if m == nil {
		t.Fatalf("no item %q", label)
	}
	return m
}

// do parses and builds one action, adds it to the world and, unless hold,
// to the projection:
//
//	USER say|md TEXT...            plain or Markdown message
//	USER reply TARGET TEXT...
//	USER thread ROOT TO TEXT...    thread reply (ROOT=TO for the root)
//	USER edit|edit-md TARGET TEXT...
//	USER delete TARGET
//	USER react TARGET KEY
//	USER unreact REACTION
//	USER raw HEX                   arbitrary content bytes
//	USER copy L                    a new event with L's content bytes
//	USER purged                    an item without content
//
// with options as=LABEL (default eN), depth=N (default one more than the
// deepest so far; equal depths are concurrent), ts=N.
func (w *world) do(t testing.TB, line string, hold bool) *made {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("bad action %q", line)
	}
	w.n++
	label := fmt.Sprintf("e%d", w.n)
	depth, ts := w.depth+1, int64(w.n)
	var args []string
	for _, x := range f[2:] {
		k, v, ok := strings.Cut(x, "=")
		switch {
		case ok && k == "as":
			label = v
		case ok && k == "depth":
			depth, _ = strconv.ParseUint(v, 10, 64)
		case ok && k == "ts":
			ts, _ = strconv.ParseInt(v, 10, 64)
		default:
			args = append(args, x)
		}
	}
	name, verb := f[0], f[1]
	h := w.header(name)
	text := func(from int) string { return strings.Join(args[from:], " ") }
	var c *mimi.Content
	var raw []byte
	var err error
	switch verb {
	case "say":
		c = mimi.New(h, mimi.TextPart(text(0)))
	case "md":
		c = mimi.New(h, mimi.MarkdownPart(text(0)))
	case "reply":
		c = mimi.Reply(h, w.get(t, args[0]).mid, mimi.TextPart(text(1)))
	case "thread":
		c = mimi.ThreadReply(h, w.get(t, args[0]).mid, w.get(t, args[1]).mid, mimi.TextPart(text(2)))
	case "edit", "edit-md":
		o := w.get(t, args[0])
		part := mimi.TextPart(text(1))
		if verb == "edit-md" {
			part = mimi.MarkdownPart(text(1))
		}
		c = mimi.Edit(h, o.mid, o.c.InReplyTo, o.c.TopicID, part)
	case "delete":
		o := w.get(t, args[0])
		c = mimi.Delete(h, o.mid, o.c.InReplyTo)
	case "react":
		if c, err = mimi.React(h, w.get(t, args[0]).mid, text(1)); err != nil {
			t.Fatal(err)
		}
	case "unreact":
		r := w.get(t, args[0])
		to := r.mid // for an unreaction of a non-reaction
		if r.c.InReplyTo != nil {
			to = *r.c.InReplyTo
		}
		c = mimi.Unreact(h, r.mid, to)
	case "raw":
		if raw, err = hex.DecodeString(text(0)); err != nil {
			t.Fatal(err)
		}
	case "copy":
		o := w.get(t, args[0])
		if raw, _, err = o.c.Marshal(); err != nil {
			t.Fatal(err)
		}
	case "purged":
	default:
		t.Fatalf("unknown verb %q in %q", verb, line)
	}
	m := &made{label: label, c: c}
	if c != nil {
		if raw, m.mid, err = c.Marshal(); err != nil {
			t.Fatal(err)
		}
		w.byMID[m.mid] = label
	}
	m.item = Item{ID: crdt.IDOf([]byte("event/" + label)), Depth: depth, Sender: w.user(name),
		Device: crdt.DeviceID(sha256.Sum256([]byte("device/" + name))), TS: ts, Content: raw}
	w.depth = max(w.depth, depth)
	w.labels[label] = m
	w.byEvent[m.item.ID] = label
	w.ops = append(w.ops, op{item: &m.item})
	if !hold {
		w.p.Add(m.item)
	}
	return m
}

// deliver adds held items to the projection.
func (w *world) deliver(t testing.TB, labels ...string) {
	for _, l := range labels {
		w.p.Add(w.get(t, l).item)
	}
}

func (w *world) redact(t testing.TB, label string) {
	id := w.get(t, label).item.ID
	w.ops = append(w.ops, op{redact: id})
	w.p.Redact(id)
}

func (w *world) read(t testing.TB, user, label string) {
	m := w.get(t, label)
	r := Receipt{User: w.user(user), Event: m.item.ID, Depth: m.item.Depth}
	w.ops = append(w.ops, op{receipt: &r})
	w.p.Read(r)
}

func (w *world) ev(id crdt.EventID) string {
	if l, ok := w.byEvent[id]; ok {
		return l
	}
	if id == "" {
		return "?"
	}
	return hex.EncodeToString([]byte(id))[:12]
}

func (w *world) who(u crdt.UserID) string {
	if n, ok := w.users[u]; ok {
		return n
	}
	return hex.EncodeToString(u[:4])
}

func (w *world) ref(r *Ref) string {
	s := w.ev(r.Event)
	if r.Event == "" {
		if l, ok := w.byMID[r.Message]; ok {
			s = l
		}
		s += " (not known)"
	} else if r.Redacted {
		s += " (redacted)"
	}
	return s
}

// printMessages renders messages one per line, details indented.
func (w *world) printMessages(ms []Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s %s", w.ev(m.ID), w.who(m.Sender))
		switch {
		case m.Redacted:
			b.WriteString(" (redacted)")
		case m.Deleted:
			b.WriteString(" (deleted)")
		default:
			fmt.Fprintf(&b, " %q", m.Body)
		}
		if m.Edited {
			fmt.Fprintf(&b, " edited versions=%d", m.Versions)
		}
		b.WriteString("\n")
		if m.HTML != "" {
			fmt.Fprintf(&b, "  html: %s\n", strings.TrimSpace(m.HTML))
		}
		if m.ReplyTo != nil {
			fmt.Fprintf(&b, "  reply-to: %s\n", w.ref(m.ReplyTo))
		}
		if m.ThreadRoot != nil {
			fmt.Fprintf(&b, "  thread: %s\n", w.ref(m.ThreadRoot))
		}
		if m.Fallback != m.Body {
			fmt.Fprintf(&b, "  fallback: %q\n", m.Fallback)
		}
		if len(m.Reactions) > 0 {
			var rs []string
			for _, r := range m.Reactions {
				var us []string
				for _, u := range r.Users {
					us = append(us, w.who(u))
				}
				rs = append(rs, fmt.Sprintf("%s×%d (%s)", r.Key, r.Count, strings.Join(us, " ")))
			}
			fmt.Fprintf(&b, "  reactions: %s\n", strings.Join(rs, ", "))
		}
		if len(m.Mentions) > 0 {
			var us []string
			for _, u := range m.Mentions {
				us = append(us, w.who(u))
			}
			fmt.Fprintf(&b, "  mentions: %s\n", strings.Join(us, " "))
		}
		if len(m.ReadBy) > 0 {
			var us []string
			for _, u := range m.ReadBy {
				us = append(us, w.who(u))
			}
			fmt.Fprintf(&b, "  read-by: %s\n", strings.Join(us, " "))
		}
	}
	return b.String()
}

func (w *world) printVersions(vs []Version) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "%s %q", w.ev(v.Event), v.Body)
		if v.HTML != "" {
			fmt.Fprintf(&b, " html=%s", strings.TrimSpace(v.HTML))
		}
		fmt.Fprintf(&b, "\n  fallback: %q\n", v.Fallback)
	}
	return b.String()
}

func (w *world) printIgnored(is []Ignored) string {
	var b strings.Builder
	for _, i := range is {
		fmt.Fprintf(&b, "%s: %s\n", w.ev(i.Event), i.Reason)
	}
	return b.String()
}

// dump renders everything a projection answers, for comparisons.
func (w *world) dump(p *Projection) string {
	var b strings.Builder
	ms := p.Messages()
	b.WriteString(w.printMessages(ms))
	for _, m := range ms {
		fmt.Fprintf(&b, "versions %s:\n%s", w.ev(m.ID), w.printVersions(p.Versions(m.ID)))
		if th := p.Thread(m.ID); len(th) > 1 {
			fmt.Fprintf(&b, "thread %s:\n%s", w.ev(m.ID), w.printMessages(th))
		}
		if got, ok := p.Message(m.ID); !ok || got.ID != m.ID {
			b.WriteString("Message lookup failed\n")
		}
	}
	b.WriteString("ignored:\n" + w.printIgnored(p.Ignored()))
	us := make([]string, 0, len(w.users))
	for u := range w.users {
		if r, ok := p.ReadMarker(u); ok {
			us = append(us, fmt.Sprintf("%s@%s", w.who(u), w.ev(r.Event)))
		}
	}
	slices.Sort(us)
	b.WriteString("markers: " + strings.Join(us, " ") + "\n")
	return b.String()
}

// converges replays every input in n random orders, each into a fresh
// projection (asking it for its messages at random points, to exercise
// the cache), and compares the dumps with the in-order one.
func (w *world) converges(n int, seed uint64) error {
	want := w.dump(w.fold(w.ops, nil))
	rng := rand.New(rand.NewPCG(seed, 0x7431))
	for i := 0; i < n; i++ {
		ops := slices.Clone(w.ops)
		rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
		if got := w.dump(w.fold(ops, rng)); got != want {
			return fmt.Errorf("order %d (seed %d) differs:\n--- in order\n%s--- shuffled\n%s", i, seed, want, got)
		}
	}
	return nil
}

func (w *world) fold(ops []op, rng *rand.Rand) *Projection {
	p := New()
	for _, o := range ops {
		o.apply(p)
		if rng != nil && rng.IntN(4) == 0 {
			_ = p.Messages()
		}
	}
	return p
}
