package timeline

import (
	"bytes"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/mimi"
)

// TestImported: the projection shows an imported message's original
// author, time and reactions, and the source's edit mark.
func TestImported(t *testing.T) {
	c := mimi.New(mimi.Header{SenderURI: "parley:user/u", RoomURI: "parley:room/r"}, mimi.TextPart("Same to you!"))
	if err := c.SetImported(mimi.Imported{ID: bytes.Repeat([]byte{1}, 32), From: "discord", Author: "Bob", TS: 1704056730123, Edited: 1704056820000,
		Reactions: []mimi.ImportedReaction{{Key: "👍", Count: 1, Users: []string{"Alice"}}}}); err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	plain, _, _ := mimi.New(mimi.Header{SenderURI: "parley:user/u", RoomURI: "parley:room/r"}, mimi.TextPart("mine")).Marshal()
	p := New()
	p.Add(Item{ID: crdt.EventID("e1"), Depth: 1, TS: 5, Content: b})
	p.Add(Item{ID: crdt.EventID("e2"), Depth: 2, TS: 6, Content: plain})
	ms := p.Messages()
	if len(ms) != 2 {
		t.Fatalf("%d messages", len(ms))
	}
	im := ms[0].Imported
	if im == nil || im.Author != "Bob" || im.From != "discord" || im.TS != 1704056730123 || !ms[0].Edited || ms[0].Versions != 1 || im.Reactions[0].Users[0] != "Alice" {
		t.Fatalf("imported message: %+v %+v", ms[0], im)
	}
	if ms[1].Imported != nil || ms[1].Edited {
		t.Fatalf("own message shown as imported: %+v", ms[1])
	}
}
