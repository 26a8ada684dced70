package node

// Search (api.EpSearch, `parley search`): the messages whose text holds
// every word of a query, the last word also as the start of a longer word
// (unless the query ends with a space or punctuation).
//
// The words are looked up in the stored blind index (searchindex.go), and
// each hit is confirmed against the room's timeline projection (content.go):
// its current text, edits applied, must hold the query's words, and a
// redacted, deleted or blocked user's message is never listed there. So
// the search can never find what was taken back, even where the index
// still holds an old version's words. Hits are confirmed newest first and
// the confirming stops once the limit is reached.

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/mimi"
	"github.com/parley-p2p/parley/rooms/timeline"
)

const (
	searchDefaultLimit = 20
	searchMaxLimit     = 200
	searchMaxQuery     = 256 // bytes
	searchMaxTerms     = 8
)

// searchQuery is a parsed query: the words all of which a message must
// hold (in the index's normal form: NFKC, lower-case).
type searchQuery []queryWord

func parseSearchQuery(q string) (searchQuery, error) {
	if !utf8.ValidString(q) {
		return nil, errorf(api.KindInvalid, "the search is not valid UTF-8")
	}
	if len(q) > searchMaxQuery {
		return nil, errorf(api.KindInvalid, "the search is %d bytes long; at most %d", len(q), searchMaxQuery)
	}
	var out searchQuery
	words(q, func(w string) { out = append(out, queryWord{w: w}) })
	if len(out) == 0 {
		return nil, errorf(api.KindInvalid, "nothing to search for: give a word (letters or digits)")
	}
	if len(out) > searchMaxTerms {
		return nil, errorf(api.KindInvalid, "the search has %d words; at most %d", len(out), searchMaxTerms)
	}
	if r, _ := utf8.DecodeLastRuneInString(q); !notWordRune(r) && utf8.RuneCountInString(out[len(out)-1].w) >= indexPrefixLo {
		out[len(out)-1].prefix = true
	}
	return out, nil
}

// searchRoom returns up to limit messages of room matching q, newest
// first, and whether there are more. indexed reports whether the indexer
// has caught up (Search): otherwise the room's projection is scanned.
func (e *Engine) searchRoom(room crdt.RoomID, rc *roomCtl, q searchQuery, limit int, indexed bool) ([]timeline.Message, bool, error) {
	if e.index == nil || !indexed { // it could not be opened, or it is behind
		return e.scanRoom(room, rc, q, limit)
	}
	ids, err := e.index.candidates(room, q)
	if err != nil {
		return nil, false, err
	}
	if ids == nil { // only common words: the newest messages hold them
		return e.scanRoom(room, rc, q, limit)
	}
	cands := make([]timeline.Position, 0, len(ids))
	for id := range ids {
		if d, ok := rc.log.Depth(id); ok {
			cands = append(cands, timeline.Position{Depth: d, ID: id})
		}
	}
	slices.SortFunc(cands, func(a, b timeline.Position) int { return b.Compare(a) })
	tl := e.timelineOf(room, rc)
	var out []timeline.Message
	seen := map[crdt.EventID]bool{}
	for _, c := range cands {
		// A candidate's message is at or before the candidate (an edit
		// comes after its original): stop once more than limit messages
		// confirmed are at or after this one.
		above := 0
		for i := range out {
			if out[i].Pos.Compare(c) >= 0 {
				above++
			}
		}
		if above > limit {
			break
		}
		m, ok := e.searchTarget(room, rc, tl, c.ID)
		if !ok || seen[m.ID] || m.Redacted || m.Deleted || m.Body == "" || !q.matches(m.Body) {
			continue
		}
		seen[m.ID] = true
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b timeline.Message) int { return b.Pos.Compare(a.Pos) })
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// scanRoom is searchRoom for a query of common words only: it confirms
// the room's messages newest first until it has more than limit.
func (e *Engine) scanRoom(room crdt.RoomID, rc *roomCtl, q searchQuery, limit int) ([]timeline.Message, bool, error) {
	var out []timeline.Message
	more := false
	e.timelineOf(room, rc).proj.Backward(func(m *timeline.Message) bool {
		if m.Redacted || m.Deleted || m.Body == "" || !q.matches(m.Body) {
			return true
		}
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, *m)
		return true
	})
	return out, more, nil
}

// searchTarget returns the listed message an indexed event is a version
// of: the message itself, or the original an edit changes.
func (e *Engine) searchTarget(room crdt.RoomID, rc *roomCtl, tl *roomTimeline, id crdt.EventID) (timeline.Message, bool) {
	if m, ok := tl.proj.Message(id); ok {
		return m, true
	}
	s, err := e.store.Get(id)
	if err != nil {
		return timeline.Message{}, false
	}
	c, ok := e.contentOf(room, rc, s.Event)
	if !ok {
		return timeline.Message{}, false
	}
	mc, err := mimi.Decode(c)
	if err != nil || mc.Kind() != mimi.KindEdit || mc.Target() == nil {
		return timeline.Message{}, false
	}
	return tl.messageByMID(*mc.Target())
}

// messageText returns the text the index holds of a message event whose
// readable body (in an encrypted room, its plaintext) is body: what the
// projection shows of it.
func messageText(room crdt.RoomID, ev *crdt.Event, body []byte) (string, bool) {
	if ev.Type != rooms.TypeMessage {
		return "", false
	}
	b, mc := checkedContent(room, ev, body)
	if mc == nil { // legacy content is re-encoded as MIMI
		var err error
		if mc, err = mimi.Decode(b); err != nil {
			return "", false
		}
	}
	return mimi.Summary(mc), true
}

// indexMessage asks the indexer to index an accepted message event this
// node can read, whose readable body is body. It is called when the
// event is accepted (indexAccepted) and when it is decrypted (keys.go
// decrypt, late decryption included). The core only lists the event
// (Engine.indexOut); the driver hands the list over after the step
// (handIndex), and the indexer decodes and posts its words.
func (e *Engine) indexMessage(room crdt.RoomID, rc *roomCtl, ev *crdt.Event, body []byte) {
	if e.ixr == nil || rc.room == nil || ev.Type != rooms.TypeMessage || !rc.room.Accepted(ev.ID) || rc.room.Redacted(ev.ID) {
		return
	}
	d, _ := rc.log.Depth(ev.ID)
	it := indexItem{room: room, ev: ev, body: body, id: ev.ID, depth: d, enc: rc.room.Encrypted()}
	if h, ok := e.handed[ev.ID]; ok && h.c != nil { // an imported message: its text is known
		it.text, it.hasText = h.text, true
	}
	e.indexOut = append(e.indexOut, it)
}

// indexAccepted indexes an accepted event that is not sealed (a sealed one
// is indexed when decrypt opens it).
func (e *Engine) indexAccepted(room crdt.RoomID, rc *roomCtl, ev *crdt.Event) {
	if rc.room != nil && ev.Body != nil && !(rc.room.Encrypted() && rooms.Sealed(ev.Type)) {
		e.indexMessage(room, rc, ev, ev.Body)
	}
}

// unindex writes the tombstone of a redacted event (the hashes of its
// postings, s/r/<id>) and asks the indexer to apply it; the driver calls
// it before it purges the event's body and plaintext, from which the
// words are read. A failure fails the purge, which is retried, so no
// body is purged before its postings are recorded for deletion.
func (e *Engine) unindex(id crdt.EventID) error {
	if e.index == nil {
		return nil
	}
	s, err := e.store.Get(id)
	if err != nil {
		return nil
	}
	rc := e.rooms[s.Event.Room]
	if rc == nil || rc.room == nil {
		return nil
	}
	body, ok := e.plainBody(rc, s.Event)
	if !ok {
		return nil
	}
	text, ok := messageText(s.Event.Room, s.Event, body)
	if !ok {
		return nil
	}
	if err := e.kr.local.PutLocal(indexTombKey(id), e.index.tombstone(s.Event.Room, id, text)); err != nil {
		return fmt.Errorf("write search index tombstone: %w", err)
	}
	e.indexOut = append(e.indexOut, indexItem{room: s.Event.Room, id: id, remove: true})
	return nil
}

// handIndex hands the step's index items to the indexer (the driver calls
// it after the step's commits, plaintext writes and purges).
func (e *Engine) handIndex() {
	if e.ixr == nil || len(e.indexOut) == 0 {
		return
	}
	// An event of a local proposal the store refused is not handed over.
	kept := e.indexOut[:0]
	for _, it := range e.indexOut {
		if rc := e.rooms[it.room]; it.remove || rc != nil && rc.room != nil && rc.room.Accepted(it.id) {
			kept = append(kept, it)
		}
	}
	e.ixr.hand(kept, nil)
	clear(e.indexOut)
	e.indexOut = e.indexOut[:0]
}

// openIndex opens the search index at engine start, before the rooms are
// loaded, and reports whether the indexer must catch up every room after
// loading (catchUpIndex): the index is new, of another format (rebuilt),
// or was not closed cleanly (a crash: what has no done mark is indexed).
func (e *Engine) openIndex() bool {
	ix, catchUp, err := openSearchIndex(e.kr.local, e.kr.atRest, defaultRand)
	if err != nil {
		e.log.Warn("no search index: searches scan the rooms", "err", err)
		return false
	}
	e.index = ix.reader()
	e.ixr = newIndexer(ix, e.store, e.log)
	e.ixr.rebuild = ix.fresh
	return catchUp
}

// catchUpIndex asks the indexer to catch up every room from its start.
func (e *Engine) catchUpIndex() {
	catch := map[crdt.RoomID]indexCatch{}
	for room, rc := range e.rooms {
		if rc.room != nil {
			catch[room] = indexCatch{from: 0, enc: rc.room.Encrypted()}
		}
	}
	e.ixr.hand(nil, catch)
}

// Search finds messages by their text (api.EpSearch).
func (e *Engine) Search(ctx context.Context, req api.SearchReq) (api.SearchResp, error) {
	resp := api.SearchResp{Hits: []api.SearchHit{}}
	q, err := parseSearchQuery(req.Query)
	if err != nil {
		return resp, err
	}
	limit := cmp.Or(req.Limit, searchDefaultLimit)
	if limit < 0 || limit > searchMaxLimit {
		return resp, errorf(api.KindInvalid, "bad limit %d (want 1 to %d)", req.Limit, searchMaxLimit)
	}
	// Wait for the indexer to index what was handed over before the
	// query (a message sent just before is found).
	indexed := e.ixr != nil && e.ixr.wait(ctx, searchIndexWait)
	err = e.do(ctx, func() error {
		type room struct {
			id crdt.RoomID
			rc *roomCtl
		}
		var rs []room
		if req.Room != "" {
			id, rc, err := e.roomOf(req.Room)
			if err != nil {
				return err
			}
			if rc.room != nil {
				rs = append(rs, room{id, rc})
			}
		} else {
			for id, rc := range e.rooms {
				if rc.room == nil {
					continue
				}
				if st := e.stateOf(rc); st.Member(e.ident.User).Membership == rooms.Join {
					rs = append(rs, room{id, rc})
				}
			}
		}
		slices.SortFunc(rs, func(a, b room) int { return strings.Compare(string(a.id), string(b.id)) })
		for _, r := range rs {
			ms, more, err := e.searchRoom(r.id, r.rc, q, limit, indexed)
			if err != nil {
				return err
			}
			resp.More = resp.More || more
			if len(ms) == 0 {
				continue
			}
			h := api.HistoryResp{Events: make([]api.TimelineEvent, len(ms))}
			for i := range ms {
				h.Events[i] = messageEvent(&ms[i], true)
			}
			e.labels(r.rc, &h)
			name := e.stateOf(r.rc).Name
			for _, te := range h.Events {
				resp.Hits = append(resp.Hits, api.SearchHit{Room: r.id.String(), RoomName: name, Ref: h.Refs[te.ID], Event: te})
			}
			for u, n := range h.Names {
				if resp.Names == nil {
					resp.Names = map[string]string{}
				}
				resp.Names[u] = n
			}
		}
		return nil
	})
	// Newest first across rooms; within a room the projection's order
	// stands (a stable sort on the time of the original).
	slices.SortStableFunc(resp.Hits, func(a, b api.SearchHit) int { return cmp.Compare(b.Event.TS, a.Event.TS) })
	if len(resp.Hits) > limit {
		resp.Hits, resp.More = resp.Hits[:limit], true
	}
	return resp, err
}
