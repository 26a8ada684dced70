package node

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// A chat import signs each batch off the engine goroutine while the batch
// before it commits, on the chain as the engine drafted it then. When this
// device authored something else in the room in between (here a message
// sent after step 1, when batch 1 is signed already), the batch does not
// continue the device's chain any more and is signed again on the engine
// goroutine: every message arrives, the device's events form one chain
// (no two with the same seq: an equivocation), the sent message sits in
// that chain between two imported ones, and a second import adds nothing.
func TestImportChainAfterInterleavedSend(t *testing.T) {
	const n = 2*importChatBatch + 100 // three batches
	src := t.TempDir()
	writeTelegramExport(t, src, n)
	nd, ctx := serveTestNode(t)
	made, err := nd.engine.CreateRoom(ctx, api.RoomCreateReq{Name: "Interleaved"})
	if err != nil {
		t.Fatal(err)
	}
	var sent string
	nd.importStep = func(k int) {
		if k != 1 {
			return
		}
		ev, err := nd.engine.Send(ctx, api.SendReq{Room: made.Room, Text: "sent during the import"})
		if err != nil {
			t.Error(err)
			return
		}
		sent = ev.Event
	}
	r, err := nd.importChat(ctx, api.ImportChatReq{Format: "telegram", Path: src, Room: made.Room})
	if err != nil {
		t.Fatal(err)
	}
	nd.importStep = nil
	if r.New != n || sent == "" {
		t.Fatalf("imported %d of %d, sent %q", r.New, n, sent)
	}
	room, err := crdt.ParseID(r.Room)
	if err != nil {
		t.Fatal(err)
	}
	me := nd.ident.Device.Public()
	bySeq := map[uint64]crdt.EventID{}
	var sentSeq uint64
	if err := nd.store.Scan(room, 0, func(s crdt.Stored) bool {
		ev := s.Event
		if ev.Device != me {
			return true
		}
		if old, dup := bySeq[ev.Seq]; dup {
			t.Errorf("seq %d twice: %s and %s", ev.Seq, old, ev.ID)
		}
		bySeq[ev.Seq] = ev.ID
		if ev.ID.String() == sent {
			sentSeq = ev.Seq
		}
		if s.Status != crdt.StatusAccepted {
			t.Errorf("own event %s (seq %d) is %v", ev.ID, ev.Seq, s.Status)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if sentSeq == 0 || bySeq[sentSeq-1] == "" || bySeq[sentSeq+1] == "" {
		t.Fatalf("the sent message (seq %d) is not between two events of the chain", sentSeq)
	}
	h, err := nd.engine.History(ctx, api.HistoryReq{Room: r.Room, Limit: n + 10})
	if err != nil {
		t.Fatal(err)
	}
	msgs := 0
	for _, ev := range h.Events {
		if ev.Type == "message" && ev.Body != "" {
			msgs++
		}
	}
	if msgs != n+1 {
		t.Fatalf("history has %d messages, want %d", msgs, n+1)
	}
	again, err := nd.importChat(ctx, api.ImportChatReq{Format: "telegram", Path: src, Room: r.Room})
	if err != nil {
		t.Fatal(err)
	}
	if again.New != 0 || again.Existing != n {
		t.Fatalf("second import: %+v", again)
	}
}

// An import hands the timeline the contents it built and the indexer their
// text, instead of decoding the bodies it just encoded. For each format's
// fixture (with replies, edits, reactions and media), every handed content
// must equal what decoding its body gives, and the imported messages must
// be found by a search (through the stored index, written from the handed
// text).
func TestImportHandsDecodedContent(t *testing.T) {
	var mu sync.Mutex
	var diffs []error
	checkHanded = func(err error) {
		mu.Lock()
		diffs = append(diffs, err)
		mu.Unlock()
	}
	t.Cleanup(func() { checkHanded = nil })
	nd, ctx := serveTestNode(t)
	const fixtures = "../importers/testdata"
	for _, c := range []struct{ format, path, channel string }{
		{"telegram", "telegram", ""},
		{"whatsapp", "whatsapp", ""},
		{"element", "element/export.json", ""},
		{"discord", "discord/general.json", ""},
		{"slack", "slack", "general"},
	} {
		path, err := filepath.Abs(filepath.Join(fixtures, c.path))
		if err != nil {
			t.Fatal(err)
		}
		r, err := nd.importChat(ctx, api.ImportChatReq{Format: c.format, Path: path, Channel: c.channel, Name: c.format})
		if err != nil {
			t.Fatalf("%s: %v", c.format, err)
		}
		if r.New == 0 || r.Media == 0 {
			t.Fatalf("%s: imported %+v", c.format, r)
		}
		found, err := nd.engine.Search(ctx, api.SearchReq{Room: r.Room, Query: "happy new year"})
		if err != nil {
			t.Fatal(err)
		}
		if len(found.Hits) == 0 {
			t.Errorf("%s: a search finds no imported message", c.format)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, err := range diffs {
		t.Error(err)
	}
}
