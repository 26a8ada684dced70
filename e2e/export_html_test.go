package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley-p2p/parley/api"
)

// TestExportReadable: a room with imported messages (a reply, a
// reaction, an image), a message of the node's own user with HTML that
// must not run, and a reaction, exported as a static page: the page and
// the decrypted image are written, every text is escaped, and headless
// Chromium shows the text and the image (a screenshot is written; set
// PARLEY_SCREENSHOT_DIR to keep it). The jsonl and md exports list the same
// messages.
func TestExportReadable(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "H")
	var rr api.RoomResp
	d.must(&rr, "room", "create", "--name", "Hiking <club>")
	d.must(nil, "import", "--from", "telegram", filepath.Join(fixtures, "telegram"), "--room", rr.Room)
	var ev api.EventResp
	d.must(&ev, "send", rr.Room, "<script>document.title='pwned'</script> <img src=x onerror=alert(1)> **bold** welcome home")
	d.must(nil, "react", rr.Room, ev.Event, "🎉")

	dir := filepath.Join(t.TempDir(), "page")
	var r api.ExportReadableResp
	d.must(&r, "export", rr.Room, "--html", dir)
	if r.Messages != 5 || r.Files != 1 {
		t.Fatalf("export --html answered %+v, want 5 messages and 1 file", r)
	}
	page, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{"Hiking &lt;club&gt;", "Alice Example", "imported from telegram", "Happy new year!", "↪", "👍", "🎉", "files/3-photo_1_31-12-2023_21-06-00.png", "&lt;script&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if n := strings.Count(html, "<img "); n != 1 {
		t.Errorf("the page has %d img elements, want the 1 image", n)
	}
	for _, bad := range []string{"<script", "<img src=x"} { // as text they are escaped: &lt;script&gt;
		if strings.Contains(html, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	png, _ := os.ReadFile(filepath.Join(fixtures, "telegram/photos/photo_1@31-12-2023_21-06-00.png"))
	if got, err := os.ReadFile(filepath.Join(dir, "files/3-photo_1_31-12-2023_21-06-00.png")); err != nil || string(got) != string(png) {
		t.Fatalf("the decrypted image beside the page differs: %v", err)
	}

	jl := filepath.Join(t.TempDir(), "room.jsonl")
	d.must(nil, "export", rr.Room, "--format", "jsonl", "-o", jl)
	f, err := os.Open(jl)
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Author   string         `json:"author"`
			Imported map[string]any `json:"imported"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m.Author == "" {
			t.Fatalf("jsonl line %d: %v %q", lines+1, err, sc.Text())
		}
		lines++
	}
	f.Close()
	md := filepath.Join(t.TempDir(), "room.md")
	d.must(nil, "export", rr.Room, "--format", "md", "-o", md)
	mdb, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if lines != 5 || !strings.Contains(string(mdb), "Alice Example") || strings.Contains(strings.ReplaceAll(string(mdb), `\<`, ""), "<script") {
		t.Fatalf("jsonl has %d lines; md (%d bytes):\n%s", lines, len(mdb), mdb)
	}

	browserCheck(t, filepath.Join(dir, "index.html"))
}

// browserCheck opens the page in headless Chromium: the text and the image
// must be visible (the image decoded, with its size), the injected title
// change must not have run.
func browserCheck(t *testing.T, page string) {
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		t.Skip("Chromium is not installed (apt-get install -y chromium): the page is not checked in a browser")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(900, 1100),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel2 := chromedp.NewContext(actx)
	defer cancel2()
	ctx, cancel3 := context.WithTimeout(ctx, 120*time.Second)
	defer cancel3()
	if err := chromedp.Do(ctx, chromedp.Navigate("file://"+page)); err != nil {
		t.Fatalf("headless Chromium: %v", err)
	}
	imgWidth, err := chromedp.Run(ctx, chromedp.Poll[int](`(() => { const i = document.querySelector("img"); return i && i.complete ? i.naturalWidth : 0 })()`, chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		t.Fatalf("the image did not load: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("body"))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("PARLEY_SCREENSHOT_DIR")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		t.Fatal(err)
	}
	shotFile := filepath.Join(out, "export-html.png")
	if err := os.WriteFile(shotFile, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shotFile)
	if imgWidth != 64 {
		t.Errorf("the image shows %d pixels wide, want 64", imgWidth)
	}
	for _, want := range []string{"Happy new year!", "Same to you!", "Look at this", "<script>document.title", "welcome home"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if title == "pwned" {
		t.Error("a script of a message ran")
	}
}
