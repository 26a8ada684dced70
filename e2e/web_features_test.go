package e2e

// The web app's devices, verification, notifications, voice messages,
// unban and invite policy, and the resume of its live stream after the
// daemon restarts (docs/web.md, issue 11), in real headless Chromium
// against real daemons. Controls are found by role and accessible name.

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/parley-p2p/parley/api"
)

// pairInRoom starts Alice and Bob on two connected daemons, both joined in
// a private (encrypted) room named name that Alice created.
func pairInRoom(t *testing.T, name string) (a, b *daemon, room string) {
	t.Helper()
	a, b = startDaemon(t, "a"), startDaemon(t, "b")
	a.must(nil, "profile", "set", "--name", "Alice")
	b.must(nil, "profile", "set", "--name", "Bob")
	b.must(nil, "connect", a.addr)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", name)
	a.must(nil, "room", "invite", rr.Room, b.user)
	b.must(nil, "room", "join", rr.Room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, rr.Room, b.user, "join")
	return a, b, rr.Room
}

// openRoom clicks the room's link in the room list and waits for its timeline.
func (b *browser) openRoom(name, room string) {
	b.t.Helper()
	b.role("link", name, true).click()
	b.ok("the room is open", fmt.Sprintf(`location.hash === "#room=%s" && !!document.querySelector('[role=log]')`, room))
}

// qrModules reads back the modules of the app's QR code: the SVG of a
// data: URL, one "MxyhNv1h-Nz" run per row segment (node/web_more.go).
func qrModules(t *testing.T, src string) [][]bool {
	t.Helper()
	b64, ok := strings.CutPrefix(src, "data:image/svg+xml;base64,")
	if !ok {
		t.Fatalf("the QR image is %.40q…: want an SVG data: URL", src)
	}
	svg, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`viewBox="0 0 (\d+) (\d+)"`).FindSubmatch(svg)
	if m == nil {
		t.Fatalf("QR SVG without a viewBox: %.80s", svg)
	}
	n, _ := strconv.Atoi(string(m[1]))
	bits := make([][]bool, n)
	for i := range bits {
		bits[i] = make([]bool, n)
	}
	for _, r := range regexp.MustCompile(`M(\d+) (\d+)h(\d+)v1h-(\d+)z`).FindAllSubmatch(svg, -1) {
		x, _ := strconv.Atoi(string(r[1]))
		y, _ := strconv.Atoi(string(r[2]))
		w, _ := strconv.Atoi(string(r[3]))
		for i := x; i < x+w && y < n && i < n; i++ {
			bits[y][i] = true
		}
	}
	return bits
}

// TestWebDevices: "Link a new device" shows a one-time code as text and as
// a QR code holding exactly that code; a fresh home joins with it; the
// device list then shows the new device, and Revoke removes it.
func TestWebDevices(t *testing.T) {
	a := startDaemon(t, "a")
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "Vault") // encrypted: devices are announced here
	alice, base := login(t, a, "alice")

	alice.role("button", "Devices", false).click()
	dlg := alice.role("dialog", "Devices", false)
	alice.ok("this device listed", `[...document.querySelectorAll('dialog .device')].some(li => li.textContent.includes('This device'))`)
	if n := alice.count(dlg, "button", "Revoke", false); n != 0 {
		t.Fatalf("%d Revoke buttons with only this device", n)
	}
	alice.within(dlg, "button", "Link a new device", false).click()
	alice.within(dlg, "img", "QR code of the link code", false)
	alice.ok("the QR code loads", `(() => { const i = document.querySelector('dialog img.qr'); return !!i && i.complete && i.naturalWidth > 0 })()`)
	var code, src string
	alice.eval(`document.querySelector('dialog textarea.link-code').value`, &code)
	alice.eval(`document.querySelector('dialog img.qr').getAttribute('src')`, &src)
	if !strings.HasPrefix(code, "parley-link-") {
		t.Fatalf("the link code shown is %q", code)
	}
	if s := alice.within(dlg, "textbox", "Link code", false).text(); s != "" && !strings.Contains(s, code) {
		t.Fatalf("the Link code textbox holds %q", s)
	}
	want, err := qrcode.New(code, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	got, wantBits := qrModules(t, src), want.Bitmap()
	if len(got) != len(wantBits) {
		t.Fatalf("the QR code has %d modules a side, the code's has %d", len(got), len(wantBits))
	}
	for y := range got {
		for x := range got[y] {
			if got[y][x] != wantBits[y][x] {
				t.Fatalf("the QR code differs from the code's at module (%d,%d)", x, y)
			}
		}
	}
	alice.screenshot("web-devices-link")

	// A new device joins with the code the page showed.
	a2 := newDaemon(t, "a2", t.TempDir())
	a2.must(nil, "device", "join", code)
	a2.start()
	var dl api.DeviceListResp
	eventually(t, govTimeout, "the node lists the linked device", func() error {
		if err := a.try(&dl, "device", "list"); err != nil {
			return err
		}
		if len(dl.Devices) != 2 {
			return fmt.Errorf("devices %+v", dl.Devices)
		}
		return nil
	})
	alice.within(dlg, "button", "Close", false).click()
	alice.role("button", "Devices", false).click()
	dlg = alice.role("dialog", "Devices", false)
	alice.within(dlg, "button", "Revoke", false)
	alice.screenshot("web-devices-list")
	alice.within(dlg, "button", "Revoke", false).click()
	confirm := alice.role("alertdialog", "Revoke this device?", false)
	alice.within(confirm, "button", "Revoke", false).click()
	eventually(t, govTimeout, "the linked device is revoked", func() error {
		if err := a.try(&dl, "device", "list"); err != nil {
			return err
		}
		if len(dl.Devices) != 1 || !dl.Devices[0].Current {
			return fmt.Errorf("devices %+v", dl.Devices)
		}
		return nil
	})
	alice.ok("the list shows this device only", `document.querySelectorAll('dialog .device').length === 1 && !document.querySelector('dialog .device button')`)
	alice.checkClean(base)
}

// TestWebVerify: Alice verifies Bob from the room's member list: the
// dialog shows the safety number and emoji Bob's node shows for Alice,
// "They match" records it, and the member is marked verified.
func TestWebVerify(t *testing.T) {
	a, b, room := pairInRoom(t, "Garden")
	alice, base := login(t, a, "alice")
	alice.openRoom("Garden", room)

	alice.role("button", "Room settings", false).click()
	settings := alice.role("dialog", "Room settings", false)
	alice.within(settings, "button", "Verify", false).click()
	dlg := alice.role("dialog", "Verify Bob", false)
	var theirs api.VerifyResp
	b.must(&theirs, "verify", a.user)
	shown := dlg.text()
	for _, g := range strings.Fields(theirs.SafetyNumber) {
		if !strings.Contains(shown, g) {
			t.Fatalf("the dialog %q lacks group %s of Bob's safety number %s", shown, g, theirs.SafetyNumber)
		}
	}
	for i, e := range theirs.Emoji {
		if !strings.Contains(shown, e) || !strings.Contains(shown, theirs.EmojiNames[i]) {
			t.Fatalf("the dialog %q lacks emoji %s (%s) that Bob sees", shown, e, theirs.EmojiNames[i])
		}
	}
	alice.screenshot("web-verify")
	alice.cdp("dark theme", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
		return err
	})
	alice.screenshot("web-verify-dark")
	alice.cdp("light theme", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
		return err
	})
	var mine api.VerifyResp
	a.must(&mine, "verify", b.user)
	if mine.Verified {
		t.Fatal("Bob is verified before Alice said they match")
	}
	alice.within(dlg, "button", "They match", false).click()
	eventually(t, govTimeout, "Alice's node records Bob verified", func() error {
		if err := a.try(&mine, "verify", b.user); err != nil {
			return err
		}
		if !mine.Verified {
			return fmt.Errorf("not verified")
		}
		return nil
	})
	settings = alice.role("dialog", "Room settings", false)
	alice.ok("the member list marks Bob verified", `[...document.querySelectorAll('dialog .member')].some(li => li.textContent.includes('Bob') && !!li.querySelector('.verified'))`)
	alice.within(settings, "button", "Verify", false).click()
	alice.ok("the dialog says Bob is verified", `[...document.querySelectorAll('dialog')].some(d => d.textContent.includes('You verified Bob'))`)
	alice.checkClean(base)
}

// TestWebSecurityWarning: a member showing the display name of a user
// Alice verified, under another key, raises the node's warning; the app
// shows it above the timeline, and "Compare again" opens the verification
// of that member.
func TestWebSecurityWarning(t *testing.T) {
	a, b, room := pairInRoom(t, "Garden")
	a.must(nil, "verify", b.user, "--confirm")
	c := startDaemon(t, "c")
	c.must(nil, "profile", "set", "--name", "Bob") // not Bob
	c.must(nil, "connect", a.addr)
	a.must(nil, "room", "invite", room, c.user)
	c.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a}, room, c.user, "join")
	eventually(t, govTimeout, "the node warns", func() error {
		var info api.RoomInfoResp
		if err := a.try(&info, "room", "info", room); err != nil {
			return err
		}
		if len(info.Warnings) == 0 {
			return fmt.Errorf("no warning")
		}
		return nil
	})
	alice, base := login(t, a, "alice")
	alice.openRoom("Garden", room)
	warn := alice.role("alert", "", false)
	if s := warn.text(); !strings.Contains(s, "uses the name of a person you verified") {
		t.Fatalf("the alert says %q", s)
	}
	alice.screenshot("web-security-warning")
	alice.within(warn, "button", "Compare again", false).click()
	dlg := alice.role("dialog", "Verify Bob", false)
	if s := dlg.text(); !strings.Contains(s, c.user) || strings.Contains(s, "You verified") {
		t.Fatalf("Compare again opens %q: want the unverified newcomer %s", s, c.user)
	}
	alice.checkClean(base)
}

// notifySpy records every Notification the page makes (window.__notes),
// then lets the browser's own make it.
const notifySpy = `(() => { window.__notes = []; const N = window.Notification; if (!N) return;
	window.Notification = new Proxy(N, { construct(target, args) {
		window.__notes.push({ title: args[0], body: (args[1] || {}).body || '' }); return Reflect.construct(target, args); } }); })();`

// TestWebNotifications: with the switch on and the permission granted, a
// mention and a direct message notify while the tab is in the background;
// a plain message does not, nor anything while the tab is in front; the
// tab's title counts the unread messages.
func TestWebNotifications(t *testing.T) {
	a, b, room := pairInRoom(t, "Garden")
	var dm api.RoomResp
	b.must(&dm, "dm", a.user)
	eventually(t, govTimeout, "Alice gets the DM invite", func() error {
		var inv api.InvitesResp
		if err := a.try(&inv, "invites"); err != nil {
			return err
		}
		for _, i := range inv.Invites {
			if i.Room == dm.Room {
				return nil
			}
		}
		return fmt.Errorf("invites %+v", inv.Invites)
	})
	a.must(nil, "room", "join", dm.Room)
	waitMembership(t, []*daemon{a, b}, dm.Room, a.user, "join")

	alice := newBrowser(t, "alice")
	u := a.openURL()
	base := baseOf(u)
	alice.cdp("grant notifications, install the spy", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: base}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: notifySpy})
		return err
	})
	alice.navigate(u)
	alice.role("navigation", "Rooms", false)
	alice.openRoom("Garden", room)

	alice.role("button", "Settings", false).click()
	set := alice.role("dialog", "Settings", false)
	sw := alice.within(set, "switch", "Desktop notifications", false)
	sw.click()
	alice.ok("the switch is on", `document.querySelector('[role=switch]').checked && localStorage.getItem('parley.notifications') === 'on'`)
	alice.screenshot("web-settings")
	alice.within(set, "button", "Close", false).click()

	// The tab in the background: the window does not have the focus (as
	// when the user is in another window; headless Chromium's default).
	alice.cdp("take the focus away", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: false})
		return err
	})
	alice.ok("the window has no focus", `!document.hasFocus()`)

	plain, mention, direct := marker("plain"), marker("mention"), marker("direct")
	b.must(nil, "send", room, plain)
	b.must(nil, "send", room, mention+" @"+a.user, "--mention", a.user)
	b.must(nil, "send", dm.Room, direct)
	alice.ok("the mention and the DM notify", `window.__notes.length >= 2`)
	alice.article(plain) // the plain message is there, after the others were sent: it had its chance
	var notes []struct{ Title, Body string }
	alice.eval(`window.__notes`, &notes)
	if len(notes) != 2 {
		t.Fatalf("notifications %+v: want the mention and the DM", notes)
	}
	if notes[0].Title != "Bob in Garden" || !strings.Contains(notes[0].Body, mention) {
		t.Errorf("the mention's notification is %+v", notes[0])
	}
	if notes[1].Title != "Bob" || !strings.Contains(notes[1].Body, direct) {
		t.Errorf("the DM's notification is %+v", notes[1])
	}
	alice.ok("the tab title counts the unread", `/^\(\d+\) Parley$/.test(document.title)`)
	var title string
	alice.eval(`document.title`, &title)
	if n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSuffix(title, ") Parley"), "(")); n < 3 {
		t.Errorf("tab title %q: want at least the 3 messages Alice has not seen", title)
	}

	// Back in front: no notification, and the count clears for the open room.
	alice.cdp("bring the tab to the front", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	})
	alice.ok("the tab is in front", `!document.hidden && document.hasFocus()`)
	alice.eval(`window.dispatchEvent(new FocusEvent('focus')), true`, nil) // emulated focus sends no event
	alice.ok("the title clears", `document.title === '(1) Parley' || document.title === 'Parley'`)
	again := marker("again")
	b.must(nil, "send", room, again+" @"+a.user, "--mention", a.user)
	alice.article(again)
	var n int
	alice.eval(`window.__notes.length`, &n)
	if n != 2 {
		t.Errorf("%d notifications after a mention with the tab in front: want still 2", n)
	}
	alice.checkClean(base)
}

// TestWebVoice: Alice records a voice message with Chromium's fake
// microphone; Bob, on the other daemon, sees it as a voice message with a
// waveform and duration and plays it.
func TestWebVoice(t *testing.T) {
	a, b, room := pairInRoom(t, "Garden")
	fake := []chromedp.ExecAllocatorOption{
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	}
	alice := newBrowser(t, "alice", fake...)
	u := a.openURL()
	alice.navigate(u)
	alice.role("navigation", "Rooms", false)
	alice.openRoom("Garden", room)
	bob := newBrowser(t, "bob", fake...)
	ub := b.openURL()
	bob.navigate(ub)
	bob.role("navigation", "Rooms", false)
	bob.openRoom("Garden", room)

	rec := alice.role("button", "Record voice message", false)
	rec.click()
	alice.ok("recording", `document.querySelector('button.voice').getAttribute('aria-pressed') === 'true' && (document.querySelector('.rec-time') || {}).textContent >= '0:02'`)
	alice.screenshot("web-voice-recording")
	alice.role("button", "Record voice message", false).click()

	// The message as the node keeps it: a voice message with a waveform.
	var voice *api.TimelineEvent
	eventually(t, govTimeout, "Bob's node holds the voice message", func() error {
		evs, err := b.history(room)
		if err != nil {
			return err
		}
		for i := range evs {
			if evs[i].Media != nil && evs[i].Media.Voice {
				voice = &evs[i]
				return nil
			}
		}
		return fmt.Errorf("no voice message in %d events", len(evs))
	})
	m := voice.Media
	if len(m.Waveform) != 64 || m.DurationMS < 1500 || !strings.HasPrefix(m.MIME, "audio/") {
		t.Fatalf("the voice message: mime %s, %d ms, waveform of %d", m.MIME, m.DurationMS, len(m.Waveform))
	}
	flat := true
	for _, v := range m.Waveform {
		if v != m.Waveform[0] {
			flat = false
		}
	}
	if flat {
		t.Errorf("the waveform is flat: %v", m.Waveform)
	}

	// Bob's timeline: a player with the waveform; playing moves on.
	bob.ok("Bob sees the voice player", `(() => { const v = document.querySelector('[role=log] article .voice-msg'); return !!v && v.querySelectorAll('.wave .bar').length === 64 })()`)
	bob.role("group", "Voice message", false)
	bob.role("slider", "Seek voice message", false)
	bob.role("button", "Play voice message", false).click()
	bob.ok("the voice message plays", `(() => { const a = document.querySelector('.voice-msg audio'); return !!a && a.currentTime > 0.3 })()`)
	bob.role("button", "Pause voice message", false)
	bob.ok("the waveform shows the progress", `document.querySelectorAll('.voice-msg .bar.on').length > 0`)
	bob.screenshot("web-voice-bob")
	bob.cdp("phone width", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: 390, Height: 800, DeviceScaleFactor: 1, Mobile: true})
		return err
	})
	bob.screenshot("web-voice-phone")
	alice.checkClean(baseOf(u))
	bob.checkClean(baseOf(ub))
}

// TestWebUnbanAndInvitePolicy: an admin lifts a ban from the room's member
// list; the Settings dialog sets who may invite this user.
func TestWebUnbanAndInvitePolicy(t *testing.T) {
	a, b, room := pairInRoom(t, "Garden")
	a.must(nil, "room", "ban", room, b.user)
	waitMembership(t, []*daemon{a}, room, b.user, "ban")
	alice, base := login(t, a, "alice")
	alice.openRoom("Garden", room)
	alice.role("button", "Room settings", false).click()
	settings := alice.role("dialog", "Room settings", false)
	if n := alice.count(settings, "button", "Kick", false) + alice.count(settings, "button", "Ban", false); n != 0 {
		t.Errorf("a banned member offers Kick or Ban (%d buttons)", n)
	}
	alice.screenshot("web-room-settings-banned")
	alice.within(settings, "button", "Unban", false).click()
	waitMembership(t, []*daemon{a, b}, room, b.user, "leave")
	settings = alice.role("dialog", "Room settings", false)
	alice.ok("no Unban once lifted", `![...document.querySelectorAll('dialog button')].some(b => b.textContent === 'Unban')`)
	alice.within(settings, "button", "Close", false).click()

	alice.role("button", "Settings", false).click()
	set := alice.role("dialog", "Settings", false)
	policy := alice.within(set, "combobox", "Who can invite me", false)
	alice.ok("the policy shown is the node's", `document.querySelector('#set-policy').value === 'anyone'`)
	policy.call(`function() { this.value = 'nobody'; this.dispatchEvent(new Event('change')); }`, nil)
	eventually(t, govTimeout, "the node's invite policy is nobody", func() error {
		var p api.PolicyResp
		if err := a.try(&p, "invites", "policy"); err != nil {
			return err
		}
		if p.Policy != "nobody" {
			return fmt.Errorf("policy %q", p.Policy)
		}
		return nil
	})
	alice.checkClean(base)
}

// TestWebReconnect: the daemon stops under an open app and starts again on
// the same address; messages sent meanwhile (by the other node, and on
// this one right after the restart) and after it all show, each once, in
// the order of the room's history, and the session survives the restart.
func TestWebReconnect(t *testing.T) {
	a, b, room := pairInRoom(t, "Garden")
	alice, base := login(t, a, "alice")
	alice.openRoom("Garden", room)
	var sent []string
	say := func(d *daemon, what string) {
		m := marker(what)
		d.must(nil, "send", room, m)
		sent = append(sent, m)
	}
	say(b, "before-1")
	say(a, "before-2")
	alice.article(sent[1])

	// Stop the daemon; the app notices. Messages keep coming on the other node.
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	alice.ok("the app says it reconnects", `document.querySelector('.status').textContent.includes('Reconnecting')`)
	say(b, "while-down-1")
	say(b, "while-down-2")
	a.args = append(a.args, "--api", "127.0.0.1:"+port) // after --api 127.0.0.1:0: the last one counts
	a.start()
	a.must(nil, "connect", b.addr)
	say(a, "after-restart")
	for _, m := range sent {
		alice.article(m)
	}
	say(b, "live-again")
	alice.article(sent[len(sent)-1])

	// Each once, in the order of the history.
	var shown []string
	alice.eval(`[...document.querySelectorAll('[role=log] article')].map(a => a.textContent)`, &shown)
	evs, err := a.history(room)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, e := range evs {
		for _, m := range sent {
			if e.Body == m {
				order = append(order, m)
			}
		}
	}
	var seen []string
	for _, txt := range shown {
		for _, m := range sent {
			if strings.Contains(txt, m) {
				seen = append(seen, m)
			}
		}
	}
	if strings.Join(seen, ",") != strings.Join(order, ",") {
		t.Fatalf("the timeline shows %v\nthe history holds %v", seen, order)
	}
	if len(order) != len(sent) {
		t.Fatalf("the history holds %d of the %d messages sent", len(order), len(sent))
	}
	alice.ok("the status is clear", `document.querySelector('.status').textContent === ''`)
	alice.screenshot("web-reconnected")
}
