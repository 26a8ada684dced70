package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// Mentions and versions on the command line (cli.md "Messages").

func TestMentionsClientSide(t *testing.T) {
	home := t.TempDir()
	user := crdt.PublicKey{1}.String()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"send", validID, "hi", "--mention", ""}, `--mention: malformed user ID ""`},
		{[]string{"edit", validID, validID, "hi", "--mention", user, "--mention", "  "}, "--mention: malformed user ID"},
		{[]string{"history", validID, "--versions", "zzz"}, `malformed event ID "zzz"`},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			runCLI(t, "", append(tc.args, "--home", home)...).failsWith(t, tc.want)
		})
	}
	runCLI(t, "", "history", validID, "--versions", validID, "--limit", "3", "--home", home).usageError(t, "--versions lists one message")
	runCLI(t, "", "history", validID, "--versions", validID, "--thread", validID, "--home", home).usageError(t, "--versions lists one message")
}

func TestMentionsAgainstFakeDaemon(t *testing.T) {
	user, other := crdt.PublicKey{1}.String(), crdt.PublicKey{2}.String()
	f := startFake(t, map[string]string{
		api.EpSend.Method: `{"event":"bafysent"}`,
		api.EpEdit.Method: `{"event":"bafyedit"}`,
		api.EpHistory.Method: `{"events":[{"id":"e1","sender":"alice","type":"message","ts":1700000000000,"body":"v1","decrypted":true,"mentions":["` + user + `"]},
			{"id":"e2","sender":"alice","type":"message","ts":1700000001000,"body":"v2","decrypted":true,"replaces":"e1"}]}`,
		api.EpWatch.Method: `{"kind":"event","room":"r","event":{"id":"e1","sender":"alice","type":"message","ts":1,"body":"hi","decrypted":true},"mentions_me":true}` + "\n",
	})
	r := runCLI(t, "", "send", validID, "hi", "--mention", user, "--mention", strings.ToUpper(other), "--home", f.home)
	if r.code != 0 {
		t.Fatalf("send: %+v", r)
	}
	var sreq api.SendReq
	json.Unmarshal([]byte(f.request(api.EpSend.Method)), &sreq)
	if !slices.Equal(sreq.Mentions, []string{user, other}) {
		t.Fatalf("send request %+v", sreq)
	}
	if r := runCLI(t, "", "edit", validID, validID, "hi", "--mention", user, "--home", f.home); r.code != 0 {
		t.Fatalf("edit: %+v", r)
	}
	var ereq api.EditReq
	json.Unmarshal([]byte(f.request(api.EpEdit.Method)), &ereq)
	if !slices.Equal(ereq.Mentions, []string{user}) {
		t.Fatalf("edit request %+v", ereq)
	}
	r = runCLI(t, "", "history", validID, "--versions", validID, "--home", f.home)
	if r.code != 0 || !strings.Contains(f.request(api.EpHistory.Method), `"versions":"`+validID+`"`) ||
		!strings.Contains(r.stdout, "(mentions ") || !strings.Contains(r.stdout, "(edit of e1)") {
		t.Fatalf("history request %s, output %+v", f.request(api.EpHistory.Method), r)
	}
	r = runCLI(t, "", "watch", validID, "--home", f.home)
	if !strings.Contains(r.stdout, "(mentions you)") {
		t.Fatalf("watch output %q", r.stdout)
	}
}
