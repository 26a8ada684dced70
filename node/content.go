package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/mimi"
	"github.com/parley-p2p/parley/rooms/timeline"
)

// Message content (docs/design.md §7, docs/protocol.md 5.2): the body of a
// message event (its sealed plaintext in an encrypted room) is MIMI
// content. Bodies of the older form rooms.MessageBody{Text} are read as
// plain text. The engine keeps one timeline.Projection per room, built on
// demand and then extended with each accepted event and the change it made
// to the visible timeline (rooms.Delta): newly shown events are projected,
// newly redacted ones redacted, events decrypted late (their epoch key came
// after them) re-read. Only what the projection cannot take back (an event
// hidden again, a counted receipt redacted, a failed local write redone)
// drops it, to be rebuilt in full when next asked for; so does a change of
// the blocked users. TestTimelineIncrementalEqualsRebuild checks that the
// extended projection equals a rebuild.

// TypeReceipt is the event type of a read receipt: a last-writer-wins
// register per (room, user) ordered by the position of the event read.
const TypeReceipt = "receipt"

// ReceiptBody is the body of a receipt event (sealed in encrypted rooms).
type ReceiptBody struct {
	Event []byte `cbor:"event"` // crdt.EventID bytes of the last event read
}

// maxContent bounds an encoded MIMI body: an event is at most
// crdt.MaxEventSize with its envelope and, sealed, the AEAD overhead.
const maxContent = 62_000

// UserURI and RoomURI name users and rooms inside MIMI content; they are
// hashed into every message ID.
func UserURI(u crdt.UserID) string { return "parley:user/" + u.String() }
func RoomURI(r crdt.RoomID) string { return "parley:room/" + r.String() }

// badContent stands for content that must not count (it does not decode, or
// its URIs do not name the event's sender and room): the projection lists
// it as malformed and ignores it.
var badContent = []byte{0}

// roomTimeline is the engine's projection of one room.
type roomTimeline struct {
	proj    *timeline.Projection
	list    []listed // visible, not hidden events in position order
	blocked []string // the blocked users it was built with
	// mids maps MIMI message IDs to the first event (by position) carrying
	// them, for watch lines of edits and reactions.
	mids map[mimi.MessageID]timeline.Position
}

// listed is one visible event of the timeline.
type listed struct {
	pos    timeline.Position
	kind   listKind
	hasMID bool           // a readable message with a MIMI message ID (mid)
	mid    mimi.MessageID // for mids when an owner is redacted
}

type listKind uint8

const (
	listOther   listKind = iota // a non-content event, shown as is
	listMessage                 // a message event in the projection
	listSealed                  // a message event this node cannot read
	listHidden                  // a receipt: not listed
)

// legacyContent converts a rooms.MessageBody into MIMI content with a salt
// derived from the event ID, so every node derives the same message ID.
func legacyContent(room crdt.RoomID, ev *crdt.Event, text string) []byte {
	var salt mimi.Salt
	sum := sha256.Sum256(append([]byte("parley/v1/legacy-salt"), ev.ID...))
	copy(salt[:], sum[:])
	c := mimi.New(mimi.Header{Salt: salt, SenderURI: UserURI(ev.User), RoomURI: RoomURI(room)}, mimi.TextPart(text))
	b, _, err := c.Marshal()
	if err != nil {
		return badContent
	}
	return b
}

// plainBody returns what this node can read of a content event's body:
// the body itself, or in an encrypted room what it decrypted.
func (e *Engine) plainBody(rc *roomCtl, ev *crdt.Event) ([]byte, bool) {
	if rc.room != nil && rc.room.Encrypted() && rooms.Sealed(ev.Type) {
		return e.kr.plaintext(ev.ID)
	}
	return ev.Body, ev.Body != nil
}

// contentOf returns a message event's MIMI bytes, checked to name its
// sender and room (badContent otherwise), and whether this node can read
// it at all.
func (e *Engine) contentOf(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) ([]byte, bool) {
	b, _, ok := e.contentDecoded(room, rc, ev)
	return b, ok
}

// contentDecoded is contentOf, with the content decoded when it was (nil
// for legacy and bad content).
func (e *Engine) contentDecoded(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) ([]byte, *mimi.Content, bool) {
	if h, ok := e.handed[ev.ID]; ok { // built by the importer (import.go)
		delete(e.handed, ev.ID)
		return h.b, h.c, true
	}
	body, ok := e.plainBody(rc, ev)
	if !ok {
		return nil, nil, false
	}
	b, c := checkedContent(room, ev, body)
	return b, c, true
}

// checkedContent returns a readable message body as MIMI bytes checked to
// name the event's sender and room, or badContent, with the content
// decoded when it was (nil for legacy and bad content).
func checkedContent(room crdt.RoomID, ev *crdt.Event, body []byte) ([]byte, *mimi.Content) {
	if len(body) > 0 && body[0]&0xe0 == 0xa0 { // a CBOR map: rooms.MessageBody
		var b rooms.MessageBody
		if rooms.DecodeBody(body, &b) != nil {
			return badContent, nil
		}
		return legacyContent(room, ev, b.Text), nil
	}
	c, err := mimi.Decode(body)
	if err != nil || c.SenderURI() != UserURI(ev.User) || c.RoomURI() != RoomURI(room) {
		return badContent, nil
	}
	return body, c
}

// timelineOf returns rc's projection, rebuilding it when it was dropped or
// the blocked users changed.
func (e *Engine) timelineOf(room crdt.RoomID, rc *roomCtl) *roomTimeline {
	if rc.tl != nil && slices.Equal(rc.tl.blocked, e.prefs.Blocked) {
		return rc.tl
	}
	rc.tl = e.buildTimeline(room, rc)
	return rc.tl
}

// buildTimeline projects rc's whole visible history.
func (e *Engine) buildTimeline(room crdt.RoomID, rc *roomCtl) *roomTimeline {
	tl := &roomTimeline{proj: timeline.New(), blocked: slices.Clone(e.prefs.Blocked), mids: map[mimi.MessageID]timeline.Position{}}
	if rc.room != nil {
		for _, id := range rc.log.Order() {
			if ok, _ := rc.room.Visible(id); !ok {
				continue
			}
			s, err := e.store.Get(id)
			if err != nil {
				e.log.Warn("read event for the timeline", "room", room, "event", id, "err", err)
				continue
			}
			e.project(room, rc, tl, s.Event)
		}
	}
	return tl
}

// project adds one visible event to tl. An event listed already is
// projected again only when this node may read it now: a sealed message,
// a receipt (which counts once readable).
func (e *Engine) project(room crdt.RoomID, rc *roomCtl, tl *roomTimeline, ev *crdt.Event) {
	if (ev.Type == rooms.TypeMessage || ev.Type == TypeBlob || ev.Type == TypeReceipt) && e.prefs.blocked(ev.User) {
		return
	}
	l := listed{pos: timeline.Position{Depth: ev.Depth, ID: ev.ID}}
	i, found := tl.find(l.pos)
	if found && tl.list[i].kind != listSealed && tl.list[i].kind != listHidden {
		return
	}
	switch ev.Type {
	case rooms.TypeMessage:
		it := timeline.Item{ID: ev.ID, Depth: ev.Depth, Sender: ev.User, Device: ev.Device, TS: ev.TS}
		l.kind = listMessage
		if rc.room.Redacted(ev.ID) {
			tl.proj.Redact(ev.ID)
		} else if c, dc, ok := e.contentDecoded(room, rc, ev); ok {
			it.Content, it.Decoded = c, dc
		} else {
			l.kind = listSealed
		}
		if l.kind == listMessage {
			tl.proj.Add(it)
		}
		if mid, ok := tl.proj.MID(ev.ID); ok && it.Content != nil {
			l.mid, l.hasMID = mid, true
			if old, dup := tl.mids[mid]; !dup || l.pos.Compare(old) < 0 {
				tl.mids[mid] = l.pos
			}
		}
	case TypeReceipt:
		l.kind = listHidden
		if r, ok := e.receiptOf(rc, ev); ok {
			tl.proj.Read(r)
		}
	}
	if found {
		tl.list[i] = l
	} else {
		tl.list = slices.Insert(tl.list, i, l)
	}
}

// find returns where pos is listed, or where it would be inserted.
func (tl *roomTimeline) find(pos timeline.Position) (int, bool) {
	return slices.BinarySearchFunc(tl.list, pos, func(x listed, p timeline.Position) int { return x.pos.Compare(p) })
}

// receiptOf reads a receipt event this node can read.
func (e *Engine) receiptOf(rc *roomCtl, ev *crdt.Event) (timeline.Receipt, bool) {
	body, ok := e.plainBody(rc, ev)
	if !ok || rc.room.Redacted(ev.ID) {
		return timeline.Receipt{}, false
	}
	var b ReceiptBody
	if rooms.DecodeBody(body, &b) != nil {
		return timeline.Receipt{}, false
	}
	id, err := crdt.IDFromBytes(b.Event)
	if err != nil {
		return timeline.Receipt{}, false
	}
	d, ok := rc.log.Depth(id)
	if !ok {
		return timeline.Receipt{}, false
	}
	return timeline.Receipt{User: ev.User, Event: id, Depth: d}, true
}

// timelineAfter extends rc's projection (when built) with an accepted
// event and the change d it made to the visible timeline.
func (e *Engine) timelineAfter(room crdt.RoomID, rc *roomCtl, ev *crdt.Event, d rooms.Delta) {
	tl := rc.tl
	if tl == nil {
		return
	}
	if len(d.Hidden) > 0 {
		rc.tl = nil // the projection cannot take an event back
		return
	}
	for _, id := range d.Shown {
		sev := ev
		if id != ev.ID {
			s, err := e.store.Get(id)
			if err != nil {
				rc.tl = nil // rebuilt (and the failure logged) when next asked for
				return
			}
			sev = s.Event
		}
		e.project(room, rc, tl, sev)
	}
	for _, id := range d.Redacted {
		if !e.timelineRedact(room, rc, tl, id) {
			rc.tl = nil
			return
		}
	}
}

// timelineRedact applies the redaction of a listed event to tl, and
// reports false when it cannot (a receipt already counted: tl is rebuilt
// instead).
func (e *Engine) timelineRedact(room crdt.RoomID, rc *roomCtl, tl *roomTimeline, id crdt.EventID) bool {
	d, ok := rc.log.Depth(id)
	if !ok {
		return true
	}
	i, found := tl.find(timeline.Position{Depth: d, ID: id})
	if !found {
		return true // not listed (not visible, or blocked)
	}
	l := &tl.list[i]
	switch l.kind {
	case listHidden:
		return false
	case listOther:
		return true // shown as redacted when listed
	case listSealed: // projected again, as a redacted message
		s, err := e.store.Get(id)
		if err != nil {
			return false
		}
		e.project(room, rc, tl, s.Event)
		return true
	}
	// A message is projected as redacted; the message ID it owned passes to
	// the next listed message carrying it.
	tl.proj.Purge(id)
	if !l.hasMID {
		return true
	}
	mid := l.mid
	l.hasMID, l.mid = false, mimi.MessageID{}
	if tl.mids[mid] != l.pos {
		return true
	}
	delete(tl.mids, mid)
	for _, o := range tl.list {
		if o.hasMID && o.mid == mid {
			tl.mids[mid] = o.pos
			break
		}
	}
	return true
}

// timelineReread projects again an event decrypted after it was listed as
// sealed (its epoch key came later).
func (e *Engine) timelineReread(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) {
	if rc.tl == nil || rc.room == nil {
		return
	}
	if ok, _ := rc.room.Visible(ev.ID); ok {
		e.project(room, rc, rc.tl, ev)
	}
}

// messageEvent is the timeline entry of a listed message.
func messageEvent(m *timeline.Message, decrypted bool) api.TimelineEvent {
	te := api.TimelineEvent{ID: m.ID.String(), Sender: m.Sender.String(), Type: rooms.TypeMessage, TS: m.TS, Depth: m.Pos.Depth, Decrypted: decrypted}
	if m.Redacted || m.Deleted {
		te.Redacted = true
		return te
	}
	te.Body, te.Edited, te.Versions = m.Body, m.Edited, m.Versions
	te.Media = messageMedia(m.Media)
	te.Imported = importedInfo(m.Imported)
	if len(m.Mentions) > 0 {
		te.Mentions = userStrings(m.Mentions)
	}
	if m.HTML != "" {
		te.Format, te.Formatted, te.HTML = "html", m.HTML, m.HTML
	}
	if m.ReplyTo != nil && m.ReplyTo.Event != "" {
		te.ReplyTo = m.ReplyTo.Event.String()
	}
	if m.ThreadRoot != nil && m.ThreadRoot.Event != "" {
		te.Thread = m.ThreadRoot.Event.String()
	}
	if len(m.Reactions) > 0 {
		te.Reactions = map[string][]string{}
		for _, r := range m.Reactions {
			te.Reactions[r.Key] = userStrings(r.Users)
		}
	}
	if len(m.ReadBy) > 0 {
		te.ReadBy = userStrings(m.ReadBy)
		te.Receipts = te.ReadBy
	}
	return te
}

func userStrings(us []crdt.UserID) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// history lists the projected timeline: one entry per message (edits,
// reactions and receipts fold into it), other events as they are; then
// --before, --after or --around and --limit cut it: the newest Limit
// entries (before the event Before), the oldest Limit after the event
// After, or Limit entries around the event Around (it and the newer half,
// the older half before it). Each page is read by a binary search and a
// walk of the entries it returns, so any page of a large room costs the
// same (the web app's windowed timeline, docs/web.md).
func (e *Engine) history(room crdt.RoomID, rc *roomCtl, req api.HistoryReq) ([]api.TimelineEvent, error) {
	tl := e.timelineOf(room, rc)
	if req.Versions != "" {
		return e.versions(room, rc, tl, req)
	}
	if req.Thread != "" {
		if req.After != "" || req.Around != "" {
			return nil, errorf(api.KindInvalid, "after and around page the room's timeline, not a thread")
		}
		root, err := crdt.ParseID(req.Thread)
		if err != nil {
			return nil, errorf(api.KindInvalid, "%q is not an event ID", req.Thread)
		}
		if _, ok := tl.proj.Message(root); !ok {
			return nil, errorf(api.KindNotFound, "no message %s in room %s to show the thread of", req.Thread, room)
		}
		var out []api.TimelineEvent
		for _, m := range tl.proj.Thread(root) {
			out = append(out, messageEvent(&m, true))
		}
		return cut(out, req, rc)
	}
	if req.After != "" && req.Around != "" || (req.After != "" || req.Around != "") && req.Before != "" {
		return nil, errorf(api.KindInvalid, "before, after and around exclude each other")
	}
	out := []api.TimelineEvent{}
	// entry appends the listed event i to *to, unless it is not shown.
	entry := func(i int, to *[]api.TimelineEvent) error {
		l := tl.list[i]
		switch l.kind {
		case listHidden:
			return nil
		case listMessage:
			if m, ok := tl.proj.Message(l.pos.ID); ok { // else an edit, reaction or ignored item
				*to = append(*to, messageEvent(&m, true))
			}
			return nil
		}
		s, err := e.store.Get(l.pos.ID)
		if err != nil {
			return fmt.Errorf("read event %s: %w", l.pos.ID, err)
		}
		if !req.Quiet || !keyEvent(s.Event.Type) {
			*to = append(*to, e.timelineEvent(rc, s.Event))
		}
		return nil
	}
	// newer reads forward from index i, oldest first, until out holds n
	// (all with n <= 0); it returns where it stopped.
	newer := func(i, n int) (int, error) {
		for ; i < len(tl.list) && (n <= 0 || len(out) < n); i++ {
			if err := entry(i, &out); err != nil {
				return i, err
			}
		}
		return i, nil
	}
	// older reads backward from index i (exclusive), at most n (all with
	// n < 0), and returns them oldest first.
	older := func(i, n int) ([]api.TimelineEvent, error) {
		var back []api.TimelineEvent
		for i--; i >= 0 && (n < 0 || len(back) < n); i-- {
			if err := entry(i, &back); err != nil {
				return nil, err
			}
		}
		slices.Reverse(back)
		return back, nil
	}
	if req.After != "" || req.Around != "" {
		id := req.After + req.Around
		at, err := posOf(id, rc)
		if err != nil {
			return nil, err
		}
		i, found := tl.find(*at)
		if req.After != "" {
			if found {
				i++
			}
			if _, err := newer(i, req.Limit); err != nil {
				return nil, err
			}
			return out, nil
		}
		// Around: the event and the newer half first, then the older
		// ones, then newer again where the older ones ran out.
		j, err := newer(i, (req.Limit+1)/2)
		if err != nil {
			return nil, err
		}
		rest := -1 // all
		if req.Limit > 0 {
			rest = req.Limit - len(out)
		}
		back, err := older(i, rest)
		if err != nil {
			return nil, err
		}
		if req.Limit > 0 && len(back)+len(out) < req.Limit {
			if _, err := newer(j, req.Limit-len(back)); err != nil {
				return nil, err
			}
		}
		return append(back, out...), nil
	}
	// Newest first, so that --limit reads only what it returns.
	at, err := beforePos(req, rc)
	if err != nil {
		return nil, err
	}
	hi := len(tl.list)
	if at != nil {
		hi, _ = tl.find(*at)
	}
	lim := req.Limit
	if lim <= 0 {
		lim = -1 // all
	}
	back, err := older(hi, lim)
	if back == nil {
		back = out
	}
	return back, err
}

// versions lists the original of the message req.Versions and its edits
// in position order (the last one is shown), each as an entry of its own
// event; an edit names the original in Replaces.
func (e *Engine) versions(room crdt.RoomID, rc *roomCtl, tl *roomTimeline, req api.HistoryReq) ([]api.TimelineEvent, error) {
	if req.Thread != "" || req.Before != "" || req.After != "" || req.Around != "" || req.Limit > 0 {
		return nil, errorf(api.KindInvalid, "versions lists one message: it goes without thread, before, after, around or limit")
	}
	id, err := crdt.ParseID(req.Versions)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q is not an event ID", req.Versions)
	}
	if !rc.log.Has(id) {
		return nil, errorf(api.KindNotFound, "unknown event %s in room %s", req.Versions, room)
	}
	m, ok := tl.proj.Message(id)
	if !ok {
		return nil, errorf(api.KindInvalid, "event %s is not a message (an edit, a reaction or another kind of event)", req.Versions)
	}
	vs := tl.proj.Versions(id)
	if vs == nil {
		return nil, errorf(api.KindInvalid, "message %s was deleted or redacted: it has no versions", req.Versions)
	}
	out := make([]api.TimelineEvent, len(vs))
	for i, v := range vs {
		te := api.TimelineEvent{ID: v.Event.String(), Sender: m.Sender.String(), Type: rooms.TypeMessage, TS: v.TS, Depth: v.Pos.Depth, Decrypted: true, Body: v.Body}
		if v.HTML != "" {
			te.Format, te.Formatted, te.HTML = "html", v.HTML, v.HTML
		}
		if len(v.Mentions) > 0 {
			te.Mentions = userStrings(v.Mentions)
		}
		if i > 0 {
			te.Replaces = m.ID.String()
		}
		out[i] = te
	}
	return out, nil
}

// beforePos is the position of --before, or nil.
func beforePos(req api.HistoryReq, rc *roomCtl) (*timeline.Position, error) {
	if req.Before == "" {
		return nil, nil
	}
	return posOf(req.Before, rc)
}

// posOf is the timeline position of the event s names.
func posOf(s string, rc *roomCtl) (*timeline.Position, error) {
	b, err := crdt.ParseID(s)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q is not an event ID", s)
	}
	d, ok := rc.log.Depth(b)
	if !ok {
		return nil, errorf(api.KindNotFound, "unknown event %s", s)
	}
	return &timeline.Position{Depth: d, ID: b}, nil
}

// cut applies --before (entries placed before that event) and --limit (the
// newest N) to a thread.
func cut(out []api.TimelineEvent, req api.HistoryReq, rc *roomCtl) ([]api.TimelineEvent, error) {
	at, err := beforePos(req, rc)
	if err != nil {
		return nil, err
	}
	if at != nil {
		out = slices.DeleteFunc(out, func(te api.TimelineEvent) bool {
			id, _ := crdt.ParseID(te.ID)
			return timeline.Position{Depth: te.Depth, ID: id}.Compare(*at) >= 0
		})
	}
	if req.Limit > 0 && len(out) > req.Limit {
		out = out[len(out)-req.Limit:]
	}
	if out == nil {
		out = []api.TimelineEvent{}
	}
	return out, nil
}

// target is a message a command acts on.
type target struct {
	ev  *crdt.Event
	msg timeline.Message
	mid mimi.MessageID
	c   *mimi.Content
}

// targetOf finds a listed, live message of the room by event ID.
func (e *Engine) targetOf(room crdt.RoomID, rc *roomCtl, s string) (*target, error) {
	id, err := crdt.ParseID(s)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q is not an event ID", s)
	}
	if !rc.log.Has(id) {
		return nil, errorf(api.KindNotFound, "unknown event %s in room %s", s, room)
	}
	m, ok := e.timelineOf(room, rc).proj.Message(id)
	if !ok {
		return nil, errorf(api.KindInvalid, "event %s is not a message (an edit, a reaction or another kind of event)", s)
	}
	if m.Redacted || m.Deleted {
		return nil, errorf(api.KindInvalid, "message %s was deleted", s)
	}
	st, err := e.store.Get(id)
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", id, err)
	}
	b, ok := e.contentOf(room, rc, st.Event)
	if !ok {
		return nil, errorf(api.KindUnavailable, "message %s is not decrypted on this node", s)
	}
	mid, c, err := mimi.MessageIDOf(b)
	if err != nil {
		return nil, errorf(api.KindInvalid, "message %s has no MIMI message ID", s)
	}
	return &target{ev: st.Event, msg: m, mid: mid, c: c}, nil
}

// header starts a new MIMI message by this user in room.
func (e *Engine) header(room crdt.RoomID) mimi.Header {
	e.touch()
	var salt mimi.Salt
	io.ReadFull(e.kr.rand, salt[:]) // a short read leaves zeros: the salt only tells apart equal messages
	return mimi.Header{Salt: salt, SenderURI: UserURI(e.ident.User), RoomURI: RoomURI(room)}
}

// checkText validates the text of a message or edit.
func checkText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return errorf(api.KindInvalid, "empty message")
	case len(text) > MaxMessage:
		return errorf(api.KindInvalid, "message of %d bytes is too large (at most %d; send big content as a file)", len(text), MaxMessage)
	case !utf8.ValidString(text):
		return errorf(api.KindInvalid, "the message is not valid UTF-8 text")
	}
	return nil
}

// textPart is the body of a message: plain text, or Markdown with its
// plain alternative.
func textPart(text string, markdown bool) mimi.Part {
	if markdown {
		return mimi.MarkdownPart(text)
	}
	return mimi.TextPart(text)
}

// mentionBody is the body of a message or edit with its mentions
// (docs/protocol.md §5.2): every "@USERID" in the text (not in code or
// links) and every user of mentions not written so (put in front of the
// text) becomes a link to parley:user/USERID showing "@" and the user's
// display name (or ID), and the URIs of the users linked are returned for
// the parley.mentions list. Plain text with mentions becomes a chooseOne
// of HTML and the plain text; without mentions, textPart.
func (e *Engine) mentionBody(rc *roomCtl, text string, markdown bool, mentions []string) (mimi.Part, []string, error) {
	if len(mentions) > mimi.MaxMentions {
		return mimi.Part{}, nil, errorf(api.KindInvalid, "%d mentions: at most %d", len(mentions), mimi.MaxMentions)
	}
	var prefix []string
	for _, s := range mentions {
		u, err := crdt.ParseKey(s)
		if err != nil {
			return mimi.Part{}, nil, errorf(api.KindInvalid, "mention: %q is not a user ID", s)
		}
		if at := "@" + u.String(); !slices.Contains(prefix, at) {
			prefix = append(prefix, at)
		}
	}
	if len(prefix) > 0 {
		sep := " "
		if markdown && strings.ContainsAny(text[:1], "#>-+*=|`~ \t0123456789") {
			sep = "\n\n" // the text starts with a block: mentions get a paragraph
		}
		text = strings.Join(prefix, " ") + sep + text
	}
	var st *rooms.State
	label := func(id string) (string, bool) {
		u, err := crdt.ParseKey(id)
		if err != nil || u.String() != id {
			return "", false
		}
		if st == nil && rc.room != nil {
			s := e.stateOf(rc)
			st = &s
		}
		name := ""
		if st != nil {
			name = st.Member(u).DisplayName
		}
		if name == "" {
			name = e.profileOf(u).DisplayName
		}
		if name == "" {
			name = id
		}
		return name, true
	}
	var part mimi.Part
	var ids []string
	if markdown {
		var md string
		md, ids = mimi.LinkMentions(text, label)
		part = mimi.MarkdownPart(md)
	} else {
		var h, plain string
		h, plain, ids = mimi.MentionText(text, label)
		part = mimi.TextPart(text)
		if len(ids) > 0 {
			part = mimi.HTMLPart(h, plain)
		}
	}
	if len(ids) > mimi.MaxMentions {
		return mimi.Part{}, nil, errorf(api.KindInvalid, "%d mentions: at most %d", len(ids), mimi.MaxMentions)
	}
	uris := make([]string, len(ids))
	for i, id := range ids {
		uris[i] = mimi.UserURIPrefix + id
	}
	return part, uris, nil
}

// authorContent encodes c and authors it as a message event.
func (e *Engine) authorContent(room crdt.RoomID, rc *roomCtl, c *mimi.Content) (*crdt.Event, error) {
	b, _, err := c.Marshal()
	if err != nil {
		return nil, errorf(api.KindInvalid, "encode message: %v", err)
	}
	if len(b) > maxContent {
		return nil, errorf(api.KindInvalid, "message of %d bytes encoded is too large (at most %d; send big content as a file)", len(b), maxContent)
	}
	return e.author(room, rc, rooms.TypeMessage, nil, b)
}

// sendContent builds and authors a message for Send.
func (e *Engine) sendContent(room crdt.RoomID, rc *roomCtl, req api.SendReq) (*crdt.Event, error) {
	body, mentions, err := e.mentionBody(rc, req.Text, req.Markdown, req.Mentions)
	if err != nil {
		return nil, err
	}
	h := e.header(room)
	var c *mimi.Content
	switch {
	case req.Thread != "":
		root, err := e.targetOf(room, rc, req.Thread)
		if err != nil {
			return nil, err
		}
		if r, ok := root.c.Thread(); ok { // a reply inside a thread names the thread's root
			root.mid = r
		}
		to := root.mid
		if req.ReplyTo != "" {
			t, err := e.targetOf(room, rc, req.ReplyTo)
			if err != nil {
				return nil, err
			}
			to = t.mid
		}
		c = mimi.ThreadReply(h, root.mid, to, body)
	case req.ReplyTo != "":
		t, err := e.targetOf(room, rc, req.ReplyTo)
		if err != nil {
			return nil, err
		}
		c = mimi.Reply(h, t.mid, body)
	default:
		c = mimi.New(h, body)
	}
	c.SetMentions(mentions)
	return e.authorContent(room, rc, c)
}

// Edit replaces the text of one of this user's messages.
func (e *Engine) Edit(ctx context.Context, req api.EditReq) (api.EventResp, error) {
	if err := checkText(req.Text); err != nil {
		return api.EventResp{}, err
	}
	return e.relate(ctx, req.Room, req.Event, func(room crdt.RoomID, rc *roomCtl, t *target) ([]*mimi.Content, error) {
		if t.ev.User != e.ident.User {
			return nil, errorf(api.KindPermission, "message %s is %s's; only its sender can edit it", req.Event, t.ev.User)
		}
		body, mentions, err := e.mentionBody(rc, req.Text, req.Markdown, req.Mentions)
		if err != nil {
			return nil, err
		}
		c := mimi.Edit(e.header(room), t.mid, t.c.InReplyTo, t.c.TopicID, body)
		c.SetMentions(mentions)
		return []*mimi.Content{c}, nil
	})
}

// React adds this user's reaction with a key to a message.
func (e *Engine) React(ctx context.Context, req api.ReactReq) (api.EventResp, error) {
	return e.relate(ctx, req.Room, req.Event, func(room crdt.RoomID, _ *roomCtl, t *target) ([]*mimi.Content, error) {
		for _, r := range t.msg.Reactions {
			if r.Key == req.Key && slices.Contains(r.Users, e.ident.User) {
				return nil, errorf(api.KindInvalid, "you already reacted to %s with %q", req.Event, req.Key)
			}
		}
		c, err := mimi.React(e.header(room), t.mid, req.Key)
		if err != nil {
			return nil, errorf(api.KindInvalid, "bad reaction: a reaction is 1 to %d bytes of text without line breaks", mimi.MaxReactionKey)
		}
		return []*mimi.Content{c}, nil
	})
}

// Unreact withdraws every live reaction of this user with a key on a
// message (one unreaction event each; the answer names the last).
func (e *Engine) Unreact(ctx context.Context, req api.ReactReq) (api.EventResp, error) {
	return e.relate(ctx, req.Room, req.Event, func(room crdt.RoomID, rc *roomCtl, t *target) ([]*mimi.Content, error) {
		live, err := e.myReactions(room, rc, t.mid, req.Key)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 {
			return nil, errorf(api.KindInvalid, "you have no reaction %q on %s", req.Key, req.Event)
		}
		var cs []*mimi.Content
		for _, r := range live {
			cs = append(cs, mimi.Unreact(e.header(room), r, t.mid))
		}
		return cs, nil
	})
}

// relate authors, on the engine goroutine, the contents fn makes about the
// message event in room, and answers with the last event authored.
func (e *Engine) relate(ctx context.Context, roomID, event string, fn func(crdt.RoomID, *roomCtl, *target) ([]*mimi.Content, error)) (api.EventResp, error) {
	var resp api.EventResp
	err := e.do(ctx, func() error {
		room, rc, err := e.roomOf(roomID)
		if err != nil {
			return err
		}
		t, err := e.targetOf(room, rc, event)
		if err != nil {
			return err
		}
		cs, err := fn(room, rc, t)
		if err != nil {
			return err
		}
		for _, c := range cs {
			ev, err := e.authorContent(room, rc, c)
			if err != nil {
				return err
			}
			resp.Event = ev.ID.String()
		}
		return nil
	})
	return resp, err
}

// myReactions returns the message IDs of this user's reactions with key
// to the message to that no unreaction of this user withdrew yet.
func (e *Engine) myReactions(room crdt.RoomID, rc *roomCtl, to mimi.MessageID, key string) ([]mimi.MessageID, error) {
	var reacts []mimi.MessageID
	withdrawn := map[mimi.MessageID]bool{}
	for _, l := range e.timelineOf(room, rc).list {
		if l.kind != listMessage {
			continue
		}
		s, err := e.store.Get(l.pos.ID)
		if err != nil {
			return nil, fmt.Errorf("read event %s: %w", l.pos.ID, err)
		}
		if s.Event.User != e.ident.User || rc.room.Redacted(s.Event.ID) {
			continue
		}
		b, ok := e.contentOf(room, rc, s.Event)
		if !ok {
			continue
		}
		mid, c, err := mimi.MessageIDOf(b)
		if err != nil {
			continue
		}
		switch c.Kind() {
		case mimi.KindReaction:
			if k, _ := c.ReactionKey(); k == key && c.InReplyTo != nil && *c.InReplyTo == to {
				reacts = append(reacts, mid)
			}
		case mimi.KindUnreaction:
			withdrawn[*c.Replaces] = true
		}
	}
	return slices.DeleteFunc(reacts, func(m mimi.MessageID) bool { return withdrawn[m] }), nil
}

// MarkRead authors a read receipt up to an event of the room.
func (e *Engine) MarkRead(ctx context.Context, req api.ReadReq) (api.Empty, error) {
	return api.Empty{}, e.do(ctx, func() error {
		room, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		id, err := crdt.ParseID(req.Event)
		if err != nil {
			return errorf(api.KindInvalid, "%q is not an event ID", req.Event)
		}
		if rc.room == nil || !rc.log.Has(id) {
			return errorf(api.KindNotFound, "unknown event %s in room %s", req.Event, room)
		}
		if ok, _ := rc.room.Visible(id); !ok {
			return errorf(api.KindNotFound, "unknown event %s in room %s", req.Event, room)
		}
		d, _ := rc.log.Depth(id)
		if r, ok := e.timelineOf(room, rc).proj.ReadMarker(e.ident.User); ok && r.Pos().Compare(timeline.Position{Depth: d, ID: id}) >= 0 {
			return nil // already read up to there or later
		}
		_, err = e.author(room, rc, TypeReceipt, nil, rooms.Encode(ReceiptBody{Event: []byte(id)}))
		return err
	})
}

// watchItem is the watch line of an accepted event: a message as the
// projection lists it (an edit, reaction or unreaction as the updated
// message it changes), a receipt as kind "receipt", anything else as is.
func (e *Engine) watchItem(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) (api.WatchItem, bool) {
	it := api.WatchItem{Kind: "event", Room: room.String()}
	switch ev.Type {
	case TypeReceipt:
		r, ok := e.receiptOf(rc, ev)
		if !ok {
			return it, false
		}
		it.Kind = "receipt"
		it.Signal = &api.Signal{User: ev.User.String(), Device: ev.Device.String(), Read: r.Event.String()}
		return it, true
	case rooms.TypeMessage:
		if ok, _ := rc.room.Visible(ev.ID); ok {
			tl := e.timelineOf(room, rc)
			m, ok := tl.proj.Message(ev.ID)
			news := ok // a new message or an edit: mentions_me applies
			if !ok {
				// An edit or a reaction: show the message it changes.
				if c, readable := e.contentOf(room, rc, ev); readable {
					if mc, err := mimi.Decode(c); err == nil {
						if t := mc.Target(); t != nil {
							m, ok = tl.messageByMID(*t)
							news = mc.Kind() == mimi.KindEdit && ev.User == m.Sender
						}
					}
				}
			}
			if ok {
				te := messageEvent(&m, true)
				it.Event = &te
				it.MentionsMe = news && slices.Contains(m.Mentions, e.ident.User)
				return it, true
			}
		}
	}
	te := e.timelineEvent(rc, ev)
	it.Event = &te
	return it, true
}

// messageByMID finds the listed message a MIMI message ID names.
func (tl *roomTimeline) messageByMID(id mimi.MessageID) (timeline.Message, bool) {
	l, ok := tl.mids[id]
	if !ok {
		return timeline.Message{}, false
	}
	return tl.proj.Message(l.ID)
}
