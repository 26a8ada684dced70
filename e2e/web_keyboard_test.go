package e2e

// Keyboard-only use of the web app (issue 11, docs/web.md "Keyboard"): a
// whole flow driven with key events alone (Tab, Shift+Tab, Enter, Space,
// Escape, the arrow keys, and typed text), no mouse and no scripted
// click; every control the focus lands on must show a focus ring.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// keyCodes are the Windows virtual key codes (and typed text) of the keys
// the keyboard tests press.
var keyCodes = map[string]struct {
	code int64
	text string
	name string // DOM code
}{
	"Tab": {9, "", "Tab"}, "Enter": {13, "\r", "Enter"}, "Escape": {27, "", "Escape"}, " ": {32, " ", "Space"},
	"ArrowLeft": {37, "", "ArrowLeft"}, "ArrowUp": {38, "", "ArrowUp"}, "ArrowRight": {39, "", "ArrowRight"},
	"ArrowDown": {40, "", "ArrowDown"}, "Home": {36, "", "Home"}, "End": {35, "", "End"},
}

// press presses key (a DOM key name of keyCodes) with Shift when shift.
func (b *browser) press(key string, shift bool) {
	b.t.Helper()
	k, ok := keyCodes[key]
	if !ok {
		b.t.Fatalf("press: unknown key %q", key)
	}
	var mods int64
	if shift {
		mods = 8 // Shift
	}
	b.cdp("press "+key, func(ctx context.Context) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeChar, input.DispatchKeyEventTypeKeyUp} {
			if typ == input.DispatchKeyEventTypeChar && k.text == "" {
				continue
			}
			p := input.DispatchKeyEventParams{Type: typ, Key: key, Code: k.name, WindowsVirtualKeyCode: k.code, NativeVirtualKeyCode: k.code, Modifiers: mods}
			if typ == input.DispatchKeyEventTypeChar {
				p.Text, p.UnmodifiedText = k.text, k.text
			}
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// typeText types text into the focused control, as a keyboard (or an
// input method) does.
func (b *browser) typeText(text string) {
	b.t.Helper()
	b.cdp("type", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// focus is the focused element's role and accessible name ("" when the
// page itself has the focus), and why its focus would not show ("" when
// it does: a ring, or the accent border of the field's box).
type focus struct{ role, name, hidden string }

func (f focus) String() string { return fmt.Sprintf("%s %q", f.role, f.name) }

// focusShown explains why the focused element's focus does not show, or "".
const focusShown = `(() => { const e = document.activeElement;
	if (!e || e === document.body) return 'nothing is focused';
	const r = e.getBoundingClientRect();
	if (r.width === 0 || r.height === 0) return 'the focused element has no size';
	for (let p = e; p; p = p.parentElement) { const cs = getComputedStyle(p);
		if (cs.opacity === '0' || cs.visibility === 'hidden' || cs.display === 'none') return 'the focused element is hidden'; }
	const cs = getComputedStyle(e);
	if (e.matches(':focus-visible') && cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 1) return '';
	const box = e.closest('.composer-row, .search-box');
	if (box && getComputedStyle(box).borderTopColor === getComputedStyle(document.documentElement).getPropertyValue('--accent').trim().replace(/^#(..)(..)(..)$/, (_, r, g, b) => 'rgb(' + [r, g, b].map(x => parseInt(x, 16)).join(', ') + ')')) return '';
	return 'no focus ring (outline ' + cs.outlineStyle + ' ' + cs.outlineWidth + ', focus-visible ' + e.matches(':focus-visible') + ')'; })()`

// focused reads the focus.
func (b *browser) focused() focus {
	b.t.Helper()
	var f focus
	b.cdp("read the focus", func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: "document.activeElement"})
		if err != nil {
			return err
		}
		if err := evalJS(ctx, focusShown, &f.hidden); err != nil {
			return err
		}
		if res.Result.ObjectID == "" {
			f.role = "none"
			return nil
		}
		ax, err := chromedp.Call(ctx, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{ObjectID: res.Result.ObjectID, FetchRelatives: ptr(false)})
		if err != nil {
			return err
		}
		for _, n := range ax.Nodes {
			if n.Role != nil {
				json.Unmarshal(n.Role.Value, &f.role)
			}
			if n.Name != nil {
				json.Unmarshal(n.Name.Value, &f.name)
			}
			break
		}
		return nil
	})
	return f
}

// expectFocus waits for the focus to be on role named name (prefix: the
// name starts with it), shown.
func (b *browser) expectFocus(role, name string, prefix bool) {
	b.t.Helper()
	b.poll(fmt.Sprintf("the focus on %s %q", role, name), func(ctx context.Context) error {
		f := b.focused()
		if !focusIs(f, role, name, prefix) {
			return fmt.Errorf("the focus is on %v", f)
		}
		if f.hidden != "" {
			return fmt.Errorf("%v: %s", f, f.hidden)
		}
		return nil
	})
}

func focusIs(f focus, role, name string, prefix bool) bool {
	if role == "img" {
		role = "image"
	}
	g, w := strings.ToLower(strings.TrimSpace(f.name)), strings.ToLower(name)
	return f.role == role && (g == w || (prefix && strings.HasPrefix(g, w)))
}

// tabTo presses Tab (Shift+Tab when back) until the focus is on role
// named name (a name ending in "…": starting with it), at most max times;
// every stop on the way must show its focus. It fails with the path the
// focus took.
func (b *browser) tabTo(role, name string, back bool, max int) {
	b.t.Helper()
	var path []string
	for range max {
		b.press("Tab", back)
		f := b.focused()
		path = append(path, f.String())
		if f.role != "none" && f.role != "RootWebArea" && f.hidden != "" {
			b.t.Fatalf("%s: Tab stop %v: %s (path: %s)", b.name, f, f.hidden, strings.Join(path, " → "))
		}
		if prefix, ok := strings.CutSuffix(name, "…"); (ok && focusIs(f, role, prefix, true)) || focusIs(f, role, name, false) {
			return
		}
	}
	b.t.Fatalf("%s: %s %q not reached in %d Tabs: %s", b.name, role, name, max, strings.Join(path, " → "))
}

// inFocus is a JavaScript condition on the focused element e.
func (b *browser) inFocus(what, cond string) {
	b.t.Helper()
	b.ok(what, `(() => { const e = document.activeElement; return !!e && (`+cond+`) })()`)
}

// namedRoles are the roles whose every element must have an accessible name.
var namedRoles = map[string]bool{"button": true, "link": true, "textbox": true, "searchbox": true, "combobox": true,
	"checkbox": true, "switch": true, "slider": true, "menuitem": true, "dialog": true, "alertdialog": true,
	"navigation": true, "region": true, "complementary": true, "log": true, "image": true, "listbox": true, "radio": true}

// checkNames fails the test for each control of the page (of namedRoles,
// not hidden from the accessibility tree) without an accessible name.
func (b *browser) checkNames(where string) {
	b.t.Helper()
	var bad []string
	b.cdp("read the accessibility tree", func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		if err != nil {
			return err
		}
		for _, n := range res.Nodes {
			if n.Ignored || n.Role == nil {
				continue
			}
			var role, name string
			json.Unmarshal(n.Role.Value, &role)
			if n.Name != nil {
				json.Unmarshal(n.Name.Value, &name)
			}
			if namedRoles[role] && strings.TrimSpace(name) == "" {
				var html string
				if n.BackendDOMNodeID != 0 {
					if obj, err := chromedp.Call(ctx, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: n.BackendDOMNodeID}); err == nil {
						callOn(ctx, obj.Object.ObjectID, "function(){return this.outerHTML.slice(0, 160)}", &html)
					}
				}
				bad = append(bad, role+" "+html)
			}
		}
		return nil
	})
	for _, x := range bad {
		b.t.Errorf("%s, %s: a control without an accessible name: %s", b.name, where, x)
	}
}

// escapeBack presses Escape, waits until cond holds (a dialog or panel
// gone), and for the focus back on the button named opener.
func (b *browser) escapeBack(what, cond, opener string) {
	b.t.Helper()
	b.press("Escape", false)
	b.ok(what, cond)
	b.expectFocus("button", opener, false)
}

// TestWebKeyboardOnly drives the app with the keyboard alone: create a
// room, send, reply, react with the emoji picker, edit, delete, open and
// close the room settings, the member list and a search result. At each
// step the focus lands where a keyboard user expects it and shows; dialogs
// keep Tab inside and give the focus back when they close.
func TestWebKeyboardOnly(t *testing.T) {
	if chromiumPath() == "" {
		t.Skip("no Chromium found (install the chromium package, or set PARLEY_CHROMIUM): browser tests skipped")
	}
	a := startDaemon(t, "a")
	a.must(nil, "profile", "set", "--name", "Alice")
	kb, base := login(t, a, "alice")

	// Create a room: New room, the name typed in the dialog's first field,
	// Enter. The new room opens with the focus in the composer.
	kb.tabTo("button", "New room", false, 10)
	kb.press("Enter", false)
	kb.role("dialog", "New room", false)
	kb.expectFocus("textbox", "Room name", false)
	kb.typeText("Keys")
	kb.screenshot("web-kb-new-room")
	kb.press("Enter", false)
	kb.role("log", "Messages", false)
	kb.expectFocus("textbox", "Message", false)
	kb.checkNames("the room")

	// Send.
	for _, m := range []string{"first message", "second message"} {
		kb.typeText(m)
		kb.press("Enter", false)
		kb.article(m)
	}
	// up moves from the composer to the message holding text: Shift+Tab
	// into the last message's actions, then the arrow keys.
	up := func(text string) {
		t.Helper()
		for i := 0; ; i++ {
			var in bool
			if kb.eval(`document.activeElement.closest('[role=log]') !== null`, &in); in {
				break
			}
			if i == 3 {
				t.Fatal("Shift+Tab from the composer does not reach the timeline")
			}
			kb.press("Tab", true)
		}
		for range 10 {
			kb.press("ArrowUp", false)
			var at string
			kb.eval(`((document.activeElement.closest('article') || document).querySelector('.text') || {}).textContent || ''`, &at)
			if strings.Contains(at, text) {
				kb.inFocus("the message is focused", `e.tagName === 'ARTICLE'`)
				kb.expectFocus("article", "", true)
				return
			}
		}
		t.Fatalf("no message with %q reached with the arrow keys", text)
	}

	// Reply to the first message.
	up("first message")
	kb.screenshot("web-kb-message-focused")
	kb.tabTo("button", "Reply", false, 3)
	kb.press("Enter", false)
	kb.expectFocus("textbox", "Message", false)
	kb.typeText("a reply")
	kb.press("Enter", false)
	if s := kb.article("a reply").text(); !strings.Contains(s, "first message") {
		t.Fatalf("the reply %q does not quote its parent", s)
	}

	// React: the picker opens on its first emoji; the arrows move; Space
	// picks; the focus comes back to React, on the message drawn again.
	up("first message")
	kb.tabTo("button", "React", false, 4)
	kb.press("Enter", false)
	kb.role("dialog", "Pick a reaction", false)
	kb.expectFocus("button", "👍", false)
	kb.press("ArrowRight", false)
	kb.expectFocus("button", "❤️", false)
	kb.press("ArrowDown", false)
	kb.press("ArrowUp", false)
	kb.expectFocus("button", "❤️", false)
	kb.screenshot("web-kb-emoji")
	kb.checkNames("the emoji picker")
	kb.press(" ", false)
	kb.ok("the reaction shows", `[...document.querySelectorAll('article .reaction')].some(b => b.textContent.includes('❤️') && b.getAttribute('aria-pressed') === 'true')`)
	kb.expectFocus("button", "React", false)
	kb.inFocus("React of the first message", `e.closest('article').querySelector('.text').textContent.includes('first message')`)

	// Edit the second message: Down to it, Tab to Edit, type, Enter.
	kb.press("ArrowDown", false)
	kb.inFocus("the second message", `e.tagName === 'ARTICLE' && e.querySelector('.text').textContent.includes('second message')`)
	kb.tabTo("button", "Edit", false, 5)
	kb.press("Enter", false)
	kb.expectFocus("textbox", "Edit message", false)
	kb.typeText(" edited")
	kb.press("Enter", false)
	kb.article("second message edited")
	kb.expectFocus("textbox", "Message", false)

	// Delete the reply: its Delete is the last control before the composer;
	// the question opens on Cancel; Tab, Enter deletes; the focus stays on
	// the message.
	kb.tabTo("button", "Delete", true, 3)
	kb.inFocus("Delete of the reply", `e.closest('article').querySelector('.text').textContent.includes('a reply')`)
	kb.press("Enter", false)
	kb.role("alertdialog", "Delete message?", false)
	kb.expectFocus("button", "Cancel", false)
	kb.press("Tab", false)
	kb.expectFocus("button", "Delete", false)
	kb.press("Enter", false)
	kb.article("Message deleted")
	kb.inFocus("the focus on the deleted message", `e.tagName === 'ARTICLE' && e.textContent.includes('Message deleted')`)
	kb.expectFocus("article", "", true)

	// Room settings: Tab stays inside the dialog; Escape closes it and the
	// focus is back on its button.
	kb.press("Escape", false)
	kb.expectFocus("textbox", "Message", false)
	kb.tabTo("button", "Room settings", true, 40)
	kb.press("Enter", false)
	kb.role("dialog", "Room settings", false)
	kb.expectFocus("textbox", "Room name", false)
	for range 25 {
		kb.press("Tab", false)
		kb.inFocus("Tab stays in the dialog", `e.closest('dialog[open]') !== null`)
		if f := kb.focused(); f.hidden != "" {
			t.Fatalf("in Room settings, %v: %s", f, f.hidden)
		}
	}
	kb.press("Tab", true)
	kb.inFocus("Shift+Tab stays in the dialog", `e.closest('dialog[open]') !== null`)
	kb.screenshot("web-kb-settings")
	kb.checkNames("Room settings")
	kb.escapeBack("the dialog is gone", `document.querySelector('dialog') === null`, "Room settings")

	// The member list: the focus moves into the panel; Escape closes it
	// and gives the focus back to Members.
	kb.tabTo("button", "Members", true, 8)
	kb.press("Enter", false)
	panel := kb.role("complementary", "Members", false)
	kb.within(panel, "list", "Members", false)
	kb.inFocus("the focus in the panel", `e.closest('[role=complementary]') !== null`)
	kb.tabTo("button", "Close panel", false, 3)
	kb.screenshot("web-kb-members")
	kb.checkNames("the member list")
	kb.escapeBack("the panel is closed", `document.querySelector('.panel') === null`, "Members")

	// Search: type in the box, Enter; Tab to the result; Enter jumps to the
	// message, which then has the focus.
	kb.tabTo("searchbox", "Search messages", true, 3)
	kb.typeText("first")
	kb.press("Enter", false)
	results := kb.role("list", "Search results", false)
	kb.within(results, "listitem", "", false)
	kb.tabTo("button", "Alice…", false, 4)
	kb.inFocus("a search result", `e.closest('[aria-label="Search results"]') !== null`)
	kb.screenshot("web-kb-search")
	kb.checkNames("the search results")
	kb.press("Enter", false)
	kb.inFocus("the found message has the focus", `e.tagName === 'ARTICLE' && e.querySelector('.text').textContent.includes('first message')`)

	// Escape leaves the timeline for the composer; the panel's Close
	// button follows the composer; closing gives the focus back to the
	// search box.
	kb.press("Escape", false)
	kb.expectFocus("textbox", "Message", false)
	kb.tabTo("button", "Close panel", false, 5)
	kb.press("Enter", false)
	kb.ok("the panel is closed", `document.querySelector('.panel') === null`)
	kb.expectFocus("searchbox", "Search messages", false)

	// The found message's flash ends (the phone screenshots below caught
	// it still on when they were taken within it).
	kb.ok("the flash is over", `document.querySelector('.flash') === null && document.getAnimations().every((a) => a.playState !== 'running')`)

	// At phone width the focus still shows (the rings are not clipped away).
	kb.cdp("phone width", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 800, DeviceScaleFactor: 2, Mobile: true})
		return err
	})
	kb.tabTo("link", "All rooms", true, 6)
	kb.screenshot("web-kb-phone")
	// And in the dark theme.
	kb.cdp("dark", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})
	kb.tabTo("button", "Members", false, 4)
	kb.screenshot("web-kb-phone-dark")
	kb.cdp("desktop width", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	})
	kb.checkClean(base)
}
