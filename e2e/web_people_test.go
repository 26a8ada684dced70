package e2e

// The web app's threads, edit versions, search, avatars, presence, block
// list, typing/presence switches and DMs started from the member list
// (docs/web.md, issue 11), in real Chromium against two real daemons.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/parley-p2p/parley/api"
)

// webPair starts two daemons, Alice and Bob, logs both into the web app,
// and has Alice create a private (encrypted) room that Bob joins through
// the Invites region. It returns the daemons, browsers and the room ID.
func webPair(t *testing.T, roomName string) (a, b *daemon, alice, bob *browser, room string) {
	t.Helper()
	a = startDaemon(t, "a")
	b = startDaemon(t, "b")
	a.must(nil, "profile", "set", "--name", "Alice")
	b.must(nil, "profile", "set", "--name", "Bob")
	b.must(nil, "connect", a.addr)
	var rr struct {
		Room string `json:"room"`
	}
	a.must(&rr, "room", "create", "--name", roomName)
	a.must(nil, "room", "invite", rr.Room, b.user)
	alice, _ = login(t, a, "alice")
	bob, _ = login(t, b, "bob")
	item := bob.within(bob.role("region", "Invites", false), "listitem", "", false)
	bob.within(item, "button", "Accept", false).click()
	bob.role("link", roomName, true).click()
	alice.role("link", roomName, true).click()
	for _, br := range []*browser{alice, bob} {
		br.ok("in the room", fmt.Sprintf(`location.hash === "#room=%s"`, rr.Room))
		br.role("log", "Messages", false)
	}
	return a, b, alice, bob, rr.Room
}

// fileInputBeside is the input type=file in the parent of the element
// (the app keeps it hidden beside the button that opens it).
func (b *browser) fileInputBeside(e el) el {
	b.t.Helper()
	var out el
	b.cdp("find the file input", func(ctx context.Context) error {
		var n int
		if err := callOn(ctx, e.obj, "function(){window.__fileInput = this.parentElement.querySelector('input[type=file]'); return window.__fileInput ? 1 : 0}", &n); err != nil || n != 1 {
			return fmt.Errorf("no file input beside the button (%v)", err)
		}
		res, err := chromedp.Call(ctx, runtime.Evaluate, runtime.EvaluateParams{Expression: "window.__fileInput"})
		if err != nil {
			return err
		}
		out = el{b: b, obj: res.Result.ObjectID}
		return nil
	})
	return out
}

// TestWebThreadsVersionsSearch: a thread opened from a message, replied to
// on both sides, its replies kept out of the timeline and counted on the
// root; an edited message's versions; a search of an encrypted room whose
// hit lies pages back, found by the app and the CLI, that jumps to it.
func TestWebThreadsVersionsSearch(t *testing.T) {
	if chromiumPath() == "" {
		t.Skip("no Chromium found (install the chromium package, or set PARLEY_CHROMIUM): browser tests skipped")
	}
	a, b, alice, bob, room := webPair(t, "Picnic")

	// Threads.
	alice.send("Plan the picnic")
	bob.inArticle("Plan the picnic", "button", "Thread", false).click()
	panel := bob.role("complementary", "Thread", false)
	bob.within(panel, "article", "", false)
	bob.within(panel, "textbox", "Reply in thread", false).fill("I bring bread")
	bob.enter()
	bob.ok("Bob's reply in the thread panel", `[...document.querySelectorAll('.panel article')].some(a => a.textContent.includes('I bring bread'))`)
	alice.inArticle("Plan the picnic", "button", "1 reply", false).click()
	apanel := alice.role("complementary", "Thread", false)
	alice.ok("Alice sees Bob's reply in the thread", `[...document.querySelectorAll('.panel article')].some(a => a.textContent.includes('I bring bread') && a.textContent.includes('Bob'))`)
	alice.within(apanel, "textbox", "Reply in thread", false).fill("Great, I bring cheese")
	alice.enter()
	bob.ok("Bob sees Alice's thread reply live", `[...document.querySelectorAll('.panel article')].some(a => a.textContent.includes('I bring cheese'))`)
	bob.inArticle("Plan the picnic", "button", "2 replies", false)
	// Bob edits his reply in the panel; Alice's panel shows the new text.
	bob.within(bob.withText(panel, "article", "I bring bread"), "button", "Edit", false).click()
	bob.role("textbox", "Edit message", false).fill("I bring bread and wine")
	bob.enter()
	alice.ok("the edited thread reply", `[...document.querySelectorAll('.panel article')].some(a => a.textContent.includes('I bring bread and wine') && a.textContent.includes('(edited)'))`)
	for _, br := range []*browser{alice, bob} {
		br.ok("thread replies stay out of the timeline", `![...document.querySelectorAll('[role=log][aria-label=Messages] article')].some(a => a.textContent.includes('I bring'))`)
	}
	alice.screenshot("web-thread")
	// At phone width the panel covers the room, its composer in reach.
	alice.cdp("phone width", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 800, DeviceScaleFactor: 2, Mobile: true})
		return err
	})
	alice.ok("the thread composer is on screen", `(() => { const r = document.querySelector('.panel textarea').getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth && r.bottom <= innerHeight && r.width > 200 })()`)
	alice.screenshot("web-thread-phone")
	alice.cdp("desktop width", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
		return err
	})
	var th api.HistoryResp
	var rootID string
	alice.eval(`[...document.querySelectorAll('[role=log][aria-label=Messages] article')].find(a => a.textContent.includes('Plan the picnic')).dataset.id`, &rootID)
	b.must(&th, "history", room, "--thread", rootID)
	if len(th.Events) != 3 || th.Events[1].Body != "I bring bread and wine" || th.Events[2].Thread != rootID {
		t.Fatalf("the thread on Bob's node: %+v", th.Events)
	}

	// Edit versions.
	alice.send("Meet at noon")
	alice.inArticle("Meet at noon", "button", "Edit", false).click()
	alice.role("textbox", "Edit message", false).fill("Meet at one")
	alice.enter()
	bob.inArticle("Meet at one", "button", "Edited", false).click()
	hist := bob.role("dialog", "Edit history", false)
	bob.ok("the versions are listed", `(() => { const l = document.querySelector('dialog ol.versions'); return l && l.children.length === 2 &&
		l.children[0].textContent.includes('Meet at noon') && l.children[0].textContent.includes('Original') && l.children[1].textContent.includes('Meet at one') })()`)
	bob.screenshot("web-edit-history")
	bob.within(hist, "button", "Close", false).click()

	// Search: the hit is more than a page back in an encrypted room.
	alice.send("the NEEDLE is in the haystack")
	bob.article("NEEDLE is in the haystack")
	cl, err := api.NewClient(a.home)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 80 {
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		_, err := api.EpSend.Call(ctx, cl, api.SendReq{Room: room, Text: fmt.Sprintf("filler %d", i)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	bob.article("filler 79")
	bob.navigate(bob.origin() + "/?reload#room=" + room) // a fresh load: only the latest page is shown
	bob.article("filler 79")
	if bob.has("NEEDLE is in the haystack") {
		t.Fatal("the needle is on the first page: the search does not test paging back")
	}
	var r api.SearchResp
	b.must(&r, "search", room, "needle HAYSTACK")
	if len(r.Hits) != 1 || r.Hits[0].Event.Body != "the NEEDLE is in the haystack" {
		t.Fatalf("parley search on Bob's node: %+v", r.Hits)
	}
	b.must(&r, "search", "bread")
	if len(r.Hits) != 1 || r.Hits[0].Room != room || r.Hits[0].RoomName != "Picnic" {
		t.Fatalf("parley search of all rooms: %+v", r.Hits)
	}
	box := bob.role("searchbox", "Search messages", false)
	box.fill("needle haystack")
	bob.enter()
	results := bob.role("list", "Search results", false)
	hit := bob.within(results, "listitem", "", false)
	if s := hit.text(); !strings.Contains(s, "NEEDLE is in the haystack") || !strings.Contains(s, "Alice") {
		t.Fatalf("the search hit reads %q", s)
	}
	bob.screenshot("web-search")
	bob.within(hit, "button", "", false).click()
	bob.ok("the hit is scrolled into view", `(() => { const log = document.querySelector('[role=log][aria-label=Messages]');
		const a = [...log.querySelectorAll('article')].find(a => a.textContent.includes('NEEDLE is in the haystack'));
		if (!a) return false; const r = a.getBoundingClientRect(), l = log.getBoundingClientRect(); return r.top >= l.top && r.bottom <= l.bottom })()`)
	// A thread reply found by the search opens its thread.
	box = bob.role("searchbox", "Search messages", false)
	box.fill("cheese")
	bob.enter()
	bob.within(bob.within(bob.role("list", "Search results", false), "listitem", "", false), "button", "", false).click()
	bob.within(bob.role("complementary", "Thread", false), "textbox", "Reply in thread", false)
	// No hit: a status says so.
	box = bob.role("searchbox", "Search messages", false)
	box.fill("zebra")
	bob.enter()
	bob.ok("no hits said", `[...document.querySelectorAll('.panel [role=status]')].some(s => s.textContent.includes('No messages found'))`)
	alice.checkClean(alice.origin())
	bob.checkClean(bob.origin())
}

// TestWebPeople: a changed avatar shows in the timeline and the member
// list of the other side; presence dots; the typing and presence
// switches; blocking and unblocking from the member list and the profile;
// a DM started from the member list.
func TestWebPeople(t *testing.T) {
	if chromiumPath() == "" {
		t.Skip("no Chromium found (install the chromium package, or set PARLEY_CHROMIUM): browser tests skipped")
	}
	a, b, alice, bob, room := webPair(t, "Club")
	alice.send("Hello from Alice")
	bob.article("Hello from Alice")

	// Avatar: Alice uploads one; Bob sees it on her message.
	alice.role("button", "Profile", false).click()
	prof := alice.role("dialog", "Profile", false)
	change := alice.within(prof, "button", "Change avatar", false)
	alice.fileInputBeside(change).files(testPNG(t, 640, 480))
	alice.ok("Alice's avatar in the dialog", `(() => { const i = document.querySelector('dialog .avatar-big img'); return i && i.complete && i.naturalWidth === 256 })()`)
	var p api.ProfileResp
	a.must(&p, "profile", "get")
	if p.AvatarMedia == nil || p.AvatarMedia.Width != 256 || p.AvatarMedia.Height != 256 {
		t.Fatalf("Alice's profile after Change avatar: %+v", p)
	}
	bob.ok("Bob sees Alice's avatar on her message", `[...document.querySelectorAll('[role=log] article')].some(a => a.textContent.includes('Hello from Alice') &&
		(() => { const i = a.querySelector('.avatar img'); return i && i.complete && i.naturalWidth > 0 })())`)

	// Typing and presence switches, and the (empty) block list.
	alice.within(prof, "list", "Blocked users", false)
	typing := alice.within(prof, "switch", "Typing indicators", false)
	alice.within(prof, "switch", "Presence", false)
	alice.ok("the switches show the node's settings", `document.getElementById('sw-typing').checked && document.getElementById('sw-presence').checked`)
	alice.screenshot("web-profile")
	typing.click()
	var s api.SettingsResp
	eventually(t, 60*time.Second, "typing off on Alice's node", func() error {
		a.must(&s, "settings")
		if s.Typing || !s.Presence {
			return fmt.Errorf("settings %+v", s)
		}
		return nil
	})
	typing.click()
	eventually(t, 60*time.Second, "typing on again", func() error {
		if a.must(&s, "settings"); !s.Typing {
			return fmt.Errorf("settings %+v", s)
		}
		return nil
	})
	alice.within(prof, "button", "Close", false).click()

	// Members: presence dots, Alice online (the app set it).
	bob.role("button", "Members", false).click()
	members := bob.role("list", "Members", false)
	row := bob.itemWith(members, "Alice")
	bob.within(row, "image", "online", false) // Chromium calls role img "image"
	bob.ok("Alice's avatar in the member list", `[...document.querySelectorAll('.panel li')].some(li => li.textContent.includes('Alice') && li.querySelector('.avatar img'))`)
	bob.screenshot("web-members")

	// Alice sets her status to away: Bob's dot follows live.
	alice.role("button", "Profile", false).click()
	prof = alice.role("dialog", "Profile", false)
	alice.within(prof, "combobox", "Status", false).call(`function(){this.value = 'away'; this.dispatchEvent(new Event('change'))}`, nil)
	bob.within(bob.itemWith(bob.role("list", "Members", false), "Alice"), "image", "away", false)
	alice.within(prof, "button", "Close", false).click()
	var pr api.PresenceResp
	a.must(&pr, "presence", "get")
	if pr.Presence != "away" {
		t.Fatalf("Alice's presence after choosing away: %+v", pr)
	}

	// Block Alice: her messages leave Bob's timeline; the profile lists her;
	// Unblock there brings them back.
	bob.within(row, "button", "Block", false).click()
	bob.ok("Alice's messages hidden", `![...document.querySelectorAll('[role=log] article')].some(a => a.textContent.includes('Hello from Alice'))`)
	var bl api.BlockedResp
	b.must(&bl, "blocked")
	if len(bl.Blocked) != 1 || bl.Blocked[0] != a.user {
		t.Fatalf("blocked on Bob's node: %v", bl.Blocked)
	}
	bob.role("button", "Profile", false).click()
	bprof := bob.role("dialog", "Profile", false)
	blocked := bob.within(bprof, "list", "Blocked users", false)
	bob.within(bob.itemWith(blocked, "Alice"), "button", "Unblock", false).click()
	bob.ok("the block list empties", `document.querySelector('dialog ul.blocked').textContent.includes('No one is blocked')`)
	b.must(&bl, "blocked")
	if len(bl.Blocked) != 0 {
		t.Fatalf("still blocked: %v", bl.Blocked)
	}
	bob.within(bprof, "button", "Close", false).click()
	bob.article("Hello from Alice")

	// Room avatar: Alice sets one in Room settings; Bob's room list shows it.
	alice.role("button", "Room settings", false).click()
	rs := alice.role("dialog", "Room settings", false)
	alice.fileInputBeside(alice.within(rs, "button", "Change room avatar", false)).files(testPNG(t, 300, 200))
	alice.ok("the room's avatar in the dialog", `(() => { const i = document.querySelector('dialog .room-icon.avatar-big img'); return i && i.complete && i.naturalWidth === 200 })()`)
	var ri api.RoomInfoResp
	a.must(&ri, "room", "info", room)
	if ri.AvatarMedia == nil || ri.AvatarMedia.Width != 200 || ri.AvatarMedia.Height != 200 {
		t.Fatalf("room info after Change room avatar: %+v", ri.AvatarMedia)
	}
	alice.within(rs, "button", "Close", false).click()
	bob.ok("Bob's room list shows the room's avatar", `(() => { const i = document.querySelector('a.room-link .room-icon img'); return i && i.complete && i.naturalWidth > 0 })()`)
	bob.screenshot("web-room-avatar")

	// A DM from the member list: Bob's "Message" on Alice.
	bob.role("button", "Members", false).click()
	row = bob.itemWith(bob.role("list", "Members", false), "Alice")
	bob.within(row, "button", "Message", false).click()
	bob.role("link", "Alice", true)
	bob.ok("Bob in the DM", `document.querySelector('a.room-link.active') && document.querySelector('a.room-link.active .room-name').textContent === 'Alice'`)
	inv := alice.within(alice.role("region", "Invites", false), "listitem", "", false)
	alice.within(inv, "button", "Accept", false).click()
	alice.role("link", "Bob", true).click()
	bob.article("Alice joined") // Bob's node knows Alice's device: his next message is sealed for it
	bob.send("psst, Alice")
	alice.article("psst, Alice")
	alice.send("yes?")
	bob.article("yes?")
	alice.within(alice.role("link", "Bob", true), "image", "", false)
	alice.screenshot("web-dm")
	alice.checkClean(alice.origin())
	bob.checkClean(bob.origin())
}

// itemWith waits for a listitem of list whose text holds text (a
// listitem takes no name from its content).
func (b *browser) itemWith(list el, text string) el {
	b.t.Helper()
	return b.withText(list, "listitem", text)
}

// withText waits for an element with role below scope whose text holds
// text, and returns the last one.
func (b *browser) withText(scope el, role, text string) el {
	b.t.Helper()
	var found runtime.RemoteObjectID
	b.poll(fmt.Sprintf("%s with %q", role, text), func(ctx context.Context) error {
		items, err := queryRole(ctx, scope.obj, role, "", false)
		if err != nil {
			return err
		}
		for i := len(items) - 1; i >= 0; i-- {
			var s string
			if callOn(ctx, items[i], "function(){return this.textContent}", &s) == nil && strings.Contains(s, text) {
				found = items[i]
				return nil
			}
		}
		return fmt.Errorf("no %s holds %q", role, text)
	})
	return el{b: b, obj: found}
}

// origin is the page's origin (the daemon's API address).
func (b *browser) origin() string {
	b.t.Helper()
	var s string
	b.eval("location.origin", &s)
	return s
}

// has says whether an article of the timeline holds text now.
func (b *browser) has(text string) bool {
	b.t.Helper()
	var ok bool
	b.eval(fmt.Sprintf(`[...document.querySelectorAll('[role=log][aria-label=Messages] article')].some(a => a.textContent.includes(%q))`, text), &ok)
	return ok
}
