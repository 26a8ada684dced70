package timeline

import (
	"cmp"
	"slices"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// Position is an event's place in the log's linearization: by depth, then
// by ID bytewise.
type Position struct {
	Depth uint64
	ID    crdt.EventID
}

// Compare returns -1, 0 or +1 as p sorts before, with or after q.
func (p Position) Compare(q Position) int {
	if c := cmp.Compare(p.Depth, q.Depth); c != 0 {
		return c
	}
	return cmp.Compare(p.ID, q.ID)
}

// Item is one message event: its ID, depth, authenticated sender and
// device, display time, and MIMI content exactly as received (nil when the
// body was purged). Every Add of one ID must pass the same item, except
// that the content may be missing from some.
type Item struct {
	ID      crdt.EventID
	Depth   uint64
	Sender  crdt.UserID
	Device  crdt.DeviceID
	TS      int64 // display only; never used for ordering
	Content []byte
	// Decoded, when not nil, is Content decoded (by mimi.Decode) already.
	Decoded *mimi.Content
}

// Pos returns the item's position.
func (it *Item) Pos() Position { return Position{it.Depth, it.ID} }

// Receipt says that User has read up to Event, whose depth is Depth.
type Receipt struct {
	User  crdt.UserID
	Event crdt.EventID
	Depth uint64
}

// Pos returns the position of the event read.
func (r Receipt) Pos() Position { return Position{r.Depth, r.Event} }

// Message is one listed message as a client shows it.
type Message struct {
	ID     crdt.EventID
	Pos    Position
	Sender crdt.UserID
	Device crdt.DeviceID
	TS     int64 // of the original

	// Body is the current version's own plain text (media lines, then the
	// caption); HTML is its sanitized rendering when it has Markdown or
	// HTML, else ""; Fallback is what a client that knows no relations
	// shows: a quote of the replied-to message, then Body.
	Body     string
	HTML     string
	Fallback string
	Media    []mimi.Media
	// Mentions are the users the current version mentions (an edit's
	// mentions replace the original's), in bytewise order: see mentions.
	Mentions []crdt.UserID

	// Imported is what an imported message says of its original (author,
	// time, source, reactions there), nil for a message written here.
	Imported *mimi.Imported

	ReplyTo    *Ref // the message answered (for a thread reply too)
	ThreadRoot *Ref // the thread the message is in

	Edited    bool
	Versions  int // the original and its edits; 0 when redacted or deleted
	Reactions []Reaction
	Redacted  bool // the room redacted it: no content is left
	Deleted   bool // its sender deleted it (MIMI §5.6)
	ReadBy    []crdt.UserID
}

// Ref is a reference to another message by MIMI message ID.
type Ref struct {
	Message  mimi.MessageID
	Event    crdt.EventID // "" while no known item carries the ID
	Redacted bool         // the target is redacted or deleted
}

// Reaction aggregates the live reactions with one key, ordered by user.
type Reaction struct {
	Key   string
	Count int
	Users []crdt.UserID
}

// Version is the original of a message or one of its edits. Fallback is
// what a client that knows no edits shows for that event: for an edit, a
// reply quoting the original with the new text marked "* ".
type Version struct {
	Event    crdt.EventID
	Pos      Position
	TS       int64
	Body     string
	HTML     string
	Fallback string
	Mentions []crdt.UserID
}

// Ignored names an item that has no effect, and why.
type Ignored struct {
	Event  crdt.EventID
	Reason string
}

// Reasons an item is ignored.
const (
	ReasonMalformed      = "malformed content"
	ReasonDuplicate      = "duplicate message id"
	ReasonUnknownTarget  = "target not known"
	ReasonRedacted       = "redacted"
	ReasonTargetGone     = "target redacted or deleted"
	ReasonEditSender     = "edit by another user"
	ReasonEditTarget     = "edit of a non-message"
	ReasonEditOrder      = "edit placed before its original"
	ReasonReactionTarget = "reaction to a non-message"
	ReasonReactionKey    = "invalid reaction key"
	ReasonUnreactSender  = "unreaction by another user"
	ReasonUnreactTarget  = "unreaction of a non-reaction"
)

// Projection folds items, redactions and receipts into a timeline. The
// zero value is not usable; call New.
type Projection struct {
	items    map[crdt.EventID]*entry
	redacted map[crdt.EventID]bool
	receipts map[crdt.UserID]Receipt
	v        *view    // nil when an input changed since it was built
	fresh    []*entry // items added since v was built, for v.extend
}

// entry is an added item with its decoded content. c is nil when the item
// is redacted, purged or malformed; mid and kind survive a redaction.
type entry struct {
	Item
	c      *mimi.Content
	mid    mimi.MessageID
	hasMID bool
	kind   mimi.Kind
	known  bool // kind is known: the content was decoded once
	bad    bool // the content does not decode

	// Memos of pure functions of c (and, for the fallback, of the
	// replied-to content fbFor), which stay put across rebuilds.
	rendered   bool
	body, html string
	media      []mimi.Media
	mentions   []crdt.UserID
	fbSet      bool
	fbFor      *mimi.Content
	fb         string
	imported   *mimi.Imported
	impRead    bool
}

// importedInfo returns the entry's imported extension, decoded once.
func (e *entry) importedInfo() *mimi.Imported {
	if !e.impRead {
		e.imported, _ = e.c.ImportedInfo()
		e.impRead = true
	}
	return e.imported
}

// render returns the entry's plain text and HTML, computed once.
func (e *entry) render() (body, html string) {
	if !e.rendered {
		e.body, e.html = render(e.c)
		e.media = e.c.MediaParts()
		e.mentions = mentions(e.c, e.html)
		e.rendered = true
	}
	return e.body, e.html
}

// New returns an empty projection.
func New() *Projection {
	return &Projection{
		items:    map[crdt.EventID]*entry{},
		redacted: map[crdt.EventID]bool{},
		receipts: map[crdt.UserID]Receipt{},
	}
}

// Add adds an item. Adding an ID again only fills in missing content.
func (p *Projection) Add(it Item) {
	if old, ok := p.items[it.ID]; ok && (it.Content == nil || old.hadContent()) {
		return
	}
	e := &entry{Item: it}
	if it.Content != nil {
		var id mimi.MessageID
		var err error
		c := it.Decoded
		if c != nil {
			id, err = c.IDOver(it.Content)
		} else {
			id, c, err = mimi.MessageIDOf(it.Content)
		}
		if c == nil {
			e.bad = true
		} else { // err may be mimi.ErrNoURIs: a message without an ID
			e.c, e.kind, e.known = c, c.Kind(), true
			e.mid, e.hasMID = id, err == nil
		}
		e.Content, e.Decoded = nil, nil // decoded; the bytes are not needed again
	}
	if p.redacted[it.ID] {
		e.strip()
	}
	_, again := p.items[it.ID]
	p.items[it.ID] = e
	if again || p.v == nil {
		p.changed()
	} else {
		p.fresh = append(p.fresh, e)
	}
}

// changed notes an input change the view cannot be extended with.
func (p *Projection) changed() { p.v, p.fresh = nil, nil }

// MID returns the MIMI message ID of an added item, when its content
// decoded and carries one.
func (p *Projection) MID(id crdt.EventID) (mimi.MessageID, bool) {
	if e, ok := p.items[id]; ok && e.hasMID {
		return e.mid, true
	}
	return mimi.MessageID{}, false
}

// hadContent reports whether e was added with content (maybe redacted
// since).
func (e *entry) hadContent() bool { return e.known || e.bad }

// strip drops what a redaction removes: the content and its rendering.
func (e *entry) strip() {
	e.c, e.rendered, e.body, e.html, e.media, e.mentions = nil, false, "", "", nil, nil
	e.fbSet, e.fbFor, e.fb = false, nil, ""
}

// Redact records that id's content is gone, whether id was added yet or
// not.
func (p *Projection) Redact(id crdt.EventID) {
	if p.redacted[id] {
		return
	}
	p.redacted[id] = true
	if e, ok := p.items[id]; ok {
		e.strip()
	}
	p.changed()
}

// Purge is Redact for an item whose content is purged from the store: the
// item becomes what an Add without content makes of it (its kind and
// message ID are forgotten too), so that a projection that saw the content
// before the redaction equals one rebuilt from the purged store.
func (p *Projection) Purge(id crdt.EventID) {
	p.Redact(id)
	if e, ok := p.items[id]; ok && e.hadContent() {
		p.items[id] = &entry{Item: Item{ID: e.ID, Depth: e.Depth, Sender: e.Sender, Device: e.Device, TS: e.TS}}
		p.changed()
	}
}

// Read records a read receipt; per user, the one with the greatest
// position wins.
func (p *Projection) Read(r Receipt) {
	if old, ok := p.receipts[r.User]; ok && old.Pos().Compare(r.Pos()) >= 0 {
		return
	}
	p.receipts[r.User] = r
	p.changed()
}

// ReadMarker returns u's winning receipt.
func (p *Projection) ReadMarker(u crdt.UserID) (Receipt, bool) {
	r, ok := p.receipts[u]
	return r, ok
}

// Messages returns the listed messages in position order. The caller must
// not modify the returned messages' slices.
func (p *Projection) Messages() []Message {
	v := p.view()
	out := make([]Message, len(v.msgs))
	for i, m := range v.msgs {
		out[i] = m.Message
	}
	return out
}

// Backward calls fn with each listed message, the last by position first,
// until fn returns false; it copies nothing, so a scan of the whole room
// (a search) stays cheap. fn must not keep or modify the message.
func (p *Projection) Backward(fn func(m *Message) bool) {
	v := p.view()
	for i := len(v.msgs) - 1; i >= 0; i-- {
		if !fn(&v.msgs[i].Message) {
			return
		}
	}
}

// Message returns the listed message id.
func (p *Projection) Message(id crdt.EventID) (Message, bool) {
	m, ok := p.view().byEvent[id]
	if !ok {
		return Message{}, false
	}
	return m.Message, true
}

// Thread returns the thread whose root is the message root: the root
// first when it is listed, then every message whose ThreadRoot names it,
// in position order.
func (p *Projection) Thread(root crdt.EventID) []Message {
	v := p.view()
	var out []Message
	if m, ok := v.byEvent[root]; ok {
		out = append(out, m.Message)
	}
	for _, m := range v.msgs {
		if m.ThreadRoot != nil && m.ThreadRoot.Event == root && m.ID != root {
			out = append(out, m.Message)
		}
	}
	return out
}

// Versions returns the original of message id and its edits in position
// order (the last one is shown), or nil when id is not a listed message or
// is redacted or deleted.
func (p *Projection) Versions(id crdt.EventID) []Version {
	v := p.view()
	m, ok := v.byEvent[id]
	if !ok || m.Redacted || m.Deleted {
		return nil
	}
	out := make([]Version, 0, 1+len(m.edits))
	for i, e := range append([]*entry{m.orig}, m.edits...) {
		body, html := e.render()
		fb := mimi.Fallback(e.c, v.replyTarget(m))
		if i > 0 {
			fb = mimi.Fallback(e.c, m.orig.c)
		}
		out = append(out, Version{Event: e.ID, Pos: e.Pos(), TS: e.TS, Body: body, HTML: html, Fallback: fb, Mentions: e.mentions})
	}
	return out
}

// Ignored returns the items that have no effect, in position order.
func (p *Projection) Ignored() []Ignored {
	return slices.Clone(p.view().ignored)
}
