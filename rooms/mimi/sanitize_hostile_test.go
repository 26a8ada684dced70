package mimi

import (
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// More hostile input for the allow-list, beyond sanitize_test.go: entity
// and whitespace tricks in URL schemes, SVG and MathML links, srcset,
// srcdoc, poster and formaction, remote images in every spelling, data:
// URIs in images, and nesting deep enough to stress the parsers.

var hostileMore = []string{
	`<a href="java&#x09;script:alert(1)">x</a>`,
	`<a href="java&#10;script:alert(1)">x</a>`,
	`<a href="javascript&colon;alert(1)">x</a>`,
	`<a href="&#x6A;&#x61;&#x76;&#x61;script:alert(1)">x</a>`,
	`<a href="&#0000106avascript:alert(1)">x</a>`,
	"<a href=\"\x01javascript:alert(1)\">x</a>",
	`<a href="//evil.example/x">protocol-relative</a>`,
	`<a href="file:///etc/passwd">x</a>`,
	`<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>`,
	`<math href="javascript:alert(1)">x</math>`,
	`<iframe srcdoc="<script>alert(1)</script>"></iframe>`,
	`<embed src="javascript:alert(1)">`,
	`<link rel="stylesheet" href="https://evil.example/x.css">`,
	`<video poster="https://evil.example/p.png"><source src="x" onerror="alert(1)"></video>`,
	`<button formaction="javascript:alert(1)">x</button>`,
	`<details open ontoggle="alert(1)">x</details>`,
	`<img src="parley:media/bafkreiabc" onload="alert(1)">`,
	`<img src="cid:a@b" style="width:expression(alert(1))">`,
	`<img srcset="https://evil.example/x.png 1x" src="cid:a@b">`,
	`<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">`,
	`<img src="//evil.example/x.png">`,
	`<img src="http://evil.example/x.png">`,
	`<img src="HTTPS://EVIL.EXAMPLE/X.PNG">`,
	`<img src="parley:media/../../evil">`,
	`<img src="cid:a@b https://evil.example/x.png">`,
	`<a href="https://ok.example" target="_blank" onclick="alert(1)">ok</a>`,
	`<p><b><i><u><s><sub><sup onmouseover="alert(1)">deep</sup></sub></s></u></i></b></p>`,
	`<table><tr><td><table><tr><td onclick="alert(1)"><script>alert(1)</script></td></tr></table></td></tr></table>`,
	`<ul><li><ol><li><a href="javascript:alert(1)">x</a></li></ol></li></ul>`,
	`<p>unclosed <b>bold <i>italic <a href="javascript:alert(1)">link`,
	`<<img src=x onerror=alert(1)>img src=x onerror=alert(1)>`,
	`<svg><script>alert(1)</script></svg>`,
	`<style><img src=x onerror=alert(1)></style>`,
	`<textarea><img src=x onerror=alert(1)></textarea>`,
	`<xmp><img src=x onerror=alert(1)></xmp>`,
	strings.Repeat("<div><b>", 3000) + `<img src=x onerror=alert(1)>` + strings.Repeat("</b></div>", 3000),
	strings.Repeat("<a href=javascript:alert(1)>", 500),
}

var hostileMarkdownMore = []string{
	"<javascript:alert(1)>",
	"<data:text/html,<script>alert(1)</script>>",
	"[x](&#106;avascript:alert(1))",
	"[x](java%0Ascript:alert(1))",
	"[x](java\\ script:alert(1))",
	"[x](vbscript:msgbox(1))",
	"[x](file:///etc/passwd)",
	"[x](data:image/png;base64,AAAA)",
	"[![img](https://evil.example/p.png)](javascript:alert(1))",
	"![x][ref]\n\n[ref]: https://evil.example/p.png",
	"![x](//evil.example/p.png)",
	"![x](HTTPS://EVIL.EXAMPLE/P.PNG)",
	"![x](parley:media/bafkreiabc \"t\\\" onerror=\\\"alert(1)\")",
	"![x](cid:a@b onerror=alert(1))",
	"![x\" onerror=\"alert(1)](cid:a@b)",
	"![<img src=x onerror=alert(1)>](cid:a@b)",
	"[<img src=x onerror=alert(1)>](https://ok.example)",
	"```\n<script>alert(1)</script>\n```",
	"```\"><script>alert(1)</script>\nx\n```",
	"<details open ontoggle=alert(1)>\n\nx\n\n</details>",
	strings.Repeat("> ", 500) + "<script>alert(1)</script>",
	strings.Repeat("- ", 500) + "[x](javascript:alert(1))",
	strings.Repeat("*", 3000) + "x" + strings.Repeat("*", 3000),
	strings.Repeat("[", 3000) + "x" + strings.Repeat("](javascript:alert(1))", 3000),
	strings.Repeat("![", 1000) + "x" + strings.Repeat("](https://evil.example/p.png)", 1000),
}

// attrsAllowed is the whole allow-list of attributes per element.
var attrsAllowed = map[string]string{
	"a":    "href rel title alt",
	"img":  "src alt title",
	"code": "class",
	"th":   "align",
	"td":   "align",
	"ol":   "start",
}

// checkAttrs fails for any attribute outside attrsAllowed and for any
// script-like scheme left in an attribute value, after entity decoding.
func checkAttrs(t *testing.T, in, out string) {
	t.Helper()
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
		for _, a := range tok.Attr {
			if !strings.Contains(" "+attrsAllowed[tok.Data]+" ", " "+a.Key+" ") {
				t.Errorf("%.80q: attribute %s on <%s> survived: %.200q", in, a.Key, tok.Data, out)
			}
			v := strings.ToLower(strings.Join(strings.Fields(a.Val), ""))
			for _, bad := range []string{"javascript:", "vbscript:", "data:", "file:"} {
				if strings.Contains(v, bad) {
					t.Errorf("%.80q: %s=%q survived: %.200q", in, a.Key, a.Val, out)
				}
			}
			if a.Key == "href" && strings.HasPrefix(v, "//") {
				t.Errorf("%.80q: protocol-relative link survived: %.200q", in, out)
			}
		}
	}
}

func TestSanitizeHTMLHostileMore(t *testing.T) {
	for _, in := range append(hostileMore, hostile...) {
		out := SanitizeHTML(in)
		checkSafe(t, in, out)
		checkAttrs(t, in, out)
	}
}

func TestRenderMarkdownHostileMore(t *testing.T) {
	all := append(append(append([]string{}, hostileMarkdownMore...), hostileMarkdown...), hostileMore...)
	for _, in := range all {
		out := RenderMarkdown(in)
		checkSafe(t, in, out)
		checkAttrs(t, in, out)
		if strings.Contains(strings.ToLower(out), "<script") {
			t.Errorf("RenderMarkdown(%.80q) kept a script tag: %.200q", in, out)
		}
		if p := PlainText(in); strings.Contains(strings.ToLower(p), "<script") && !strings.Contains(strings.ToLower(in), "<script") {
			t.Errorf("PlainText(%.80q) made a script tag: %.200q", in, p)
		}
	}
}

// Remote images never load: with no cid: or parley: source there is no
// <img> at all, in HTML or in Markdown.
func TestNoRemoteImages(t *testing.T) {
	for _, in := range []string{
		`<img src="https://evil.example/x.png">`, `<img src="//evil.example/x.png">`,
		`<img srcset="https://evil.example/x.png 1x">`, `<img src="data:image/png;base64,AAAA">`,
	} {
		if out := SanitizeHTML(in); strings.Contains(out, "src") {
			t.Errorf("SanitizeHTML(%q) = %q", in, out)
		}
	}
	for _, in := range []string{
		"![x](https://evil.example/p.png)", "![x](//evil.example/p.png)", "![x](data:image/png;base64,AAAA)",
		"![x][r]\n\n[r]: https://evil.example/p.png", "![x](parley:media/../evil)",
	} {
		if out := RenderMarkdown(in); strings.Contains(out, "<img") {
			t.Errorf("RenderMarkdown(%q) = %q", in, out)
		}
	}
}

// Allowed formatting survives nesting; only the bad parts go.
func TestNestedKept(t *testing.T) {
	for in, want := range map[string]string{
		`<p><b><i><u onmouseover="x">deep</u></i></b></p>`:                                     `<p><b><i>deep</i></b></p>`,
		`<ul><li><ol><li><a href="javascript:alert(1)">x</a></li></ol></li></ul>`:              `<ul><li><ol><li>x</li></ol></li></ul>`,
		`<blockquote><blockquote><code class="language-go">x</code></blockquote></blockquote>`: `<blockquote><blockquote><code class="language-go">x</code></blockquote></blockquote>`,
		`<img src="parley:media/bafkreiabc" onload="alert(1)" alt="cat">`:                      `<img src="parley:media/bafkreiabc" alt="cat">`,
	} {
		if got := SanitizeHTML(in); got != want {
			t.Errorf("SanitizeHTML(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	if got := RenderMarkdown("> **a _b ~~c~~_**"); !strings.Contains(got, "<blockquote>\n<p><strong>a <em>b <del>c</del></em></strong></p>") {
		t.Errorf("nested Markdown: %q", got)
	}
}
