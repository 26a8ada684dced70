package node

// Search (api.EpSearch, `parley search`): the messages whose text holds
// every word of a query.
//
// What is searched is the room's timeline projection (content.go), the
// in-memory view that history lists: it holds the current text of every
// message this node can read (in an encrypted room, what it decrypted),
// edits applied; a redacted or deleted message has no text left in it and
// blocked users' messages are not in it. So the search needs no store of
// its own and can never find what was taken back. A query scans the
// projection newest first and stops at the limit; the lower-cased text of
// each message is kept beside the projection (roomTimeline.folded) and
// goes with it, so a query costs one substring scan per message, measured
// by BenchmarkSearch.

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/timeline"
)

const (
	searchDefaultLimit = 20
	searchMaxLimit     = 200
	searchMaxQuery     = 256 // bytes
	searchMaxTerms     = 8
)

// searchQuery is a parsed query: lower-cased words, all of which a message
// must hold.
type searchQuery []string

func parseSearchQuery(q string) (searchQuery, error) {
	if !utf8.ValidString(q) {
		return nil, errorf(api.KindInvalid, "the search is not valid UTF-8")
	}
	if len(q) > searchMaxQuery {
		return nil, errorf(api.KindInvalid, "the search is %d bytes long; at most %d", len(q), searchMaxQuery)
	}
	terms := strings.Fields(strings.ToLower(q))
	if len(terms) == 0 {
		return nil, errorf(api.KindInvalid, "nothing to search for: give a word")
	}
	if len(terms) > searchMaxTerms {
		return nil, errorf(api.KindInvalid, "the search has %d words; at most %d", len(terms), searchMaxTerms)
	}
	return searchQuery(terms), nil
}

func (q searchQuery) match(folded string) bool {
	for _, t := range q {
		if !strings.Contains(folded, t) {
			return false
		}
	}
	return true
}

// foldedText is a message's text as last searched and its lower-cased form.
type foldedText struct{ src, folded string }

// fold returns m's text lower-cased, from the cache while the text is the
// same (an edit changes it).
func (tl *roomTimeline) fold(m *timeline.Message) string {
	if f, ok := tl.folded[m.ID]; ok && f.src == m.Body {
		return f.folded
	}
	if tl.folded == nil {
		tl.folded = map[crdt.EventID]foldedText{}
	}
	f := foldedText{src: m.Body, folded: strings.ToLower(m.Body)}
	tl.folded[m.ID] = f
	return f.folded
}

// search returns up to limit messages of tl matching q, newest first, and
// whether there are more.
func (tl *roomTimeline) search(q searchQuery, limit int) ([]timeline.Message, bool) {
	var out []timeline.Message
	more := false
	tl.proj.Backward(func(m *timeline.Message) bool {
		if m.Redacted || m.Deleted || m.Body == "" || !q.match(tl.fold(m)) {
			return true
		}
		if len(out) == limit {
			more = true
			return false
		}
		out = append(out, *m)
		return true
	})
	return out, more
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
			ms, more := e.timelineOf(r.id, r.rc).search(q, limit)
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
