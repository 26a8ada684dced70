package mimi

import (
	"bytes"
	"strings"
	"testing"
)

var (
	alice = Header{Salt: Salt{1}, SenderURI: "mimi://example.com/u/alice-smith", RoomURI: "mimi://example.com/r/engineering_team"}
	bob   = Header{Salt: Salt{2}, SenderURI: "mimi://example.com/u/bob-jones", RoomURI: "mimi://example.com/r/engineering_team"}
)

func roundTrip(t *testing.T, c *Content) (*Content, MessageID) {
	t.Helper()
	b, id, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id2, back, err := MessageIDOf(b)
	if err != nil {
		t.Fatal(err)
	}
	if id2 != id {
		t.Fatalf("id %s after decode, %s before", id2, id)
	}
	return back, id
}

// Note §5.6 X1: rich text is a chooseOne of Markdown and plain text; our
// builder with the analyst's salt and text reproduces its bytes and ID.
func TestMarkdownMatchesX1(t *testing.T) {
	h := alice
	for i := range h.Salt {
		h.Salt[i] = byte(i)
	}
	c := New(h, MarkdownPart("Hello **world**"))
	b, id, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range loadVectors(t) {
		if v.name == "analyst-X1" {
			if !bytes.Equal(b, v.cbor) || id.String() != v.id {
				t.Errorf("got %x %s\nwant %x %s", b, id, v.cbor, v.id)
			}
			return
		}
	}
	t.Fatal("no X1")
}

func TestConversation(t *testing.T) {
	orig, origID := roundTrip(t, New(alice, MarkdownPart("We shipped **2.0**.\nSee [notes](https://example.com/notes).")))
	if plain, md := orig.Text(); plain != "We shipped 2.0.\nSee notes (https://example.com/notes)." || md == "" {
		t.Errorf("text: %q %q", plain, md)
	}
	if got := Fallback(orig, nil); got != "We shipped 2.0.\nSee notes (https://example.com/notes)." {
		t.Errorf("plain fallback %q", got)
	}

	reply, replyID := roundTrip(t, Reply(bob, origID, TextPart("Congrats!")))
	if reply.Kind() != KindMessage || *reply.InReplyTo != origID || *reply.Target() != origID {
		t.Errorf("reply relations: %+v", reply)
	}
	want := "> <mimi://example.com/u/alice-smith> We shipped 2.0.\n> See notes (https://example.com/notes).\n\nCongrats!"
	if got := Fallback(reply, orig); got != want {
		t.Errorf("reply fallback\n got %q\nwant %q", got, want)
	}
	if got := Fallback(reply, nil); !strings.HasPrefix(got, "> (an earlier message)\n\nCongrats!") {
		t.Errorf("reply fallback without target %q", got)
	}

	edit, _ := roundTrip(t, Edit(bob, replyID, &origID, nil, TextPart("Congrats, all!")))
	if edit.Kind() != KindEdit || *edit.Target() != replyID {
		t.Errorf("edit kind %v target %v", edit.Kind(), edit.Target())
	}
	if got := Fallback(edit, reply); got != "> <mimi://example.com/u/bob-jones> Congrats!\n\n* Congrats, all!" {
		t.Errorf("edit fallback %q", got)
	}

	del, _ := roundTrip(t, Delete(bob, replyID, &origID))
	if del.Kind() != KindDelete || Fallback(del, reply) != "> <mimi://example.com/u/bob-jones> Congrats!\n\n(deleted)" {
		t.Errorf("delete: %v %q", del.Kind(), Fallback(del, reply))
	}

	r, err := React(bob, origID, "❤")
	if err != nil {
		t.Fatal(err)
	}
	react, reactID := roundTrip(t, r)
	if key, ok := react.ReactionKey(); !ok || key != "❤" || react.Kind() != KindReaction {
		t.Errorf("reaction %q %v", key, react.Kind())
	}
	if got := Fallback(react, orig); !strings.HasSuffix(got, "\n\n❤") || !strings.HasPrefix(got, "> ") {
		t.Errorf("reaction fallback %q", got)
	}
	un, _ := roundTrip(t, Unreact(bob, reactID, origID))
	if un.Kind() != KindUnreaction || *un.Replaces != reactID || *un.Target() != origID {
		t.Errorf("unreaction %+v", un)
	}
	for _, bad := range []string{"", "a\nb", strings.Repeat("x", 65), "\xff"} {
		if _, err := React(bob, origID, bad); err == nil {
			t.Errorf("reaction %q accepted", bad)
		}
	}

	th, _ := roundTrip(t, ThreadReply(bob, origID, replyID, TextPart("in thread")))
	if root, ok := th.Thread(); !ok || root != origID || *th.InReplyTo != replyID {
		t.Errorf("thread reply: %+v", th)
	}
	if got := Fallback(th, reply); !strings.HasSuffix(got, "\n\nin thread") {
		t.Errorf("thread fallback %q", got)
	}
}

// Note §5.6 X2: a thread reply (topic = root ID, inReplyTo = root).
func TestThreadMatchesX2(t *testing.T) {
	root := mustID(t, "017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4")
	h := bob
	for i := range h.Salt {
		h.Salt[i] = 0x10 + byte(i)
	}
	c := ThreadReply(h, root, root, Part{Disposition: Render, Cardinality: SinglePart, ContentType: TypeMarkdown, Content: []byte("thread reply")})
	_, id, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if id.String() != "01945beb18f6ce880927a066cd7b3353aedbf2f9e84e5da1364fd0d6e9476e10" {
		t.Errorf("X2 id %s", id)
	}
}

func TestAttachment(t *testing.T) {
	file := MediaRef{CID: "bafkreiabc", ContentHash: bytes.Repeat([]byte{7}, 32), Key: bytes.Repeat([]byte{9}, 32),
		Size: 1_500_000, MIME: "image/png", Name: "cat.png",
		Info: MediaInfo{Width: 640, Height: 480}}
	thumb := MediaRef{CID: "bafkreithumb", ContentHash: bytes.Repeat([]byte{8}, 32), Key: bytes.Repeat([]byte{10}, 32),
		Size: 9000, MIME: "image/jpeg", Info: MediaInfo{Width: 320, Height: 240}}
	caption := TextPart("my cat")
	c, err := Attach(alice, file, &thumb, &caption)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := roundTrip(t, c)
	ms := back.MediaParts()
	if len(ms) != 1 || ms[0].Ref.CID != "bafkreiabc" || ms[0].Ref.Info.Width != 640 || ms[0].Ref.Info.Height != 480 ||
		ms[0].Thumbnail == nil || ms[0].Thumbnail.CID != "bafkreithumb" || ms[0].Thumbnail.Info.Width != 320 ||
		!bytes.Equal(ms[0].Ref.Key, file.Key) || ms[0].Ref.Size != file.Size {
		t.Fatalf("media parts: %+v", ms)
	}
	if back.Body.Parts[0].External.EncAlg != EncAlgParleyStream || back.Body.Parts[0].Disposition != Inline ||
		back.Body.Parts[1].Disposition != Preview {
		t.Errorf("parts: %+v", back.Body.Parts)
	}
	want := "[Image: cat.png, 1.5 MB, 640x480] parley:media/bafkreiabc\nmy cat"
	if got := Fallback(back, nil); got != want {
		t.Errorf("fallback\n got %q\nwant %q", got, want)
	}

	voice := MediaRef{CID: "bafkreivoice", Key: []byte{1}, Size: 32000, MIME: "audio/wav", Name: "voice.wav",
		Info: MediaInfo{DurationMs: 2000, Waveform: bytes.Repeat([]byte{128}, 64), Voice: true}}
	c, err = Attach(bob, voice, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	back, _ = roundTrip(t, c)
	ms = back.MediaParts()
	if len(ms) != 1 || ms[0].Index != 0 || ms[0].Ref.Info.DurationMs != 2000 || len(ms[0].Ref.Info.Waveform) != 64 || !ms[0].Ref.Info.Voice {
		t.Fatalf("voice: %+v", ms)
	}
	if got := Fallback(back, nil); got != "[Voice message: voice.wav, 32.0 kB, 0:02] parley:media/bafkreivoice" {
		t.Errorf("voice fallback %q", got)
	}
	if _, err := Attach(bob, MediaRef{}, nil, nil); err == nil {
		t.Error("attachment without CID accepted")
	}
}

func TestPlainText(t *testing.T) {
	for md, want := range map[string]string{
		"# Title\n\nSome *emph* and `code`.":               "Title\n\nSome emph and code.",
		"- a\n- b\n\n1. x\n2. y":                           "- a\n- b\n\n1. x\n2. y",
		"> quoted\n> more":                                 "> quoted\n> more",
		"Kudos to [@Alice Smith](mimi://example.com/u/a)!": "Kudos to @Alice Smith!",
		"a <b>tag</b>":                                     "a <b>tag</b>",
		"```\ncode\n  block\n```":                          "code\n  block",
		"- [x] done\n- [ ] todo":                           "- [x] done\n- [ ] todo",
		"~~gone~~ ![cat](cid:1@local.invalid)":             "gone cat",
	} {
		if got := PlainText(md); got != want {
			t.Errorf("PlainText(%q) = %q, want %q", md, got, want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 5_000_000: "5.0 MB", 3e9: "3.0 GB"} {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
