package node

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/internal/clientfile"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/rooms"
)

// The readable export (`parley export ROOM --html DIR | --format jsonl|md
// -o FILE`): a room's messages in a form anyone can read without Parley. The
// HTML page is self-contained (no script, no remote resource): every text
// is escaped by html/template, and a message's rich text is the node's
// sanitized rendering (mimi.RenderMarkdown, mimi.SanitizeHTML); files are
// decrypted into files/ beside it.

// readableMsg is one message as the readable formats show it.
type readableMsg struct {
	ID         string              `json:"id"`
	Author     string              `json:"author"`
	AuthorID   string              `json:"author_id"`
	Time       time.Time           `json:"time"`
	Text       string              `json:"text"`
	HTML       template.HTML       `json:"-"`
	ReplyTo    string              `json:"reply_to,omitempty"`
	ReplyText  string              `json:"-"`
	Edited     bool                `json:"edited,omitempty"`
	Reactions  map[string][]string `json:"reactions,omitempty"`
	Imported   *api.ImportedInfo   `json:"imported,omitempty"`
	ImportedBy string              `json:"imported_by,omitempty"`
	File       string              `json:"file,omitempty"` // path beside the page, or ""
	FileName   string              `json:"file_name,omitempty"`
	FileMIME   string              `json:"file_mime,omitempty"`
	Image      bool                `json:"-"`
	Deleted    bool                `json:"deleted,omitempty"`
}

// exportReadable is the API method export/readable.
func (n *Node) exportReadable(ctx context.Context, req api.ExportReadableReq) (api.ExportReadableResp, error) {
	p, done := n.progress.start(req.Progress)
	defer done()
	return n.exportReadableCounted(ctx, req, p)
}

// exportReadableCounted is exportReadable, counting in prog (nil: not
// counted) the room's readable messages done: each once it is read (with
// its file decrypted beside the HTML page, the slow part), before the
// page or file is written.
func (n *Node) exportReadableCounted(ctx context.Context, req api.ExportReadableReq, prog *progress) (api.ExportReadableResp, error) {
	out, err := absPath(req.Out, "output")
	if err != nil {
		return api.ExportReadableResp{}, err
	}
	switch req.Format {
	case "html", "jsonl", "md":
	default:
		return api.ExportReadableResp{}, errorf(api.KindInvalid, "format %q: want html, jsonl or md", req.Format)
	}
	var title string
	err = n.engine.do(ctx, func() error {
		_, rc, err := n.engine.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room != nil {
			title = n.engine.stateOf(rc).Name
		}
		return nil
	})
	if err != nil {
		return api.ExportReadableResp{}, err
	}
	h, err := n.engine.History(ctx, api.HistoryReq{Room: req.Room, Quiet: true})
	if err != nil {
		return api.ExportReadableResp{}, err
	}
	if title == "" {
		title = req.Room
	}
	name := func(u string) string {
		if s := h.Names[u]; s != "" {
			return s
		}
		return u
	}
	resp := api.ExportReadableResp{Room: req.Room, Out: out}
	var msgs []readableMsg
	byID := map[string]int{}
	if req.Format == "html" {
		if err := os.MkdirAll(filepath.Join(out, "files"), 0o700); err != nil {
			return resp, errorf(api.KindInvalid, "cannot make %s: %v", out, clientfile.UnwrapPathErr(err))
		}
	}
	readable := func(e api.TimelineEvent) bool { return e.Type == rooms.TypeMessage && e.Decrypted }
	total := 0
	for _, e := range h.Events {
		if readable(e) {
			total++
		}
	}
	prog.setTotal(total)
	for _, e := range h.Events {
		if !readable(e) {
			continue
		}
		m := readableMsg{ID: e.ID, Author: name(e.Sender), AuthorID: e.Sender, Time: time.UnixMilli(e.TS).UTC(), Text: e.Body,
			HTML: template.HTML(e.HTML), ReplyTo: e.ReplyTo, Edited: e.Edited, Reactions: map[string][]string{}, Imported: e.Imported, Deleted: e.Redacted}
		for k, us := range e.Reactions {
			for _, u := range us {
				m.Reactions[k] = append(m.Reactions[k], name(u))
			}
		}
		if im := e.Imported; im != nil {
			m.Author, m.AuthorID, m.Time, m.ImportedBy = im.Author, im.AuthorID, time.UnixMilli(im.TS).UTC(), name(e.Sender)
			for k, us := range im.Reactions {
				m.Reactions[k] = append(m.Reactions[k], us...)
			}
		}
		if len(m.Reactions) == 0 {
			m.Reactions = nil
		}
		if md := e.Media; md != nil {
			m.FileName, m.FileMIME = md.Name, md.MIME
			if req.Format == "html" {
				rel, err := n.decryptFile(md, out, len(msgs))
				if err != nil {
					resp.Missing++
				} else {
					m.File, m.Image = rel, strings.HasPrefix(md.MIME, "image/")
					resp.Files++
				}
			}
			m.Text = strings.TrimSpace(strings.TrimPrefix(m.Text, firstLine(m.Text))) // the file line; the caption stays
			m.HTML = ""
		}
		if i, ok := byID[m.ReplyTo]; ok {
			m.ReplyText = msgs[i].Author + ": " + truncateText(firstLine(msgs[i].Text+msgs[i].FileName), 80)
		}
		byID[m.ID] = len(msgs)
		msgs = append(msgs, m)
		prog.add(1)
	}
	resp.Messages = len(msgs)
	var write func(f *os.File) error
	switch req.Format {
	case "html":
		write = func(f *os.File) error {
			return readablePage.Execute(f, map[string]any{"Title": title, "Room": req.Room, "Messages": msgs})
		}
		out = filepath.Join(out, "index.html")
	case "jsonl":
		write = func(f *os.File) error {
			w := bufio.NewWriter(f)
			enc := json.NewEncoder(w)
			for _, m := range msgs {
				if err := enc.Encode(m); err != nil {
					return err
				}
			}
			return w.Flush()
		}
	case "md":
		write = func(f *os.File) error { return writeMarkdown(f, title, msgs) }
	}
	if err := clientfile.CheckOutput(out); err != nil {
		return resp, err
	}
	return resp, writeAtomic(out, write)
}

// decryptFile writes the file md names, decrypted, into dir/files and
// returns its path relative to dir.
func (n *Node) decryptFile(md *api.MessageMedia, dir string, i int) (string, error) {
	if n.media == nil || md.Key == "" {
		return "", fmt.Errorf("no media store or key")
	}
	root, err := cid.Decode(md.CID)
	if err != nil {
		return "", err
	}
	key, err := mediasvc.ParseKey(md.Key)
	if err != nil {
		return "", err
	}
	if missing, err := media.Missing(n.media.Store(), root); err != nil || len(missing) > 0 {
		return "", fmt.Errorf("blob not held whole")
	}
	r, err := media.NewReader(n.media.Store(), root, key)
	if err != nil {
		return "", err
	}
	base := safeFileName(md.Name)
	rel := fmt.Sprintf("files/%d-%s", i+1, base)
	f, err := os.OpenFile(filepath.Join(dir, rel), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return "", err
	}
	return rel, f.Close()
}

// safeFileName keeps a file name's letters, digits, dots, dashes and
// underscores.
func safeFileName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, filepath.Base(s))
	s = strings.TrimLeft(s, ".")
	if s == "" {
		s = "file"
	}
	return truncateText(s, 80)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// writeMarkdown writes msgs as Markdown: a heading a message, the text
// quoted so that no Markdown in it takes effect beyond the quote.
func writeMarkdown(w io.Writer, title string, msgs []readableMsg) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# %s\n\n", mdEscape(title))
	for _, m := range msgs {
		fmt.Fprintf(bw, "### %s · %s\n\n", mdEscape(m.Author), m.Time.Format("2006-01-02 15:04 UTC"))
		if m.Imported != nil {
			fmt.Fprintf(bw, "*imported from %s by %s*\n\n", mdEscape(m.Imported.From), mdEscape(m.ImportedBy))
		}
		if m.ReplyText != "" {
			fmt.Fprintf(bw, "↪ in reply to %s\n\n", mdEscape(m.ReplyText))
		}
		for _, l := range strings.Split(m.Text, "\n") {
			fmt.Fprintf(bw, "> %s\n", mdEscape(l))
		}
		if m.FileName != "" {
			fmt.Fprintf(bw, "> \n> 📎 %s (%s)\n", mdEscape(m.FileName), mdEscape(m.FileMIME))
		}
		for k, us := range m.Reactions {
			fmt.Fprintf(bw, "\n%s %s", mdEscape(k), mdEscape(strings.Join(us, ", ")))
		}
		bw.WriteString("\n\n")
	}
	return bw.Flush()
}

// mdEscape backslash-escapes Markdown's punctuation and HTML's brackets.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]()#+-.!<>|~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

var readablePage = template.Must(template.New("page").Funcs(template.FuncMap{
	"when": func(t time.Time) string { return t.Format("2006-01-02 15:04 UTC") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin-bottom:.2rem}.room{color:#888;font-size:.8rem;margin-bottom:1.5rem;word-break:break-all}
.msg{background:#fff;border:1px solid #e4e4e7;border-radius:8px;padding:.6rem .8rem;margin:.6rem 0}
.head{font-size:.85rem;color:#555}.author{font-weight:600;color:#1d1d1f}.imported{color:#8a6d3b}
.reply{border-left:3px solid #c7c7cc;padding-left:.5rem;color:#666;font-size:.85rem;margin:.3rem 0}
.reply a{color:inherit}.text{white-space:pre-wrap;margin:.3rem 0}.rich{margin:.3rem 0}
.reacts span{display:inline-block;background:#f0f0f3;border-radius:10px;padding:0 .5rem;margin-right:.3rem;font-size:.85rem}
img{max-width:100%;border-radius:6px;display:block;margin:.3rem 0}
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div class="room">{{.Room}} · exported from Parley</div>
{{range .Messages}}<div class="msg" id="m-{{.ID}}">
<div class="head"><span class="author">{{.Author}}</span> · {{when .Time}}{{if .Edited}} · edited{{end}}{{with .Imported}} · <span class="imported">imported from {{.From}}</span>{{end}}{{if .ImportedBy}} by {{.ImportedBy}}{{end}}</div>
{{if .ReplyText}}<div class="reply">↪ <a href="#m-{{.ReplyTo}}">{{.ReplyText}}</a></div>{{end}}
{{if .Deleted}}<div class="text"><em>deleted</em></div>{{else if .HTML}}<div class="rich">{{.HTML}}</div>{{else if .Text}}<div class="text">{{.Text}}</div>{{end}}
{{if .File}}{{if .Image}}<a href="{{.File}}"><img src="{{.File}}" alt="{{.FileName}}"></a>{{else}}<a href="{{.File}}">📎 {{.FileName}}</a>{{end}}{{else if .FileName}}<div class="text">📎 {{.FileName}} (not on this node)</div>{{end}}
{{if .Reactions}}<div class="reacts">{{range $k, $v := .Reactions}}<span title="{{range $i, $u := $v}}{{if $i}}, {{end}}{{$u}}{{end}}">{{$k}} {{len $v}}</span>{{end}}</div>{{end}}
</div>
{{end}}</body>
</html>
`))
