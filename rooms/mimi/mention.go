package mimi

import (
	"html"
	"regexp"
	"slices"
	"strings"

	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"
)

// Mentions (MIMI §5.4): a link to a user URI in the rich text is a
// mention. Parley users are parley:user/ID; Parley also lists the mentioned
// URIs in the private extension KeyParleyMentions, so that a receiver need
// not parse the rich text to notify (docs/protocol.md §5.2).

// UserURIPrefix starts the URI of a Parley user; the rest is the user ID.
const UserURIPrefix = "parley:user/"

// KeyParleyMentions is the private-use extension listing the user URIs a
// message mentions: a CBOR array of text strings, sorted, without
// duplicates.
var KeyParleyMentions = TextKey("parley.mentions")

// MaxMentions bounds the mention list a message carries or a receiver
// reads.
const MaxMentions = 64

// mentionWord is an @-mention in text: "@" and an alphanumeric word not
// preceded by a word character (so mail addresses are not mentions).
var mentionWord = regexp.MustCompile(`(^|[^A-Za-z0-9_.+-])@([A-Za-z0-9]+)`)

// mentionHref finds the user links that survived the sanitizer.
var mentionHref = regexp.MustCompile(`<a href="parley:user/([A-Za-z0-9]+)"`)

// SetMentions sets the mention list to uris (sorted and deduplicated); an
// empty list removes it.
func (c *Content) SetMentions(uris []string) {
	uris = slices.Clone(uris)
	slices.Sort(uris)
	uris = slices.Compact(uris)
	if len(uris) == 0 {
		delete(c.Extensions, KeyParleyMentions)
		return
	}
	raw, err := encMode.Marshal(uris)
	if err != nil {
		panic(err) // strings always encode
	}
	c.Extensions.SetRaw(KeyParleyMentions, raw)
}

// MentionList returns the URIs of the mention list: at most MaxMentions,
// nil when it is absent or malformed.
func (c *Content) MentionList() []string {
	raw, ok := c.Extensions[KeyParleyMentions]
	if !ok {
		return nil
	}
	var uris []string
	if err := decMode.Unmarshal(raw, &uris); err != nil || len(uris) > MaxMentions {
		return nil
	}
	return uris
}

// MentionedIDs returns the user IDs named by parley:user links in
// sanitized HTML (RenderMarkdown or SanitizeHTML output), in order of
// appearance, each once.
func MentionedIDs(sanitized string) []string {
	var out []string
	for _, m := range mentionHref.FindAllStringSubmatch(sanitized, MaxMentions) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// MentionLink returns the Markdown link of a mention shown as "@label".
func MentionLink(id, label string) string {
	return "[@" + escapeMarkdown(label) + "](" + UserURIPrefix + id + ")"
}

// LinkMentions replaces every "@ID" in the text of markdown (not in code,
// links or images) for which label answers ok with a link to the user
// (MentionLink), and returns the new Markdown and the IDs linked, each
// once, in order of appearance.
func LinkMentions(markdown string, label func(id string) (string, bool)) (string, []string) {
	src := []byte(markdown)
	doc := md.Parser().Parse(text.NewReader(src))
	type repl struct {
		start, stop int
		with        string
	}
	var rs []repl
	var ids []string
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.CodeSpan, *ast.Link, *ast.Image, *ast.AutoLink, *ast.RawHTML:
			return ast.WalkSkipChildren, nil
		case *ast.Text:
			seg := n.Segment
			v := src[seg.Start:seg.Stop]
			for _, m := range mentionWord.FindAllSubmatchIndex(v, -1) {
				id := string(v[m[4]:m[5]])
				l, ok := label(id)
				if !ok {
					continue
				}
				at := m[4] - 1 // the "@"
				rs = append(rs, repl{seg.Start + at, seg.Start + m[5], MentionLink(id, l)})
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		return ast.WalkContinue, nil
	})
	if len(rs) == 0 {
		return markdown, nil
	}
	var b strings.Builder
	last := 0
	for _, r := range rs {
		b.Write(src[last:r.start])
		b.WriteString(r.with)
		last = r.stop
	}
	b.Write(src[last:])
	return b.String(), ids
}

// MentionText turns plain text into an HTML rendering with each "@ID" for
// which label answers ok as a link to the user, and the plain text with
// those mentions shown as "@label". It returns the IDs linked, each once;
// none when the text mentions nobody.
func MentionText(plain string, label func(id string) (string, bool)) (htmlText, text string, ids []string) {
	var h, p strings.Builder
	last := 0
	for _, m := range mentionWord.FindAllStringSubmatchIndex(plain, -1) {
		id := plain[m[4]:m[5]]
		l, ok := label(id)
		if !ok {
			continue
		}
		at := m[4] - 1
		h.WriteString(html.EscapeString(plain[last:at]))
		h.WriteString(`<a href="` + UserURIPrefix + id + `">@` + html.EscapeString(l) + `</a>`)
		p.WriteString(plain[last:at] + "@" + l)
		last = m[5]
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	h.WriteString(html.EscapeString(plain[last:]))
	p.WriteString(plain[last:])
	lines := strings.Split(h.String(), "\n")
	return "<p>" + strings.Join(lines, "<br>\n") + "</p>", p.String(), ids
}

// HTMLPart is rich text given as HTML with its plain fallback: a
// chooseOne of the HTML and of the plain text, in that order of
// preference.
func HTMLPart(htmlText, plain string) Part {
	h := Part{Disposition: Render, Cardinality: SinglePart, ContentType: TypeHTML, Content: []byte(htmlText)}
	return Part{Disposition: Render, Cardinality: MultiPart, Semantics: ChooseOne,
		Parts: []Part{h, TextPart(plain)}}
}

// escapeMarkdown backslash-escapes every ASCII punctuation character, so
// that s reads as itself inside Markdown link text.
func escapeMarkdown(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && strings.ContainsRune("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", r) {
			b.WriteByte('\\')
		}
		if r == '\n' || r == '\r' {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}
