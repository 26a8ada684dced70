package mimi

import (
	"bytes"
	"html"
	"regexp"
	"strconv"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// GFM-MIMI (§7.1.1) is GitHub Flavored Markdown without autolinks and with
// "no HTML": tags in the source are shown as text. Tables, task lists and
// strikethrough are allowed.
var md = goldmark.New(
	goldmark.WithExtensions(
		extension.NewTable(extension.WithTableCellAlignMethod(extension.TableCellAlignAttribute)),
		extension.Strikethrough, extension.TaskList),
	goldmark.WithRendererOptions(renderer.WithNodeRenderers(util.Prioritized(safeRenderer{}, 100))),
)

// localImage matches the image sources a message may show: parts of the
// same message (cid:, RFC 2392, §4.4) and Parley media blobs.
var localImage = regexp.MustCompile(`^(cid:[A-Za-z0-9@._-]+|parley:media/[A-Za-z0-9]+)$`)

// linkHref is what a link may point to: any URL of the allowed schemes
// but parley:, and of parley: only users, rooms and media. Any other
// parley: URL (say, one dressed up as a mention) loses its link.
var linkHref = regexp.MustCompile(`^(?:(?i:https?|mailto|mimi|cid):|parley:(?:user|room|media)/[A-Za-z0-9]+$)`)

// policy is the allow-list every HTML we show passes through: structural
// and inline formatting, tables, links to web, mail and MIMI URIs and to
// Parley users, rooms and media
// (rel=nofollow noreferrer), images only from the message or Parley
// media. No scripts, styles, forms, frames, event handlers or classes
// other than code languages.
var policy = func() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("p", "br", "hr", "strong", "em", "b", "i", "del", "s", "code", "pre",
		"blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
		"table", "thead", "tbody", "tr", "th", "td", "sub", "sup")
	p.AllowAttrs("align").Matching(regexp.MustCompile(`^(left|right|center)$`)).OnElements("th", "td")
	p.AllowAttrs("start").Matching(bluemonday.Integer).OnElements("ol")
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[A-Za-z0-9_+-]+$`)).OnElements("code")
	p.AllowAttrs("href").Matching(linkHref).OnElements("a")
	p.AllowAttrs("src").Matching(localImage).OnElements("img")
	p.AllowAttrs("alt", "title").OnElements("img", "a")
	p.AllowURLSchemes("https", "http", "mailto", "mimi", "parley", "cid")
	p.AllowRelativeURLs(false)
	p.RequireParseableURLs(true)
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	return p
}()

// RenderMarkdown renders GFM-MIMI Markdown to sanitized HTML.
func RenderMarkdown(markdown string) string {
	var buf bytes.Buffer
	if err := md.Convert([]byte(markdown), &buf); err != nil {
		return "<p>" + html.EscapeString(markdown) + "</p>"
	}
	return policy.Sanitize(buf.String())
}

// SanitizeHTML passes received HTML (a text/html part) through the same
// allow-list.
func SanitizeHTML(s string) string { return policy.Sanitize(s) }

// HTMLText returns the text of an HTML fragment, tags removed.
func HTMLText(s string) string {
	return strings.TrimSpace(html.UnescapeString(bluemonday.StrictPolicy().Sanitize(s)))
}

// safeRenderer overrides goldmark's rendering of raw HTML (shown as text,
// as GFM-MIMI asks), of images (only local sources; others become their
// alt text) and of task check boxes (characters, not form inputs).
type safeRenderer struct{}

func (safeRenderer) RegisterFuncs(r renderer.NodeRendererFuncRegisterer) {
	r.Register(ast.KindRawHTML, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			segs := n.(*ast.RawHTML).Segments
			for i := 0; i < segs.Len(); i++ {
				s := segs.At(i)
				_, _ = w.Write(util.EscapeHTML(s.Value(src)))
			}
		}
		return ast.WalkSkipChildren, nil
	})
	r.Register(ast.KindHTMLBlock, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		b := n.(*ast.HTMLBlock)
		_, _ = w.WriteString("<p>")
		writeLines(w, src, b.Lines())
		if b.HasClosure() {
			_, _ = w.Write(util.EscapeHTML(b.ClosureLine.Value(src)))
		}
		_, _ = w.WriteString("</p>\n")
		return ast.WalkSkipChildren, nil
	})
	r.Register(ast.KindImage, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		img := n.(*ast.Image)
		alt := inlineText(img, src)
		dest := string(img.Destination)
		if !localImage.MatchString(dest) {
			_, _ = w.WriteString(html.EscapeString(alt))
			return ast.WalkSkipChildren, nil
		}
		_, _ = w.WriteString(`<img src="` + html.EscapeString(dest) + `" alt="` + html.EscapeString(alt) + `">`)
		return ast.WalkSkipChildren, nil
	})
	r.Register(east.KindTaskCheckBox, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			if n.(*east.TaskCheckBox).IsChecked {
				_, _ = w.WriteString("☑ ")
			} else {
				_, _ = w.WriteString("☐ ")
			}
		}
		return ast.WalkContinue, nil
	})
}

func writeLines(w util.BufWriter, src []byte, lines *text.Segments) {
	for i := 0; i < lines.Len(); i++ {
		s := lines.At(i)
		_, _ = w.Write(util.EscapeHTML(s.Value(src)))
	}
}

// PlainText turns GFM-MIMI Markdown into the plain text a service without
// Markdown shows: markup removed, links as "text (url)" unless the text is
// the URL or the link is a mention, lists with "- " or "N. ", quotes with
// "> ", code as is.
func PlainText(markdown string) string {
	src := []byte(markdown)
	doc := md.Parser().Parse(text.NewReader(src))
	return strings.TrimRight(blocksText(doc, src), "\n ")
}

func blocksText(n ast.Node, src []byte) string {
	var parts []string
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if t := blockText(c, src); t != "" {
			parts = append(parts, t)
		}
	}
	sep := "\n\n"
	if l, ok := n.(*ast.List); ok && l.IsTight {
		sep = "\n"
	}
	if _, ok := n.(*ast.ListItem); ok {
		sep = "\n"
	}
	return strings.Join(parts, sep)
}

func blockText(n ast.Node, src []byte) string {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock, *ast.Heading:
		return inlineText(n, src)
	case *ast.FencedCodeBlock, *ast.CodeBlock, *ast.HTMLBlock:
		var b strings.Builder
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			s := lines.At(i)
			b.Write(s.Value(src))
		}
		if h, ok := n.(*ast.HTMLBlock); ok && h.HasClosure() {
			b.Write(h.ClosureLine.Value(src))
		}
		return strings.TrimRight(b.String(), "\n")
	case *ast.ThematicBreak:
		return "---"
	case *ast.Blockquote:
		return prefixLines(blocksText(n, src), "> ", "> ")
	case *ast.List:
		var items []string
		num := n.Start
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			marker := "- "
			if n.IsOrdered() {
				marker = strconv.Itoa(num) + ". "
				num++
			}
			items = append(items, prefixLines(blocksText(c, src), marker, strings.Repeat(" ", len(marker))))
		}
		sep := "\n"
		if !n.IsTight {
			sep = "\n\n"
		}
		return strings.Join(items, sep)
	case *east.Table:
		var rows []string
		for r := n.FirstChild(); r != nil; r = r.NextSibling() {
			var cells []string
			for c := r.FirstChild(); c != nil; c = c.NextSibling() {
				cells = append(cells, inlineText(c, src))
			}
			rows = append(rows, strings.Join(cells, " | "))
		}
		return strings.Join(rows, "\n")
	}
	return blocksText(n, src)
}

func prefixLines(s, first, rest string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		p := rest
		if i == 0 {
			p = first
		}
		if lines[i] == "" && i > 0 {
			lines[i] = strings.TrimRight(p, " ")
			continue
		}
		lines[i] = p + lines[i]
	}
	return strings.Join(lines, "\n")
}

func inlineText(n ast.Node, src []byte) string {
	var b strings.Builder
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			switch c := c.(type) {
			case *ast.Text:
				b.Write(util.UnescapePunctuations(c.Segment.Value(src)))
				if c.HardLineBreak() || c.SoftLineBreak() {
					b.WriteByte('\n')
				}
			case *ast.String:
				b.Write(c.Value)
			case *ast.CodeSpan: // backslashes are literal in code
				for t := c.FirstChild(); t != nil; t = t.NextSibling() {
					if t, ok := t.(*ast.Text); ok {
						b.Write(t.Segment.Value(src))
					}
				}
			case *ast.RawHTML:
				for i := 0; i < c.Segments.Len(); i++ {
					s := c.Segments.At(i)
					b.Write(s.Value(src))
				}
			case *ast.AutoLink:
				b.Write(c.URL(src))
			case *ast.Link:
				start := b.Len()
				walk(c)
				label := b.String()[start:]
				dest := string(c.Destination)
				if dest != label && !strings.HasPrefix(dest, "mimi:") && !strings.HasPrefix(dest, "parley:") {
					b.WriteString(" (" + dest + ")")
				}
			case *ast.Image:
				start := b.Len()
				walk(c)
				if b.Len() == start {
					b.WriteString("[image]")
				}
			case *east.TaskCheckBox:
				if c.IsChecked {
					b.WriteString("[x] ")
				} else {
					b.WriteString("[ ] ")
				}
			default:
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}
