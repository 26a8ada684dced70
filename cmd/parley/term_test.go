package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
)

// hostile holds what a terminal must never receive raw from other people:
// escape sequences (clear the screen, set the title, move the cursor up),
// a C1 CSI, a bell, a carriage return and bidi overrides.
var hostile = []string{"\x1b", "\a", "\r", "\u009b", "\u202e", "\u2066", "\x7f"}

func checkSafe(t *testing.T, what, out string) {
	t.Helper()
	for _, h := range hostile {
		if strings.Contains(out, h) {
			t.Errorf("%s prints %q raw:\n%q", what, h, out)
		}
	}
}

// Human output escapes control characters in messages, display names,
// room names and error messages; --json prints the daemon's answer
// exactly.
func TestTerminalEscaping(t *testing.T) {
	history := `{"events":[
		{"id":"e1","sender":"u1","type":"message","ts":1700000000000,"body":"hi\u001b[2J\u001b]0;pwned\u0007 \u009b31m evil\u202eexe.txt\r2026 fake line","decrypted":true,"reactions":{"\u001b[1A":["u1"]}},
		{"id":"e2","sender":"u1","type":"room.topic","ts":1700000001000,"body":"topic\u001b[H\u2066","decrypted":true}],
		"names":{"u1":"Mallory\u001b[1A\u202e"}}`
	f := startFake(t, map[string]string{
		api.EpHistory.Method:  history,
		api.EpRoomList.Method: `{"rooms":[{"room":"r1","name":"general\u001b]0;title\u0007\nr2  fake  join","membership":"join"}]}`,
		api.EpWatch.Method:    `{"kind":"event","room":"r","event":{"id":"e3","sender":"s","type":"message","ts":1,"body":"yo\u001b[2J\u009b","decrypted":true}}` + "\n",
		api.EpSend.Method:     `{"event":"\u001b[2J"}`,
	})
	for _, args := range [][]string{{"history", validID}, {"room", "list"}, {"watch"}, {"send", validID, "x"}} {
		r := runCLI(t, "", append(args, "--home", f.home)...)
		checkSafe(t, args[0], r.stdout)
		checkSafe(t, args[0]+" (stderr)", r.stderr)
		if args[0] != "send" && !strings.Contains(r.stdout, `\x1b`) {
			t.Errorf("%s shows no visible escape:\n%s", args[0], r.stdout)
		}
	}
	r := runCLI(t, "", "history", validID, "--home", f.home)
	for _, want := range []string{`Mallory\x1b[1A\u202e: hi\x1b[2J\x1b]0;pwned\x07 \x9b31m evil\u202eexe.txt\x0d2026 fake line`, `changed the topic to "topic\x1b[H\u2066"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("history lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCLI(t, "", "room", "list", "--home", f.home); strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `\x0ar2  fake`) {
		t.Errorf("a room name with a newline spans lines:\n%s", r.stdout)
	}
	// --json: exactly the answer, on one line.
	for method, args := range map[string][]string{api.EpHistory.Method: {"history", validID}, api.EpRoomList.Method: {"room", "list"}} {
		r := runCLI(t, "", append(args, "--json", "--home", f.home)...)
		var want bytes.Buffer
		json.Compact(&want, []byte(f.answers[method]))
		if r.code != 0 || r.stdout != want.String()+"\n" {
			t.Errorf("%s --json changed the answer:\n got %q\nwant %q", method, r.stdout, want.String()+"\n")
		}
	}
	// An error that quotes other people's text is escaped too.
	bad := startFake(t, map[string]string{api.EpResolve.Method: "!" + `{"error":"node: no room named \"gen\u001b[2J\u202e\"","kind":"not_found"}`})
	r = runCLI(t, "", "room", "info", "gen\x1b[2J\u202e", "--home", bad.home)
	checkSafe(t, "an error", r.stderr)
	r.failsWith(t, `no room named "gen\x1b[2J\u202e"`)
}

func TestEscapeTerm(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcödé, emoji 🐶": "plain text, ünïcödé, emoji 🐶",
		"a\nb\tc":                      "a\nb\tc",
		"\x1b[31mred":                  `\x1b[31mred`,
		"\u202eevil":                   `\u202eevil`,
		"bad \xff byte":                `bad \xff byte`,
		"real \uFFFD stays":            "real \uFFFD stays",
		"\u0085 next line":             `\x85 next line`,
	} {
		if got := escapeTerm(in, true); got != want {
			t.Errorf("escapeTerm(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oneLineTerm("a\nb"); got != `a\x0ab` {
		t.Errorf("oneLineTerm keeps a newline: %q", got)
	}
	// A rune split between two writes is not broken.
	var b bytes.Buffer
	tw := &termWriter{w: &b, raw: func() bool { return false }}
	s := "x🐶\u202e"
	for i := range len(s) {
		tw.Write([]byte{s[i]})
	}
	tw.flush()
	if b.String() != `x🐶\u202e` {
		t.Errorf("split writes: %q", b.String())
	}
}

// Names and short references go to the daemon to resolve; the command then
// uses the IDs it answers.
func TestNamesResolvedByDaemon(t *testing.T) {
	f := startFake(t, map[string]string{
		api.EpResolve.Method:    `{"room":"` + validID + `","events":["` + validID + `"],"users":["` + validUser + `"]}`,
		api.EpReact.Method:      `{"event":"ev"}`,
		api.EpRoomInvite.Method: `{"room":"r","event":"ev"}`,
	})
	r := runCLI(t, "", "react", "general", "gq3x5ab2", "+1", "--home", f.home)
	if r.code != 0 {
		t.Fatalf("react by name: exit %d %s", r.code, r.stderr)
	}
	var req api.ReactReq
	if json.Unmarshal([]byte(f.request(api.EpReact.Method)), &req); req.Room != validID || req.Event != validID {
		t.Errorf("react request %q", f.request(api.EpReact.Method))
	}
	var rr api.ResolveReq
	if json.Unmarshal([]byte(f.request(api.EpResolve.Method)), &rr); rr.Room != validID || len(rr.Events) != 1 || rr.Events[0] != "gq3x5ab2" {
		t.Errorf("resolve request %q", f.request(api.EpResolve.Method))
	}
	if r := runCLI(t, "", "room", "invite", "general", "Bob", "--home", f.home); r.code != 0 || !strings.Contains(f.request(api.EpRoomInvite.Method), validUser) {
		t.Errorf("invite by name: exit %d %s; request %q", r.code, r.stderr, f.request(api.EpRoomInvite.Method))
	}
	// A negative number is a value, not a flag.
	f.answers[api.EpRoomRole.Method] = `{"room":"r","event":"ev"}`
	if r := runCLI(t, "", "room", "role", validID, validUser, "-5", "--home", f.home); r.code != 0 || !strings.Contains(f.request(api.EpRoomRole.Method), "-5") {
		t.Errorf("room role -5: exit %d %s; request %q", r.code, r.stderr, f.request(api.EpRoomRole.Method))
	}
}

// FuzzEscapeTerm: whatever the text, the escaped form is valid UTF-8 with
// no control or bidi character left but the newlines and tabs kept on
// request.
func FuzzEscapeTerm(f *testing.F) {
	for _, s := range []string{"", "hi", "\x1b[2J", "\u202e", "\xff\xfe", "a\nb\tc\r", "\u0085\u009b", "🐶\uFFFD"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, keep := range []bool{true, false} {
			out := escapeTerm(s, keep)
			if !utf8.ValidString(out) {
				t.Fatalf("escapeTerm(%q, %v) = %q: not UTF-8", s, keep, out)
			}
			for _, r := range out {
				if unsafeRune(r, keep) {
					t.Fatalf("escapeTerm(%q, %v) = %q keeps %U", s, keep, out, r)
				}
			}
			if needsEscape(s, keep) == (out == s) {
				t.Fatalf("escapeTerm(%q, %v) = %q: needsEscape disagrees", s, keep, out)
			}
		}
	})
}
