package mimi

import (
	"slices"
	"strings"
	"testing"
)

// Mentions (docs/protocol.md §5.2, MIMI §5.4): links to parley:user/ID in
// the rich text, listed in the parley.mentions extension.

const (
	uAlice = "aliceaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	uBob   = "bobbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func label(id string) (string, bool) {
	switch id {
	case uAlice:
		return "Alice [A]", true
	case uBob:
		return uBob, true
	}
	return "", false
}

func TestLinkMentions(t *testing.T) {
	in := "hi @" + uAlice + " and @" + uBob + ", not `@" + uAlice + "`, not [@x](https://x.example), not mail@" + uAlice + ", not @unknown; again @" + uAlice
	out, ids := LinkMentions(in, label)
	if !slices.Equal(ids, []string{uAlice, uBob}) {
		t.Fatalf("ids %v", ids)
	}
	html := RenderMarkdown(out)
	if got := MentionedIDs(html); !slices.Equal(got, []string{uAlice, uBob}) {
		t.Fatalf("mentioned ids %v in %s", got, html)
	}
	if n := strings.Count(html, `href="parley:user/`+uAlice+`"`); n != 2 {
		t.Fatalf("%d links to uAlice in %s", n, html)
	}
	for _, want := range []string{"<code>@" + uAlice + "</code>", "mail@" + uAlice, "@unknown"} {
		if !strings.Contains(html, want) {
			t.Fatalf("html %s lacks %q", html, want)
		}
	}
	plain := PlainText(out)
	if !strings.HasPrefix(plain, "hi @Alice [A] and @"+uBob+",") || strings.Contains(plain, "parley:user") {
		t.Fatalf("plain %q", plain)
	}
}

func TestMentionText(t *testing.T) {
	h, plain, ids := MentionText("<b>hi</b> @"+uAlice+"\nline two", label)
	if !slices.Equal(ids, []string{uAlice}) {
		t.Fatalf("ids %v", ids)
	}
	if plain != "<b>hi</b> @Alice [A]\nline two" {
		t.Fatalf("plain %q", plain)
	}
	s := SanitizeHTML(h)
	if strings.Contains(s, "<b>") || !strings.Contains(s, `href="parley:user/`+uAlice+`"`) || !strings.Contains(s, "<br>") {
		t.Fatalf("html %s", s)
	}
	c := New(Header{SenderURI: "parley:user/x", RoomURI: "parley:room/y"}, HTMLPart(h, plain))
	if got, _ := c.Text(); got != plain {
		t.Fatalf("Text %q, want the plain alternative %q", got, plain)
	}
	if _, _, ids := MentionText("no mention @nobody", label); ids != nil {
		t.Fatalf("ids %v", ids)
	}
}

func TestMentionListRoundTrip(t *testing.T) {
	c := New(Header{SenderURI: "parley:user/x", RoomURI: "parley:room/y"}, TextPart("hi"))
	c.SetMentions([]string{UserURIPrefix + uBob, UserURIPrefix + uAlice, UserURIPrefix + uBob})
	b, _, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.MentionList(); !slices.Equal(got, []string{UserURIPrefix + uAlice, UserURIPrefix + uBob}) {
		t.Fatalf("mentions %v", got)
	}
	d.SetMentions(nil)
	if d.MentionList() != nil || len(d.Extensions) != 2 {
		t.Fatalf("extensions %v", d.Extensions)
	}
	// A malformed list reads as none.
	d.Extensions.SetText(KeyParleyMentions, "parley:user/"+uAlice)
	if d.MentionList() != nil {
		t.Fatal("a text value read as a list")
	}
}

// Hostile: links dressed up as mentions keep their text but lose the link
// unless they name a Parley user, room or media blob.
func TestSanitizeDisguisedMentions(t *testing.T) {
	for _, in := range []string{
		"[@" + uAlice + "](javascript:alert(1))",
		"[@" + uAlice + "](JaVaScRiPt:alert(1))",
		"[@" + uAlice + "](parley:evil/" + uAlice + ")",
		"[@" + uAlice + "](parley:user/" + uAlice + "?x=javascript:alert(1))",
		"[@" + uAlice + "](parley:user/../" + uAlice + ")",
		"[@" + uAlice + "](parley://user/" + uAlice + ")",
		"[@" + uAlice + "](PARLEY:user/" + uAlice + ")",
		"[@" + uAlice + "](vbscript:msgbox(1))",
		"[@" + uAlice + "](data:text/html,<script>alert(1)</script>)",
		"[@" + uAlice + "](ftp://evil.example/" + uAlice + ")",
	} {
		html := RenderMarkdown(in)
		if strings.Contains(html, "href") || MentionedIDs(html) != nil || !strings.Contains(html, "@"+uAlice) {
			t.Errorf("%q rendered %q", in, html)
		}
	}
	for _, in := range []string{
		`<a href="javascript:alert(1)">@` + uAlice + `</a>`,
		`<a href="parley:evil/` + uAlice + `">@` + uAlice + `</a>`,
		`<a href=" parley:user/` + uAlice + `" onclick="alert(1)">@x</a>`,
		`<a href="parley:user/` + uAlice + `#x">@x</a>`,
	} {
		if html := SanitizeHTML(in); MentionedIDs(html) != nil || strings.Contains(html, "onclick") || strings.Contains(html, "javascript") {
			t.Errorf("%q sanitized to %q", in, html)
		}
	}
	// The real thing survives, with rel attributes.
	for _, ok := range []string{"parley:user/" + uAlice, "parley:room/abc", "parley:media/bafy", "https://x.example/a", "mimi://example.com/u/uAlice"} {
		if html := RenderMarkdown("[x](" + ok + ")"); !strings.Contains(html, `href="`+ok+`"`) {
			t.Errorf("%s lost its link: %s", ok, html)
		}
	}
}

func TestPlainTextEscapes(t *testing.T) {
	if got := PlainText("a \\*b\\* `c\\*d`"); got != "a *b* c\\*d" {
		t.Fatalf("plain %q", got)
	}
}
