package node

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// searchIDs runs a search on engine i and returns the IDs of the hits.
func (b *bus) searchIDs(i int, req api.SearchReq) ([]string, api.SearchResp) {
	b.t.Helper()
	r, err := b.engines[i].Search(b.ctx, req)
	b.ok(err)
	var ids []string
	for _, h := range r.Hits {
		ids = append(ids, h.Event.ID)
	}
	return ids, r
}

// indexed waits until the indexer of every running engine has indexed
// what was handed over to it (a minute at most: a loaded machine).
func (b *bus) indexed() {
	b.t.Helper()
	for i, e := range b.engines {
		if e == nil || e.ixr == nil {
			continue
		}
		deadline := time.Now().Add(time.Minute)
		for !e.ixr.wait(b.ctx, time.Second) {
			if time.Now().After(deadline) {
				b.t.Fatalf("seed %d: the indexer of engine %d did not catch up in a minute", b.seed, i)
			}
		}
	}
}

// TestSearch: in plaintext and encrypted rooms, a member finds messages by
// every word of a query, case-insensitively, newest first; an edit is found
// by its new text only; a redacted message and a blocked user's messages
// are never found; a search of all rooms spans the joined rooms.
//
// With a lookup cap of 1, every word is common and the search scans the
// projection instead of reading postings: the same results.
func TestSearch(t *testing.T) {
	for _, c := range []struct {
		enc bool
		cap int
	}{{false, indexLookupCap}, {true, indexLookupCap}, {false, 1}, {true, 1}} {
		enc := c.enc
		t.Run(fmt.Sprintf("encrypted=%v/cap=%d", c.enc, c.cap), func(t *testing.T) {
			defer func(was int) { indexLookupCap = was }(indexLookupCap)
			indexLookupCap = c.cap
			b := newBus(t, 3, 2)
			room, _ := b.contentRoom(enc)
			other, _ := b.contentRoom(enc)
			m1 := b.sendReq(0, api.SendReq{Room: room, Text: "The Quick brown fox"})
			b.drain()
			m2 := b.sendReq(0, api.SendReq{Room: room, Text: "a lazy dog, not quick"})
			b.drain()
			m3 := b.sendReq(1, api.SendReq{Room: room, Text: "**quick** and *brown*", Markdown: true})
			m4 := b.sendReq(0, api.SendReq{Room: other, Text: "quick in another room"})
			b.drain()

			ids, r := b.searchIDs(1, api.SearchReq{Room: room, Query: "QUICK"})
			if want := []string{m3, m2, m1}; !slices.Equal(ids, want) {
				t.Fatalf("quick: %v, want %v (newest first)", ids, want)
			}
			if r.Hits[2].Event.Body != "The Quick brown fox" || r.Names[b.user(0)] == "" && r.Hits[0].Ref == "" {
				t.Fatalf("hit %+v, names %v", r.Hits[2], r.Names)
			}
			if ids, _ = b.searchIDs(1, api.SearchReq{Room: room, Query: "brown quick"}); !slices.Equal(ids, []string{m3, m1}) {
				t.Fatalf("brown quick: %v, want [%s %s]", ids, m3, m1)
			}
			ids, r = b.searchIDs(1, api.SearchReq{Room: room, Query: "quick", Limit: 2})
			if !slices.Equal(ids, []string{m3, m2}) || !r.More {
				t.Fatalf("limit 2: %v more %v", ids, r.More)
			}
			ids, r = b.searchIDs(1, api.SearchReq{Query: "quick"})
			if i := slices.Index(ids, m4); len(ids) != 4 || i < 0 || r.Hits[i].Room != other || r.Hits[i].RoomName != "content" {
				t.Fatalf("all rooms: %+v", r.Hits)
			}

			// An edit: found by its new text, no longer by the old.
			b.ok2(b.engines[0].Edit(b.ctx, api.EditReq{Room: room, Event: m1, Text: "The slow red fox"}))
			b.drain()
			if ids, _ = b.searchIDs(1, api.SearchReq{Room: room, Query: "brown"}); !slices.Equal(ids, []string{m3}) {
				t.Fatalf("brown after the edit: %v", ids)
			}
			if ids, _ = b.searchIDs(1, api.SearchReq{Room: room, Query: "slow red"}); !slices.Equal(ids, []string{m1}) {
				t.Fatalf("slow red after the edit: %v", ids)
			}

			// A redaction: gone from the search.
			b.ok2(b.engines[0].Redact(b.ctx, api.RedactReq{Room: room, Event: m2}))
			b.drain()
			if ids, _ = b.searchIDs(1, api.SearchReq{Room: room, Query: "lazy"}); len(ids) != 0 {
				t.Fatalf("a redacted message is found: %v", ids)
			}

			// A blocked user's messages are not found; unblocked, they are.
			b.ok2(b.engines[1].SetBlocked(b.ctx, b.user(0), true))
			if ids, _ = b.searchIDs(1, api.SearchReq{Query: "fox"}); len(ids) != 0 {
				t.Fatalf("a blocked user's message is found: %v", ids)
			}
			b.ok2(b.engines[1].SetBlocked(b.ctx, b.user(0), false))
			if ids, _ = b.searchIDs(1, api.SearchReq{Query: "fox"}); !slices.Equal(ids, []string{m1}) {
				t.Fatalf("after unblocking: %v", ids)
			}
		})
	}
}

// TestSearchBadInput: bad queries and limits are refused with a clear
// error.
func TestSearchBadInput(t *testing.T) {
	b := newBus(t, 4, 1)
	room, _ := b.contentRoom(false)
	for _, c := range []struct {
		req  api.SearchReq
		want string
	}{
		{api.SearchReq{Room: room, Query: "  "}, "nothing to search for"},
		{api.SearchReq{Room: room, Query: strings.Repeat("x", searchMaxQuery+1)}, "at most 256"},
		{api.SearchReq{Room: room, Query: "a b c d e f g h i"}, "at most 8"},
		{api.SearchReq{Room: room, Query: "x", Limit: -1}, "bad limit"},
		{api.SearchReq{Room: room, Query: "x", Limit: searchMaxLimit + 1}, "bad limit"},
		{api.SearchReq{Room: room, Query: "\xff"}, "UTF-8"},
		{api.SearchReq{Room: "nonsense", Query: "x"}, "not a room ID"},
	} {
		_, err := b.engines[0].Search(b.ctx, c.req)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.req, err, c.want)
		}
	}
}

// FuzzSearchQuery: any query is refused with an error or parsed into at
// most searchMaxTerms words in normal form; a text holding the query
// matches it; and whenever a text matches a query, the index of that text
// yields it as a candidate (the blind keys of the words and prefixes a
// query looks up are among those the text posted). Nothing panics.
func FuzzSearchQuery(f *testing.F) {
	for _, c := range [][2]string{
		{"hello", "Hello, world"}, {"Quick brown", "the quick brown fox"}, {"  ", "x"}, {"\xff", "x"},
		{"a b c d e f g h i", "a b c"}, {"ÄÖÜ straße", "äöü STRASSE straße"}, {strings.Repeat("x", 300), "x"},
		{"inter", "International relations"}, {"internationa", "internationally"}, {"ﬁne", "fine print"},
		{"café ", "Café au lait"}, {"東京", "東京タワー"}, {"e\u0301", "\u00e9"},
	} {
		f.Add(c[0], c[1])
	}
	f.Fuzz(func(t *testing.T, query, text string) {
		q, err := parseSearchQuery(query)
		if err != nil {
			return
		}
		if len(q) == 0 || len(q) > searchMaxTerms {
			t.Fatalf("%q parsed into %d words", query, len(q))
		}
		for _, w := range q {
			var again []string
			words(w.w, func(x string) { again = append(again, x) })
			if len(again) != 1 || again[0] != w.w {
				t.Fatalf("%q: word %q is not in normal form (%q)", query, w.w, again)
			}
		}
		if !q.matches(query) {
			t.Fatalf("%q does not match its own text", query)
		}
		if !q.matches(text) {
			return
		}
		ix := testIndex(t, NewMemLocal())
		room := crdt.RoomID("room")
		ix.add(room, "event", text)
		if err := ix.flush(); err != nil {
			t.Fatal(err)
		}
		got, err := ix.candidates(room, q)
		if err != nil || !got["event"] {
			t.Fatalf("%q matches %q but the index does not find it (%v)", query, text, err)
		}
	})
}

// TestRoomListDM: room/list names the other user of a direct-message room
// on both sides, and nothing for other rooms.
func TestRoomListDM(t *testing.T) {
	b := newBus(t, 5, 2)
	plain, _ := b.contentRoom(false)
	r, err := b.engines[0].CreateDM(b.ctx, b.idents[1].User)
	b.ok(err)
	b.drain()
	b.join(1, r.Room)
	for i, want := range []string{b.user(1), b.user(0)} {
		l, err := b.engines[i].Rooms(b.ctx)
		b.ok(err)
		got := map[string]string{}
		for _, s := range l.Rooms {
			got[s.Room] = s.DM
		}
		if got[r.Room] != want || got[plain] != "" {
			t.Fatalf("engine %d: room list DMs %v, want %s for %s and none for %s", i, got, want, r.Room, plain)
		}
	}
}

// TestSearchIndexRedaction: in plaintext and encrypted rooms, each node
// posts a message's words under its event, and after the message is
// redacted no posting of that event is left in any node's store; nothing
// of the text is ever in the index's keys or values.
func TestSearchIndexRedaction(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			b := newBus(t, 6, 2)
			room, _ := b.contentRoom(enc)
			m := b.sendReq(1, api.SendReq{Room: room, Text: "Zebrafish quietly marching"})
			keep := b.sendReq(1, api.SendReq{Room: room, Text: "zebrafish stays"})
			b.drain()
			b.indexed()
			for i := range 2 {
				if n := postingsOf(t, b.locals[i], mustEventID(t, m)); n == 0 {
					t.Fatalf("node %d has no postings of the message", i)
				}
			}
			b.ok2(b.engines[0].Redact(b.ctx, api.RedactReq{Room: room, Event: m}))
			b.drain()
			b.indexed()
			for i := range 2 {
				if n := postingsOf(t, b.locals[i], mustEventID(t, m)); n != 0 {
					t.Fatalf("node %d keeps %d postings of the redacted message", i, n)
				}
				if n := postingsOf(t, b.locals[i], mustEventID(t, keep)); n == 0 {
					t.Fatalf("node %d lost the postings of another message", i)
				}
				b.locals[i].Each(func(k, v []byte) {
					if bytes.HasPrefix(k, []byte("s/")) && (bytes.Contains(k, []byte("ebrafish")) || bytes.Contains(v, []byte("ebrafish"))) {
						t.Fatalf("node %d: the index holds text in %q", i, k)
					}
				})
				if ids, _ := b.searchIDs(i, api.SearchReq{Room: room, Query: "zebrafish"}); !slices.Equal(ids, []string{keep}) {
					t.Fatalf("node %d finds %v", i, ids)
				}
			}
		})
	}
}

func mustEventID(t *testing.T, s string) crdt.EventID {
	t.Helper()
	id, err := crdt.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestSearchIndexRebuild: a node that stopped cleanly keeps its index; one
// whose index was lost or not closed (a crash) rebuilds it from the store
// at start, messages decrypted in an encrypted room included; a search
// that prefixes its last word finds the longer word.
func TestSearchIndexRebuild(t *testing.T) {
	b := newBus(t, 7, 2)
	room, _ := b.contentRoom(true)
	m := b.sendReq(0, api.SendReq{Room: room, Text: "the Internationale, sung"})
	b.drain()
	id := mustEventID(t, m)
	b.indexed()
	restart := func() {
		b.stop(1)
		<-b.engines[1].stopped
		<-b.engines[1].ixr.stopped
		if st, err := b.locals[1].GetLocal(indexStateName); err != nil || !bytes.Equal(st, []byte{indexFormat, indexClosed}) {
			t.Fatalf("index state after a clean stop: %q %v", st, err)
		}
		b.start(1)
		b.indexed()
	}
	find := func(what string) {
		t.Helper()
		if ids, _ := b.searchIDs(1, api.SearchReq{Room: room, Query: "sung internat"}); !slices.Equal(ids, []string{m}) {
			t.Fatalf("%s: search finds %v, want [%s]", what, ids, m)
		}
	}
	find("before")
	before := postingsOf(t, b.locals[1], id)
	restart()
	if n := postingsOf(t, b.locals[1], id); n != before {
		t.Fatalf("a clean restart changed the postings: %d, was %d", n, before)
	}
	find("after a clean restart")

	// A crash lost the index's writes: no posting and no done mark, state
	// left open.
	b.stop(1)
	<-b.engines[1].stopped
	<-b.engines[1].ixr.stopped
	var ks [][]byte
	b.locals[1].Each(func(k, _ []byte) {
		if bytes.HasPrefix(k, indexPostings) || bytes.HasPrefix(k, indexDone) {
			ks = append(ks, bytes.Clone(k))
		}
	})
	for _, k := range ks {
		b.ok(b.locals[1].DeleteLocal(k))
	}
	b.ok(b.locals[1].PutLocal(indexStateName, []byte{indexFormat, indexOpen}))
	b.start(1)
	b.indexed()
	if n := postingsOf(t, b.locals[1], id); n != before {
		t.Fatalf("rebuilt index: %d postings of the message, want %d", n, before)
	}
	find("after the rebuild")
}
