package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// The content commands (edit, react, unreact, read, typing, presence,
// settings, send-file) and the new flags of send and history.

func TestContentUsageErrors(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"edit", validID, validID}, "missing argument"},
		{[]string{"edit", validID, validID, "new", "text"}, "quote a message"},
		{[]string{"react", validID, validID}, "missing argument"},
		{[]string{"unreact", validID}, "missing argument"},
		{[]string{"read", validID}, "missing argument"},
		{[]string{"typing"}, "missing argument"},
		{[]string{"typing", validID, "maybe"}, `bad typing state "maybe"`},
		{[]string{"presence"}, "missing argument"},
		{[]string{"presence", "busy"}, `bad presence "busy"`},
		{[]string{"presence", "away", "now"}, `unexpected argument "now"`},
		{[]string{"settings", "--typing", "sometimes"}, `bad --typing "sometimes"`},
		{[]string{"settings", "extra"}, `unexpected argument "extra"`},
		{[]string{"send-file", validID}, "missing argument"},
		{[]string{"send", validID, "hi", "--reply-to"}, "flag needs an argument: --reply-to"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			r := runCLI(t, "", append([]string{"--home", home}, tc.args...)...)
			r.usageError(t, tc.want)
		})
	}
}

func TestContentClientSideValidation(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"edit", validID, "zzz", "x"}, `malformed event ID "zzz"`},
		{[]string{"edit", validID, validID, " "}, "empty message"},
		{[]string{"edit", validID, validID, strings.Repeat("x", maxMessage+1)}, "message too long"},
		{[]string{"unreact", validID, "zzz", "+1"}, "malformed event ID"},
		{[]string{"read", validID, "zzz"}, "malformed event ID"},
		{[]string{"send", validID, "hi", "--reply-to", "zzz"}, `malformed event ID "zzz"`},
		{[]string{"send", validID, "hi", "--thread", "zzz"}, `malformed event ID "zzz"`},
		{[]string{"history", validID, "--thread", "zzz"}, `malformed event ID "zzz"`},
		{[]string{"send-file", validID, "/nonexistent/photo.png"}, "cannot read"},
		{[]string{"send-file", validID, home}, "is not a regular file"},
	} {
		t.Run(strings.Join(tc.args[:1], "_"), func(t *testing.T) {
			r := runCLI(t, "", append(tc.args, "--home", home)...)
			r.failsWith(t, tc.want)
		})
	}
}

func TestContentAgainstFakeDaemon(t *testing.T) {
	f := startFake(t, map[string]string{
		api.EpSend.Method:     `{"event":"bafysent"}`,
		api.EpEdit.Method:     `{"event":"bafyedit"}`,
		api.EpUnreact.Method:  `{"event":"bafyun"}`,
		api.EpRead.Method:     `{}`,
		api.EpTyping.Method:   `{}`,
		api.EpPresence.Method: `{"user":"u","presence":"away","last_active_ms":1700000000000}`,
		api.EpSettings.Method: `{"typing":false,"presence":true}`,
		api.EpHistory.Method: `{"events":[{"id":"e1","sender":"alice","type":"message","ts":1700000000000,"body":"hello",
			"edited":true,"reply_to":"e0","reactions":{"👍":["a","b"]},"decrypted":true}]}`,
		api.EpWatch.Method: "{\"kind\":\"typing\",\"room\":\"r\",\"user\":\"bob-user\",\"typing\":true}\n" +
			"{\"kind\":\"presence\",\"room\":\"r\",\"user\":\"bob-user\",\"presence\":\"away\",\"last_active_ms\":1}\n" +
			"{\"kind\":\"receipt\",\"room\":\"r\",\"user\":\"bob-user\",\"read\":\"e1\"}\n",
	})
	ok := func(r result, what string) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d stderr %q", what, r.code, r.stderr)
		}
	}
	ok(runCLI(t, "", "send", validID, "**hi**", "--markdown", "--reply-to", validID, "--thread", validID, "--home", f.home), "send")
	var sreq api.SendReq
	json.Unmarshal([]byte(f.request(api.EpSend.Method)), &sreq)
	if !sreq.Markdown || sreq.ReplyTo != validID || sreq.Thread != validID || sreq.Text != "**hi**" {
		t.Fatalf("send request %+v", sreq)
	}
	ok(runCLI(t, "new text\n", "edit", validID, validID, "-", "--home", f.home), "edit")
	var ereq api.EditReq
	json.Unmarshal([]byte(f.request(api.EpEdit.Method)), &ereq)
	if ereq.Text != "new text" || ereq.Event != validID {
		t.Fatalf("edit request %+v", ereq)
	}
	ok(runCLI(t, "", "unreact", validID, validID, "👍", "--home", f.home), "unreact")
	var rreq api.ReactReq
	json.Unmarshal([]byte(f.request(api.EpUnreact.Method)), &rreq)
	if rreq.Key != "👍" {
		t.Fatalf("unreact request %+v", rreq)
	}
	for _, args := range [][]string{{"typing", validID, "--stop"}, {"typing", validID, "off"}} {
		ok(runCLI(t, "", append(args, "--home", f.home)...), "typing")
		var treq api.TypingReq
		json.Unmarshal([]byte(f.request(api.EpTyping.Method)), &treq)
		if treq.On || treq.Room != validID {
			t.Fatalf("%v: typing request %+v", args, treq)
		}
	}
	ok(runCLI(t, "", "typing", validID, "--home", f.home), "typing")
	if !strings.Contains(f.request(api.EpTyping.Method), `"on":true`) {
		t.Fatalf("typing request %s", f.request(api.EpTyping.Method))
	}
	r := runCLI(t, "", "settings", "--typing", "off", "--home", f.home)
	ok(r, "settings")
	if !strings.Contains(f.request(api.EpSettings.Method), `"typing":false`) || strings.Contains(f.request(api.EpSettings.Method), "presence") || !strings.Contains(r.stdout, "typing off") {
		t.Fatalf("settings request %s, output %q", f.request(api.EpSettings.Method), r.stdout)
	}
	r = runCLI(t, "", "history", validID, "--thread", validID, "--home", f.home)
	ok(r, "history")
	if !strings.Contains(f.request(api.EpHistory.Method), `"thread":"`+validID+`"`) || !strings.Contains(r.stdout, "(edited)") || !strings.Contains(r.stdout, "[👍 2]") {
		t.Fatalf("history request %s, output %q", f.request(api.EpHistory.Method), r.stdout)
	}
	r = runCLI(t, "", "watch", validID, "--home", f.home)
	for _, want := range []string{"is typing", "is away", "read up to e1"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("watch output %q lacks %q", r.stdout, want)
		}
	}
}
