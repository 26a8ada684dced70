package mimi

import (
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// checkSafe parses out as HTML and fails for any element outside the
// allow-list, any event handler or style attribute, any link that is not
// web, mail, MIMI, Parley or cid, and any image not from the message or
// Parley media.
func checkSafe(t *testing.T, in, out string) {
	t.Helper()
	allowed := map[string]bool{}
	for _, e := range strings.Fields("p br hr strong em b i del s code pre blockquote ul ol li h1 h2 h3 h4 h5 h6 table thead tbody tr th td sub sup a img") {
		allowed[e] = true
	}
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		if !allowed[tok.Data] {
			t.Errorf("%q: element <%s> survived: %q", in, tok.Data, out)
		}
		for _, a := range tok.Attr {
			key, val := strings.ToLower(a.Key), strings.ToLower(strings.TrimSpace(a.Val))
			switch {
			case strings.HasPrefix(key, "on") || key == "style" || key == "background" || key == "formaction":
				t.Errorf("%q: attribute %s survived: %q", in, key, out)
			case key == "href" && !regexp.MustCompile(`^(https?|mailto|mimi|parley|cid):`).MatchString(val):
				t.Errorf("%q: href %q survived: %q", in, val, out)
			case key == "src" && (tok.Data != "img" || !localImage.MatchString(a.Val)):
				t.Errorf("%q: src %q survived: %q", in, val, out)
			}
		}
	}
}

var hostile = []string{
	`<script>alert(1)</script>`,
	`<SCRIPT SRC=//evil/x.js></SCRIPT>`,
	`<img src=x onerror=alert(1)>`,
	`<img src="https://evil.example/track.png">`,
	`<a href="javascript:alert(1)">x</a>`,
	`<a href="JaVaScRiPt:alert(1)">x</a>`,
	`<a href="&#106;avascript:alert(1)">x</a>`,
	`<a href=" javascript:alert(1)">x</a>`,
	`<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>`,
	`<a href="vbscript:msgbox(1)">x</a>`,
	`<div onclick="alert(1)" style="background:url(javascript:alert(1))">x</div>`,
	`<svg/onload=alert(1)>`,
	`<iframe src="https://evil"></iframe>`,
	`<object data="x.swf"></object>`,
	`<p><b><i><u onmouseover=alert(1)>nested</u></i></b></p>`,
	`<<script>script>alert(1)<</script>/script>`,
	`<scr<script>ipt>alert(1)</scr</script>ipt>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
	`<form action="javascript:alert(1)"><input type=submit></form>`,
	`<body onload=alert(1)>`,
	`<a href="https://ok.example" onclick="alert(1)">ok</a>`,
	`<table><tr><td background="javascript:alert(1)">x</td></tr></table>`,
	`<img src="cid:5@local.invalid" onerror="alert(1)">`,
	`<meta http-equiv="refresh" content="0;url=javascript:alert(1)">`,
	`<base href="javascript:/">`,
	`<style>@import 'javascript:alert(1)';</style>`,
	`<!--<img src="--><img src=x onerror=alert(1)//">`,
	`<noscript><p title="</noscript><img src=x onerror=alert(1)>">`,
}

var hostileMarkdown = []string{
	`[x](javascript:alert(1))`,
	`[x](JAVASCRIPT:alert(1))`,
	`[x](data:text/html,<script>alert(1)</script>)`,
	`[x](<javascript:alert(1)>)`,
	`[x]( javascript:alert(1) )`,
	`![x](https://evil.example/pixel.png)`,
	`![x](javascript:alert(1))`,
	`![x](data:image/png;base64,AAAA)`,
	`<script>alert(1)</script>`,
	`<img src=x onerror=alert(1)>`,
	"<div onclick=alert(1)>\n\n*md*\n\n</div>",
	`[a](https://ok.example "title\" onclick=\"alert(1)")`,
	"[ref]\n\n[ref]: javascript:alert(1)",
	"`<script>`",
	"**<i onmouseover=alert(1)>x</i>**",
	"> <iframe src=https://evil></iframe>",
	"| a |\n|---|\n| <script>alert(1)</script> |",
	"- [ ] <input onfocus=alert(1) autofocus>",
	"<https://ok.example/\"onmouseover=\"alert(1)>",
	"[x](https://ok.example/a\"onmouseover=\"alert(1))",
}

func TestSanitizeHTMLHostile(t *testing.T) {
	for _, in := range hostile {
		checkSafe(t, in, SanitizeHTML(in))
	}
}

func TestRenderMarkdownHostile(t *testing.T) {
	for _, in := range append(hostileMarkdown, hostile...) {
		out := RenderMarkdown(in)
		checkSafe(t, in, out)
		if strings.Contains(strings.ToLower(out), "<script") {
			t.Errorf("RenderMarkdown(%q) kept a script tag: %q", in, out)
		}
	}
}

// GFM-MIMI "no HTML" (§7.1.1): tags typed in Markdown are shown as text.
func TestMarkdownTagsAsText(t *testing.T) {
	out := RenderMarkdown("a <b>bold</b> <script>x</script>")
	if !strings.Contains(out, "&lt;b&gt;bold&lt;/b&gt;") || !strings.Contains(out, "&lt;script&gt;") {
		t.Errorf("tags not escaped: %q", out)
	}
}

func TestMarkdownKeeps(t *testing.T) {
	for md, want := range map[string]string{
		"**bold** _em_ ~~del~~":                 "<strong>bold</strong> <em>em</em> <del>del</del>",
		"[@Alice](mimi://example.com/u/alice)":  `<a href="mimi://example.com/u/alice" rel="nofollow noreferrer">@Alice</a>`,
		"[site](https://example.com/a?b=c&d=e)": `<a href="https://example.com/a?b=c&amp;d=e" rel="nofollow noreferrer">site</a>`,
		"![cat](cid:5@local.invalid)":           `<img src="cid:5@local.invalid" alt="cat">`,
		"![cat](parley:media/bafkreiabc)":       `<img src="parley:media/bafkreiabc" alt="cat">`,
		"![cat](https://evil.example/c.png)":    `<p>cat</p>`,
		"```go\nx\n```":                         `<code class="language-go">`,
		"- [x] done":                            "☑ done",
		"| a |\n|:-:|\n| b |":                   `<td align="center">b</td>`,
	} {
		if got := RenderMarkdown(md); !strings.Contains(got, want) {
			t.Errorf("RenderMarkdown(%q) = %q, want it to contain %q", md, got, want)
		}
	}
	if got := HTMLText(`<p>Kudos to <a href="mimi://x">@Alice</a> &amp; co</p>`); got != "Kudos to @Alice & co" {
		t.Errorf("HTMLText = %q", got)
	}
}
