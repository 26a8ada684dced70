package mimi

import (
	"bytes"
	"testing"
)

func TestImportedRoundTrip(t *testing.T) {
	h := Header{SenderURI: "parley:user/u", RoomURI: "parley:room/r"}
	c := New(h, TextPart("Happy new year!"))
	im := Imported{ID: bytes.Repeat([]byte{7}, 32), From: "telegram", Author: "Alice", AuthorID: "user1", TS: 1704056700000,
		Reactions: []ImportedReaction{{Key: "👍", Count: 2, Users: []string{"Bob"}}}}
	if err := c.SetImported(im); err != nil {
		t.Fatal(err)
	}
	b, _, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := d.ImportedInfo()
	if !ok || got.Author != "Alice" || got.TS != im.TS || len(got.Reactions) != 1 || got.Reactions[0].Users[0] != "Bob" || !bytes.Equal(got.ID, im.ID) {
		t.Fatalf("got %+v %v", got, ok)
	}
	bad := im
	bad.ID = []byte{1}
	if c.SetImported(bad) == nil {
		t.Fatal("a short import ID was taken")
	}
	c.Extensions.SetText(KeyParleyImported, "not a map")
	if _, ok := c.ImportedInfo(); ok {
		t.Fatal("a malformed extension was read")
	}
}
