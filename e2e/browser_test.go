package e2e

// A headless Chromium driven over the DevTools protocol (chromedp) for the
// web app's tests (web_test.go). Controls are found as testing-library's
// getByRole finds them, through the browser's own accessibility tree
// (role and computed accessible name, docs/web.md). Every browser records
// its console errors, uncaught exceptions and the URLs it requested.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// uiTimeout bounds one wait for the page (a loaded machine, two daemons).
const uiTimeout = 60 * time.Second

// chromiumPath finds Chromium: $PARLEY_CHROMIUM, else the usual names.
func chromiumPath() string {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

type browser struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // console errors, exceptions, failed loads
	requests []string // every URL requested
}

// newBrowser starts a fresh headless Chromium (its own profile, so its own
// cookies), with extra options if any; the test is skipped when no
// Chromium is installed.
func newBrowser(t *testing.T, name string, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	return startBrowser(t, name, true, extra...)
}

// startBrowser is newBrowser; without ax, the browser builds no
// accessibility tree (as for a user without assistive technology; role
// queries then do not work, use eval), which the timing tests need.
func startBrowser(t *testing.T, name string, ax bool, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium found (install the chromium package, or set PARLEY_CHROMIUM): browser tests skipped")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
	}
	opts = append(opts, extra...)
	b := &browser{t: t, name: name}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	b.ctx = ctx
	t.Cleanup(func() {
		cancelC()
		cancelA()
	})
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("%s: start Chromium (%s): %v", name, path, err)
	}
	b.cdp("enable", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
			return err
		}
		// The page has the focus, as the window a person looks at does
		// (headless Chromium gives none by default).
		if _, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
			return err
		}
		if !ax {
			return nil
		}
		_, err := chromedp.Call(ctx, accessibility.Enable, cdp.Empty{})
		return err
	})
	return b
}

func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == "error" {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.problems = append(b.problems, "console.error: "+strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problems = append(b.problems, "exception: "+msg)
	case *cdplog.EventEntryAdded:
		// Chromium aborts requests in flight with ERR_NETWORK_CHANGED when
		// the host's interfaces change, as the namespace tests' links do
		// (seen once in CI on a call.signal request): the machine's doing,
		// not the app's.
		if ev.Entry.Level == cdplog.EntryLevelError && !strings.Contains(ev.Entry.Text, "net::ERR_NETWORK_CHANGED") {
			b.problems = append(b.problems, fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	}
}

// cdp runs fn with the UI deadline, failing the test on error.
func (b *browser) cdp(what string, fn func(ctx context.Context) error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// navigate opens u; a navigation the browser reports as failed (an
// aborted or refused load) fails the test at once rather than leave the
// page where it was.
func (b *browser) navigate(u string) {
	b.t.Helper()
	b.cdp("open "+u, func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, page.Navigate, page.NavigateParams{URL: u})
		if err == nil && res.ErrorText != "" {
			err = fmt.Errorf("navigation failed: %s", res.ErrorText)
		}
		return err
	})
}

// pageState describes the page for a failure message: its address, the
// start of its text, and the problems recorded so far.
func (b *browser) pageState() string {
	var st struct{ Href, Text string }
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if err := evalJS(ctx, `({Href: location.href, Text: (document.body ? document.body.innerText : '').slice(0, 300)})`, &st); err != nil {
		return "page unreadable: " + err.Error()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("page %s shows %q; problems %q", st.Href, st.Text, b.problems)
}

// evalJS evaluates a JavaScript expression (awaiting a promise) into v.
func evalJS(ctx context.Context, expr string, v any) error {
	res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: expr, ReturnByValue: ptr(true), AwaitPromise: ptr(true)})
	if err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s", expr, res.ExceptionDetails.Text)
	}
	if v == nil || res.Result == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, v)
}

// eval evaluates a JavaScript expression into v.
func (b *browser) eval(expr string, v any) {
	b.t.Helper()
	b.cdp("evaluate "+expr, func(ctx context.Context) error { return evalJS(ctx, expr, v) })
}

// ok polls a JavaScript condition until it is true.
func (b *browser) ok(what, cond string) {
	b.t.Helper()
	b.poll(what, func(ctx context.Context) error {
		var yes bool
		if err := evalJS(ctx, cond, &yes); err != nil {
			return err
		}
		if !yes {
			return fmt.Errorf("%s is false", cond)
		}
		return nil
	})
}

// poll runs fn until it returns nil or uiTimeout passes.
func (b *browser) poll(what string, fn func(ctx context.Context) error) {
	b.t.Helper()
	deadline := time.Now().Add(uiTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
		err := fn(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: %s: not within %v: %v", b.name, what, uiTimeout, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval, bounded by the deadline
	}
}

// el is an element found in the page.
type el struct {
	b   *browser
	obj runtime.RemoteObjectID
}

// queryRole finds the elements below scope (the document when empty) with
// role whose accessible name is name (case-insensitively; prefix: starts
// with name; name "": any), in document order.
func queryRole(ctx context.Context, scope runtime.RemoteObjectID, role, name string, prefix bool) ([]runtime.RemoteObjectID, error) {
	if scope == "" {
		res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: "document"})
		if err != nil {
			return nil, err
		}
		scope = res.Result.ObjectID
	}
	if role == "img" {
		role = "image" // Chromium's name for the ARIA role img
	}
	res, err := chromedp.Call(ctx, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{ObjectID: scope, Role: role})
	if err != nil {
		return nil, err
	}
	var out []runtime.RemoteObjectID
	for _, n := range res.Nodes {
		if n.Ignored || n.BackendDOMNodeID == 0 {
			continue
		}
		got := ""
		if n.Name != nil {
			json.Unmarshal(n.Name.Value, &got)
		}
		g, w := strings.ToLower(strings.TrimSpace(got)), strings.ToLower(name)
		if name != "" && g != w && !(prefix && strings.HasPrefix(g, w)) {
			continue
		}
		obj, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: n.BackendDOMNodeID})
		if err != nil {
			return nil, err
		}
		out = append(out, obj.Object.ObjectID)
	}
	return out, nil
}

// role waits for an element with role and name (prefix: the name starts
// with name) and returns the last one in document order.
func (b *browser) role(role, name string, prefix bool) el {
	b.t.Helper()
	return b.within(el{b: b}, role, name, prefix)
}

// lastRole is the last element queryRole finds, or an error.
func lastRole(ctx context.Context, scope runtime.RemoteObjectID, role, name string, prefix bool) (runtime.RemoteObjectID, error) {
	objs, err := queryRole(ctx, scope, role, name, prefix)
	if err != nil {
		return "", err
	}
	if len(objs) == 0 {
		return "", fmt.Errorf("no %s named %q", role, name)
	}
	return objs[len(objs)-1], nil
}

// within is role below the element in.
func (b *browser) within(in el, role, name string, prefix bool) el {
	b.t.Helper()
	var found runtime.RemoteObjectID
	b.poll(fmt.Sprintf("find %s %q", role, name), func(ctx context.Context) (err error) {
		found, err = lastRole(ctx, in.obj, role, name, prefix)
		return err
	})
	return el{b: b, obj: found}
}

// count is how many elements with role and name are below in now.
func (b *browser) count(in el, role, name string, prefix bool) int {
	b.t.Helper()
	var n int
	b.cdp("count "+role, func(ctx context.Context) error {
		objs, err := queryRole(ctx, in.obj, role, name, prefix)
		n = len(objs)
		return err
	})
	return n
}

// callOn runs a JavaScript function on an object (this) into v.
func callOn(ctx context.Context, obj runtime.RemoteObjectID, fn string, v any) error {
	res, err := chromedp.Call(ctx, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
		FunctionDeclaration: fn, ObjectID: obj, ReturnByValue: ptr(true), AwaitPromise: ptr(true)})
	if err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("%s", res.ExceptionDetails.Text)
	}
	if v != nil && res.Result != nil && len(res.Result.Value) > 0 {
		return json.Unmarshal(res.Result.Value, v)
	}
	return nil
}

// findArticle finds the last article of the timeline whose text holds text.
func findArticle(ctx context.Context, text string) (runtime.RemoteObjectID, error) {
	logs, err := queryRole(ctx, "", "log", "Messages", false)
	if err != nil || len(logs) == 0 {
		return "", fmt.Errorf("no log Messages (%v)", err)
	}
	arts, err := queryRole(ctx, logs[0], "article", "", false)
	if err != nil {
		return "", err
	}
	for i := len(arts) - 1; i >= 0; i-- {
		var s string
		if callOn(ctx, arts[i], "function(){return this.textContent}", &s) == nil && strings.Contains(s, text) {
			return arts[i], nil
		}
	}
	return "", fmt.Errorf("no article holds %q", text)
}

// article waits for the article of the timeline whose text holds text.
// The app re-renders an article when it changes: find it again (or use
// inArticle) rather than keep it.
func (b *browser) article(text string) el {
	b.t.Helper()
	var found runtime.RemoteObjectID
	b.poll("article with "+text, func(ctx context.Context) (err error) {
		found, err = findArticle(ctx, text)
		return err
	})
	return el{b: b, obj: found}
}

// inArticle waits for an element with role and name in the article whose
// text holds text, finding the article afresh on every try.
func (b *browser) inArticle(text, role, name string, prefix bool) el {
	b.t.Helper()
	var found runtime.RemoteObjectID
	b.poll(fmt.Sprintf("%s %q in the article with %q", role, name, text), func(ctx context.Context) error {
		art, err := findArticle(ctx, text)
		if err != nil {
			return err
		}
		found, err = lastRole(ctx, art, role, name, prefix)
		return err
	})
	return el{b: b, obj: found}
}

// call runs a JavaScript function on the element (this) into v.
func (e el) call(fn string, v any) {
	e.b.t.Helper()
	e.b.cdp("call "+fn, func(ctx context.Context) error { return callOn(ctx, e.obj, fn, v) })
}

func (e el) text() string {
	var s string
	e.call("function(){return this.textContent}", &s)
	return s
}

func (e el) attr(name string) string {
	var s string
	e.call(fmt.Sprintf("function(){return this.getAttribute(%q) || ''}", name), &s)
	return s
}

func (e el) click() {
	e.b.t.Helper()
	e.call("function(){this.scrollIntoView({block:'center'}); this.click()}", nil)
}

// fill focuses the element, selects what it holds and types text.
func (e el) fill(text string) {
	e.b.t.Helper()
	e.call("function(){this.focus(); if (this.select) this.select()}", nil)
	e.b.cdp("type", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// files sets the files of an input type=file.
func (e el) files(paths ...string) {
	e.b.t.Helper()
	e.b.cdp("set files", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: paths, ObjectID: e.obj})
		return err
	})
}

// enter presses Enter in the focused element.
func (b *browser) enter() {
	b.t.Helper()
	b.cdp("press Enter", func(ctx context.Context) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeKeyDown, input.DispatchKeyEventTypeKeyUp} {
			p := input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
			if typ == input.DispatchKeyEventTypeKeyDown {
				p.Text = "\r"
			}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// screenshot saves the page as NAME.png into $PARLEY_SCREENSHOTS, else the
// test's temporary folder.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	dir := os.Getenv("PARLEY_SCREENSHOTS")
	if dir == "" {
		dir = b.t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	var png []byte
	b.cdp("screenshot", func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, page.CaptureScreenshot, page.CaptureScreenshotParams{})
		png = res.Data
		return err
	})
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// checkClean fails the test on console errors or exceptions, and on any
// request to a host other than the daemon's API address.
func (b *browser) checkClean(base string) {
	b.t.Helper()
	u, _ := url.Parse(base)
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s: %s", b.name, p)
	}
	for _, r := range b.requests {
		ru, err := url.Parse(r)
		if err != nil || (ru.Scheme != "data" && ru.Scheme != "blob" && ru.Host != u.Host) {
			b.t.Errorf("%s: request to a foreign host: %s", b.name, r)
		}
	}
	if len(b.requests) == 0 {
		b.t.Errorf("%s: no request recorded (is the network domain enabled?)", b.name)
	}
}

func ptr[T any](v T) *T { return &v }

// mainThreadTasks runs fn with a Chrome trace on and returns the CPU time,
// in ms, of each task the renderer's main thread ran meanwhile (RunTask
// events, their thread time "tdur": script, style, layout and paint of
// the page). CPU time, unlike wall time, does not stretch when other
// processes hold the machine's cores.
func (b *browser) mainThreadTasks(fn func()) []float64 {
	b.t.Helper()
	var mu sync.Mutex
	var raw [][]byte
	done := make(chan struct{})
	var once sync.Once
	lctx, stop := context.WithCancel(b.ctx)
	defer stop()
	chromedp.Listen(lctx, func(ev any) {
		switch ev := ev.(type) {
		case *tracing.EventDataCollected:
			mu.Lock()
			for _, v := range ev.Value {
				raw = append(raw, append([]byte(nil), v...))
			}
			mu.Unlock()
		case *tracing.EventTracingComplete:
			once.Do(func() { close(done) })
		}
	})
	b.cdp("start tracing", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, tracing.Start, tracing.StartParams{TraceConfig: &tracing.TraceConfig{
			IncludedCategories: []string{"toplevel", "disabled-by-default-devtools.timeline"}}})
		return err
	})
	fn()
	b.cdp("end tracing", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, tracing.End, cdp.Empty{}); err != nil {
			return err
		}
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	type event struct {
		Name string  `json:"name"`
		Ph   string  `json:"ph"`
		TDur float64 `json:"tdur"`
		Pid  int     `json:"pid"`
		Tid  int     `json:"tid"`
		Args struct {
			Name string `json:"name"`
		} `json:"args"`
	}
	mu.Lock()
	defer mu.Unlock()
	var evs []event
	main := map[[2]int]bool{}
	for _, r := range raw {
		var e event
		if json.Unmarshal(r, &e) != nil {
			continue
		}
		if e.Name == "thread_name" && e.Args.Name == "CrRendererMain" {
			main[[2]int{e.Pid, e.Tid}] = true
		}
		if e.Name == "RunTask" && e.Ph == "X" {
			evs = append(evs, e)
		}
	}
	var out []float64
	for _, e := range evs {
		if main[[2]int{e.Pid, e.Tid}] {
			out = append(out, e.TDur/1000)
		}
	}
	return out
}
