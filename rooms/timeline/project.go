package timeline

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// view is the projection of the current inputs, built from scratch in
// position order whenever an input changed: a function of the input set.
type view struct {
	msgs    []*msg
	byEvent map[crdt.EventID]*msg
	owner   map[mimi.MessageID]*entry
	ignored []Ignored

	// What extend needs to know to tell whether new items only append.
	last     Position                // the greatest position of any item
	lastRead Position                // the greatest position of a receipt
	wanted   map[mimi.MessageID]bool // IDs a reference or relation names that no item owns
}

// msg is a listed message while the view is built.
type msg struct {
	Message
	orig    *entry
	edits   []*entry // accepted edits, in position order
	deleted bool
	reacts  []*entry // live reactions, in position order
}

// current returns the entry whose content is shown.
func (m *msg) current() *entry {
	if len(m.edits) > 0 {
		return m.edits[len(m.edits)-1]
	}
	return m.orig
}

func (m *msg) gone() bool { return m.Redacted || m.Deleted }

func (p *Projection) view() *view {
	if p.v != nil && len(p.fresh) > 0 && !p.v.extend(p.fresh) {
		p.v = nil
	}
	p.fresh = nil
	if p.v == nil {
		p.v = p.build()
	}
	return p.v
}

// extend appends the items added since v was built (and nothing else
// changed) when they are plain messages placed after every item and
// receipt, whose message IDs nothing names yet: then no listed message,
// relation or receipt of v changes, and the result is what build would
// make. It reports false, changing nothing, when that does not hold.
// A room that only grows (an import, a busy room) so costs per message,
// not per message times the room's size.
func (v *view) extend(fresh []*entry) bool {
	slices.SortFunc(fresh, func(a, b *entry) int { return a.Pos().Compare(b.Pos()) })
	at := v.last
	mids := map[mimi.MessageID]bool{}
	for _, e := range fresh {
		switch {
		case e.Pos().Compare(at) <= 0 || e.Pos().Compare(v.lastRead) <= 0:
			return false
		case e.c == nil || e.kind != mimi.KindMessage:
			return false
		case e.hasMID && (v.owner[e.mid] != nil || v.wanted[e.mid] || mids[e.mid]):
			return false
		}
		if e.hasMID {
			mids[e.mid] = true
		}
		at = e.Pos()
	}
	added := make([]*msg, len(fresh))
	for i, e := range fresh {
		m := &msg{orig: e}
		v.msgs = append(v.msgs, m)
		v.byEvent[e.ID] = m
		if e.hasMID {
			v.owner[e.mid] = e
		}
		added[i] = m
	}
	for _, m := range added {
		v.finish(m)
	}
	for _, m := range added {
		v.fallback(m)
	}
	v.last = at
	return true
}

func (p *Projection) build() *view {
	es := make([]*entry, 0, len(p.items))
	for _, e := range p.items {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *entry) int { return a.Pos().Compare(b.Pos()) })
	v := &view{byEvent: map[crdt.EventID]*msg{}, owner: map[mimi.MessageID]*entry{}, wanted: map[mimi.MessageID]bool{}}
	if len(es) > 0 {
		v.last = es[len(es)-1].Pos()
	}
	var edits, reacts, unreacts []*entry
	for _, e := range es {
		if e.hasMID {
			if _, dup := v.owner[e.mid]; dup {
				v.ignore(e, ReasonDuplicate)
				continue
			}
			v.owner[e.mid] = e
		}
		switch {
		case e.bad && !p.redacted[e.ID]:
			v.ignore(e, ReasonMalformed)
		case !e.known || e.kind == mimi.KindMessage:
			m := &msg{orig: e}
			m.Redacted = e.c == nil
			v.msgs = append(v.msgs, m)
			v.byEvent[e.ID] = m
		case e.c == nil:
			v.ignore(e, ReasonRedacted)
		case e.kind == mimi.KindEdit || e.kind == mimi.KindDelete:
			edits = append(edits, e)
		case e.kind == mimi.KindReaction:
			reacts = append(reacts, e)
		default:
			unreacts = append(unreacts, e)
		}
	}
	for _, e := range edits {
		v.applyEdit(e)
	}
	withdrawn := map[crdt.EventID]bool{}
	for _, e := range unreacts {
		if r := v.unreaction(e); r != "" {
			withdrawn[r] = true
		}
	}
	for _, e := range reacts {
		v.applyReaction(e, withdrawn[e.ID])
	}
	for _, m := range v.msgs {
		v.finish(m)
	}
	for _, m := range v.msgs {
		v.fallback(m)
	}
	p.placeReceipts(v)
	slices.SortStableFunc(v.ignored, func(a, b Ignored) int {
		return p.items[a.Event].Pos().Compare(p.items[b.Event].Pos())
	})
	return v
}

func (v *view) ignore(e *entry, why string) {
	v.ignored = append(v.ignored, Ignored{Event: e.ID, Reason: why})
}

// target returns the listed message that owns id, or a reason.
func (v *view) target(id *mimi.MessageID) (*msg, *entry, string) {
	if id == nil {
		return nil, nil, ReasonUnknownTarget
	}
	t := v.owner[*id]
	if t == nil {
		v.wanted[*id] = true
		return nil, nil, ReasonUnknownTarget
	}
	return v.byEvent[t.ID], t, ""
}

// applyEdit attaches an edit or deletion to its original when the
// original's sender made it after the original.
func (v *view) applyEdit(e *entry) {
	m, _, why := v.target(e.c.Replaces)
	switch {
	case why != "":
	case m == nil:
		why = ReasonEditTarget
	case m.orig.Sender != e.Sender:
		why = ReasonEditSender
	case e.Pos().Compare(m.orig.Pos()) < 0:
		why = ReasonEditOrder
	}
	if why != "" {
		v.ignore(e, why)
		return
	}
	if e.kind == mimi.KindDelete {
		m.deleted = true
		return
	}
	m.edits = append(m.edits, e)
}

// unreaction returns the reaction e withdraws, or "" when it withdraws
// none.
func (v *view) unreaction(e *entry) crdt.EventID {
	_, r, why := v.target(e.c.Replaces)
	switch {
	case why != "":
	case !r.known || r.kind != mimi.KindReaction:
		why = ReasonUnreactTarget
	case r.Sender != e.Sender:
		why = ReasonUnreactSender
	}
	if why != "" {
		v.ignore(e, why)
		return ""
	}
	return r.ID
}

// applyReaction attaches a live reaction to its message.
func (v *view) applyReaction(e *entry, withdrawn bool) {
	key, _ := e.c.ReactionKey()
	m, _, why := v.target(e.c.InReplyTo)
	switch {
	case !validKey(key):
		why = ReasonReactionKey
	case why != "":
	case m == nil:
		why = ReasonReactionTarget
	case m.Redacted || m.deleted:
		why = ReasonTargetGone
	}
	switch {
	case why != "":
		v.ignore(e, why)
	case !withdrawn:
		m.reacts = append(m.reacts, e)
	}
}

// validKey is the rule of mimi.React, applied to what others sent.
func validKey(k string) bool {
	return k != "" && len(k) <= mimi.MaxReactionKey && utf8.ValidString(k) && !strings.ContainsAny(k, "\r\n")
}

// finish fills in everything but the fallback and the receipts.
func (v *view) finish(m *msg) {
	o := m.orig
	m.ID, m.Pos, m.Sender, m.Device, m.TS = o.ID, o.Pos(), o.Sender, o.Device, o.TS
	if m.Redacted {
		return
	}
	m.ReplyTo = v.ref(o.c.InReplyTo)
	if root, ok := o.c.Thread(); ok {
		m.ThreadRoot = v.ref(&root)
	}
	if m.deleted {
		m.Deleted = true
		for _, e := range m.edits {
			v.ignore(e, ReasonTargetGone)
		}
		return
	}
	cur := m.current()
	m.Body, m.HTML = cur.render()
	m.Media = cur.media
	m.Mentions = cur.mentions
	m.Edited, m.Versions = len(m.edits) > 0, 1+len(m.edits)
	if im := o.importedInfo(); im != nil {
		m.Imported = im
		m.Edited = m.Edited || im.Edited != 0 // the source's own edit, whose earlier text it did not keep
	}
	m.Reactions = aggregate(m.reacts)
}

// ref resolves a MIMI message ID; whether the target is gone is known
// once every message is finished, so ref reads the raw flags.
func (v *view) ref(id *mimi.MessageID) *Ref {
	if id == nil {
		return nil
	}
	r := &Ref{Message: *id}
	t := v.owner[*id]
	if t == nil {
		v.wanted[*id] = true
	}
	if t != nil {
		r.Event = t.ID
		if m := v.byEvent[t.ID]; m != nil {
			r.Redacted = m.Redacted || m.deleted
		} else {
			r.Redacted = t.c == nil
		}
	}
	return r
}

// fallback computes what a client without relations shows: mimi.Fallback
// of the current version as a plain message answering the original's
// target, quoting that target's current version.
func (v *view) fallback(m *msg) {
	if m.gone() {
		return
	}
	cur, target := m.current(), v.replyTarget(m)
	if !cur.fbSet || cur.fbFor != target {
		c := *cur.c
		c.Replaces = nil
		c.InReplyTo = m.orig.c.InReplyTo
		cur.fb, cur.fbFor, cur.fbSet = mimi.Fallback(&c, target), target, true
	}
	m.Fallback = cur.fb
}

// replyTarget returns the current content of the message m answers, or
// nil when it is not known or gone.
func (v *view) replyTarget(m *msg) *mimi.Content {
	if m.ReplyTo == nil || m.ReplyTo.Event == "" || m.ReplyTo.Redacted {
		return nil
	}
	if t := v.byEvent[m.ReplyTo.Event]; t != nil {
		return t.current().c
	}
	return v.owner[m.ReplyTo.Message].c
}

// aggregate groups reactions by key, keys in order of their first live
// reaction, users in bytewise order, one vote per user and key.
func aggregate(reacts []*entry) []Reaction {
	var out []Reaction
	at := map[string]int{}
	for _, e := range reacts {
		key, _ := e.c.ReactionKey()
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, Reaction{Key: key})
		}
		r := &out[i]
		if j, found := slices.BinarySearchFunc(r.Users, e.Sender, cmpUser); !found {
			r.Users = slices.Insert(r.Users, j, e.Sender)
		}
		r.Count = len(r.Users)
	}
	return out
}

func cmpUser(a, b crdt.UserID) int { return bytes.Compare(a[:], b[:]) }

// placeReceipts puts each user's read marker on the last listed message
// at or before the event read.
func (p *Projection) placeReceipts(v *view) {
	users := make([]crdt.UserID, 0, len(p.receipts))
	for u := range p.receipts {
		users = append(users, u)
	}
	slices.SortFunc(users, cmpUser)
	for _, u := range users {
		at := p.receipts[u].Pos()
		if at.Compare(v.lastRead) > 0 {
			v.lastRead = at
		}
		i, found := slices.BinarySearchFunc(v.msgs, at, func(m *msg, pos Position) int { return m.Pos.Compare(pos) })
		if !found {
			i--
		}
		if i >= 0 {
			v.msgs[i].ReadBy = append(v.msgs[i].ReadBy, u)
		}
	}
}

// render returns c's own plain text and, when it has Markdown or HTML,
// the sanitized HTML.
func render(c *mimi.Content) (body, html string) {
	body = mimi.Summary(c)
	if _, md := c.Text(); md != "" {
		return body, mimi.RenderMarkdown(md)
	}
	if h := htmlPart(c); h != "" {
		return body, mimi.SanitizeHTML(h)
	}
	return body, ""
}

// mentions returns the users c mentions: those its mention list names
// and those the links of its sanitized rendering html point to (MIMI §5.4),
// each once, in bytewise order. Malformed user URIs do not count.
func mentions(c *mimi.Content, html string) []crdt.UserID {
	var out []crdt.UserID
	add := func(id string) {
		u, err := crdt.ParseKey(id)
		if err != nil {
			return
		}
		if i, found := slices.BinarySearchFunc(out, u, cmpUser); !found && len(out) < mimi.MaxMentions {
			out = slices.Insert(out, i, u)
		}
	}
	for _, uri := range c.MentionList() {
		if id, ok := strings.CutPrefix(uri, mimi.UserURIPrefix); ok {
			add(id)
		}
	}
	for _, id := range mimi.MentionedIDs(html) {
		add(id)
	}
	return out
}

// htmlPart returns the first text/html part meant to be rendered.
func htmlPart(c *mimi.Content) string {
	var out string
	c.Body.Walk(func(_ int, p *mimi.Part) bool {
		d := p.Disposition.Effective()
		ct, _, _ := strings.Cut(p.ContentType, ";")
		if p.Cardinality == mimi.SinglePart && (d == mimi.Render || d == mimi.Unspecified) &&
			strings.EqualFold(strings.TrimSpace(ct), "text/html") && utf8.Valid(p.Content) {
			out = string(p.Content)
			return false
		}
		return true
	})
	return out
}
