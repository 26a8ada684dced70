package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// validID is a well-formed room or event ID that no daemon knows.
var validID = crdt.IDOf([]byte("cli test")).String()

// validUser is a well-formed user ID.
var validUser = crdt.PublicKey{1, 2, 3}.String()

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// failsWith checks exit 1 with exactly one "parley: " line containing want and no stdout.
func (r result) failsWith(t *testing.T, want string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "parley: ") || strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Fatalf("stderr is not one 'parley: ' line: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr %q does not contain %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Fatalf("stdout not empty on failure: %q", r.stdout)
	}
}

func (r result) usageError(t *testing.T, want string) {
	t.Helper()
	if r.code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	first, rest, _ := strings.Cut(r.stderr, "\n")
	if !strings.HasPrefix(first, "parley: ") || !strings.Contains(first, want) {
		t.Fatalf("first stderr line %q: want 'parley: ...%s...'", first, want)
	}
	if !strings.Contains(rest, "usage: parley") && !strings.Contains(first, "unknown command") {
		t.Fatalf("no usage text after the error line:\n%s", r.stderr)
	}
}

func TestParseArgsInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		pos   []string
		limit int
		json  bool
		via   []string
	}{
		{args: []string{"ROOM", "--limit", "5", "--json"}, pos: []string{"ROOM"}, limit: 5, json: true},
		{args: []string{"--json", "ROOM", "--limit=7"}, pos: []string{"ROOM"}, limit: 7, json: true},
		{args: []string{"-limit", "3", "A", "B"}, pos: []string{"A", "B"}, limit: 3},
		{args: []string{"A", "--via", "x", "B", "--via=y"}, pos: []string{"A", "B"}, via: []string{"x", "y"}},
		{args: []string{"A", "--", "--limit", "-"}, pos: []string{"A", "--limit", "-"}},
		{args: []string{"A", "-", "--json=false"}, pos: []string{"A", "-"}},
		{args: nil, pos: nil},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		limit := fs.Int("limit", 0, "")
		js := fs.Bool("json", false, "")
		var via multiFlag
		fs.Var(&via, "via", "")
		pos, err := parseArgs(fs, tc.args, false)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(pos, tc.pos) || *limit != tc.limit || *js != tc.json || !reflect.DeepEqual([]string(via), tc.via) {
			t.Errorf("%q: pos %q limit %d json %v via %q; want %q %d %v %q", tc.args, pos, *limit, *js, via, tc.pos, tc.limit, tc.json, tc.via)
		}
	}
}

func TestParseArgsStop(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", "", "")
	rest, err := parseArgs(fs, []string{"--home", "H", "room", "create", "--home", "X"}, true)
	if err != nil || *home != "H" || !reflect.DeepEqual(rest, []string{"room", "create", "--home", "X"}) {
		t.Fatalf("rest %q home %q err %v", rest, *home, err)
	}
}

func TestUsageErrors(t *testing.T) {
	home := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"room"}, "missing room subcommand"},
		{[]string{"room", "frobnicate"}, `unknown command "room frobnicate"`},
		{[]string{"--bogus", "status"}, "flag provided but not defined: --bogus"},
		{[]string{"status", "--bogus"}, "flag provided but not defined: --bogus"},
		{[]string{"status", "extra"}, `unexpected argument "extra"`},
		{[]string{"send", validID}, "missing argument"},
		{[]string{"send", validID, "hello", "world"}, "quote a message"},
		{[]string{"history"}, "missing argument"},
		{[]string{"history", validID, "--limit", "many"}, `invalid value "many" for flag --limit`},
		{[]string{"history", validID, "--limit"}, "flag needs an argument: --limit"},
		{[]string{"history", validID, "--limit", "-3"}, "bad --limit"},
		{[]string{"room", "create", "--history", "forever"}, `bad --history "forever"`},
		{[]string{"room", "join"}, "missing argument"},
		{[]string{"connect"}, "missing argument"},
		{[]string{"daemon", "--log-level", "loud"}, "bad --log-level"},
		{[]string{"help", "frobnicate"}, "unknown command"},
		{[]string{"room", "invite", validID}, "missing argument"},
		{[]string{"room", "leave"}, "missing argument"},
		{[]string{"room", "kick", validID}, "missing argument"},
		{[]string{"room", "kick", validID, validUser, "--reason"}, "flag needs an argument: --reason"},
		{[]string{"room", "ban", validID, validUser, "spamming", "links"}, "quote a value"},
		{[]string{"room", "unban", validID, validUser, "extra"}, `unexpected argument "extra"`},
		{[]string{"room", "role", validID, validUser}, "missing argument"},
		{[]string{"room", "role", validID, validUser, "overlord"}, `bad role "overlord"`},
		{[]string{"room", "role", validID, validUser, "5.5"}, `bad role "5.5"`},
		{[]string{"room", "set", validID}, "nothing to change"},
		{[]string{"room", "set", validID, "--name", "My", "Room"}, "quote a value"},
		{[]string{"room", "set", "--topic", "t"}, "missing argument"},
		{[]string{"invites", "extra"}, `unexpected argument "extra"`},
		{[]string{"invites", "--bogus"}, "flag provided but not defined: --bogus"},
		{[]string{"invites", "policy", "sometimes"}, `bad policy "sometimes"`},
		{[]string{"invites", "policy", "nobody", "anyone"}, `unexpected argument "anyone"`},
		{[]string{"dm"}, "missing argument"},
		{[]string{"profile"}, "missing profile subcommand"},
		{[]string{"profile", "frobnicate"}, `unknown command "profile frobnicate"`},
		{[]string{"profile", "set"}, "nothing to change"},
		{[]string{"profile", "set", "--name", "Bob", "Smith"}, "quote a value"},
		{[]string{"profile", "get", validUser, validUser}, "unexpected argument"},
		{[]string{"block"}, "missing argument"},
		{[]string{"unblock", validUser, validUser}, "unexpected argument"},
		{[]string{"blocked", validUser}, "unexpected argument"},
		{[]string{"redact", validID}, "missing argument"},
		{[]string{"redact", validID, validID, "--reason", "a", "b"}, "quote a value"},
		{[]string{"help", "profile", "frobnicate"}, "unknown command"},
		{[]string{"search"}, "missing argument"},
		{[]string{"search", validID, "two", "words"}, "quote a search"},
		{[]string{"search", "x", "--limit", "500"}, "bad --limit"},
	} {
		t.Run(strings.Join(tc.args, "_"), func(t *testing.T) {
			r := runCLI(t, "", append([]string{"--home", home}, tc.args...)...)
			r.usageError(t, tc.want)
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"help", "room"}, {"room", "--help"}, {"help", "send"}, {"history", "--help"}, {"help", "room", "join"},
		{"help", "profile"}, {"profile", "--help"}, {"help", "invites", "policy"}, {"invites", "--help"}, {"invites", "policy", "-h"}, {"room", "set", "--help"}, {"help", "redact"}} {
		r := runCLI(t, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: parley") || r.stderr != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
	r := runCLI(t, "", "help", "room", "join")
	if !strings.Contains(r.stdout, "--via MULTIADDR") {
		t.Errorf("help room join does not describe --via:\n%s", r.stdout)
	}
	r = runCLI(t, "", "help", "room", "set")
	if !strings.Contains(r.stdout, "--avatar FILE") || !strings.Contains(r.stdout, "media store") {
		t.Errorf("help room set does not describe --avatar:\n%s", r.stdout)
	}
	r = runCLI(t, "", "help", "profile")
	if !strings.Contains(r.stdout, "profile set") || !strings.Contains(r.stdout, "profile get") || strings.Contains(r.stdout, "room join") {
		t.Errorf("help profile does not list just the profile commands:\n%s", r.stdout)
	}
}

// Bad input fails with exit 1 and one line before any daemon is contacted:
// the home has no daemon, so reaching it would say "no daemon running".
func TestClientSideValidation(t *testing.T) {
	home := t.TempDir()
	big := strings.Repeat("x", maxMessage+1)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"send", validID, ""}, "parley: empty message"},
		{"", []string{"send", validID, "  \n\t"}, "parley: empty message"},
		{"\n", []string{"send", validID, "-"}, "parley: empty message"},
		{big, []string{"send", validID, "-"}, "message too long: 60001 bytes, the limit is 60000"},
		{"", []string{"send", validID, big}, "message too long"},
		{"", []string{"send", validID, "\xff\xfe"}, "not valid UTF-8"},
		{"", []string{"history", validID, "--before", "zzz"}, `malformed event ID "zzz"`},
		{"", []string{"room", "join", validID, "--via", "/ip4/1.2.3.4/tcp/notaport"}, "malformed multiaddr"},
		{"", []string{"room", "join", validID, "--via", "/ip4/1.2.3.4/tcp/4001"}, "no /p2p/PEER_ID part"},
		{"", []string{"connect", "not-a-multiaddr"}, `malformed multiaddr "not-a-multiaddr"`},
		{"", []string{"connect", "/ip4/999.0.0.1/tcp/1"}, "malformed multiaddr"},
		{"", []string{"disconnect", "nobody"}, `malformed peer ID "nobody"`},
		{"", []string{"daemon", "--listen", "/nope"}, "malformed multiaddr"},
		{"", []string{"daemon", "--bootstrap", "/ip4/127.0.0.1/tcp/1"}, "no /p2p/PEER_ID part"},
		{"", []string{"daemon", "--api", "4080"}, "bad --api address"},
		{"", []string{"daemon", "--stun", "3478"}, "bad --stun address"},
		{"", []string{"daemon", "--turn", "--no-stun", "--api", "127.0.0.1:0"}, "--turn and --no-stun do not go together"},
		{"", []string{"daemon", "--turn", "--turn-ports", "60000-50000", "--api", "127.0.0.1:0"}, `turn ports "60000-50000"`},
		{"", []string{"room", "ban", validID, "", "--reason", "r"}, `malformed user ID ""`},
		{"", []string{"room", "info", ""}, `malformed room ID ""`},
		{"", []string{"redact", validID, "bafyrei"}, `malformed event ID "bafyrei"`},
		{"", []string{"redact", validID, "abcdefg"}, `malformed event ID "abcdefg"`},
		{"", []string{"redact", validID, "abcdefgh!"}, `malformed event ID "abcdefgh!"`},
		{"", []string{"room", "set", validID, "--avatar", "/nonexistent/a.png"}, "read the avatar"},
		{"", []string{"room", "set", validID, "--avatar", avatarFile(t, "big.png", pngOf(maxAvatar+1))}, "larger than 16 MiB"},
		{"", []string{"room", "set", validID, "--avatar", avatarFile(t, "text.png", []byte("not an image"))}, "is not an image"},
		{"", []string{"room", "set", validID, "--avatar", avatarFile(t, "empty.png", nil)}, "is empty"},
		{"", []string{"room", "set", validID, "--avatar", ""}, "empty --avatar"},
		{"", []string{"profile", "set", "--avatar", avatarFile(t, "big2.png", pngOf(maxAvatar+1))}, "larger than 16 MiB"},
		{"", []string{"profile", "set", "--name", "x", "--avatar", "/nonexistent/a.png"}, "read the avatar"},
		{"", []string{"redact", validID, "zzz"}, `malformed event ID "zzz"`},
	} {
		t.Run(strings.Join(tc.args[:1], "_"), func(t *testing.T) {
			r := runCLI(t, tc.stdin, append(tc.args, "--home", home)...)
			r.failsWith(t, tc.want)
		})
	}
}

func TestNoDaemon(t *testing.T) {
	home := t.TempDir()
	want := "parley: no daemon running for " + home + " (start one with: parley daemon)\n"
	for _, args := range [][]string{
		{"status"}, {"id", "--json"}, {"peers"}, {"room", "list"},
		{"send", validID, "hello"}, {"history", validID, "--limit", "5", "--json"}, {"watch"},
		{"invites"}, {"invites", "policy"}, {"invites", "policy", "nobody", "--json"}, {"blocked"}, {"dm", validUser},
		{"room", "kick", validID, validUser, "--reason", "spam"}, {"profile", "get"}, {"profile", "set", "--name", "Bob"},
		{"redact", validID, validID},
	} {
		r := runCLI(t, "", append([]string{"--home", home}, args...)...)
		if r.code != 1 || r.stderr != want || r.stdout != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q; want exit 1 and %q", args, r.code, r.stdout, r.stderr, want)
		}
	}
	// PARLEY_HOME stands in for --home.
	t.Setenv("PARLEY_HOME", home)
	if r := runCLI(t, "", "status"); r.code != 1 || r.stderr != want {
		t.Errorf("with PARLEY_HOME: exit %d stderr %q", r.code, r.stderr)
	}
	// A stale api file (daemon killed) also means no daemon.
	writeAPIFile(t, home, "http://127.0.0.1:1", "tok")
	if r := runCLI(t, "", "status"); r.code != 1 || r.stderr != want {
		t.Errorf("stale api file: exit %d stderr %q", r.code, r.stderr)
	}
}

// pngOf is n bytes that start like a PNG image.
func pngOf(n int) []byte {
	b := make([]byte, n)
	copy(b, "\x89PNG\r\n\x1a\n")
	return b
}

// avatarFile writes b to a file named name and returns its path.
func avatarFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeAPIFile(t *testing.T, home, url, token string) {
	t.Helper()
	b, _ := json.Marshal(api.Info{URL: url, Token: token})
	if err := os.WriteFile(filepath.Join(home, api.InfoFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeDaemon answers API calls with canned JSON and records the requests.
type fakeDaemon struct {
	home     string
	answers  map[string]string // method -> body (status 200)
	mu       sync.Mutex
	requests map[string]string // method -> request body
}

func (f *fakeDaemon) request(method string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[method]
}

func startFake(t *testing.T, answers map[string]string) *fakeDaemon {
	f := &fakeDaemon{home: t.TempDir(), answers: answers, requests: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimPrefix(r.URL.Path, "/v1/")
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.requests[method] = string(b)
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":"missing or wrong API token","kind":"permission"}`)
			return
		}
		a, ok := f.answers[method]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"node: unknown room","kind":"not_found"}`)
			return
		}
		if body, ok := strings.CutPrefix(a, "!"); ok { // an error answer
			w.WriteHeader(http.StatusBadRequest)
			a = body
		}
		io.WriteString(w, a)
	}))
	t.Cleanup(srv.Close)
	writeAPIFile(t, f.home, srv.URL, "secret")
	return f
}

func TestAgainstFakeDaemon(t *testing.T) {
	history := `{"events": [
		{"id": "e1", "sender": "alice-user-id-0123456789", "type": "message", "ts": 1700000000000, "body": "hi there", "decrypted": true, "extra": 1},
		{"id": "e2", "sender": "bob", "type": "member", "ts": 1700000001000, "membership": "join", "decrypted": true}
	]}`
	f := startFake(t, map[string]string{
		api.EpHistory.Method: history,
		api.EpSend.Method:    `{"event":"bafyevent"}`,
		api.EpStatus.Method:  `{"peers":2,"rooms":1,"syncing":[],"store_bytes":2048}`,
		api.EpWatch.Method:   "{\"kind\":\"event\",\"room\":\"r\",\"event\":{\"id\":\"e3\",\"sender\":\"s\",\"type\":\"message\",\"ts\":1,\"body\":\"yo\",\"decrypted\":true}}\n{\"kind\":\"event\",\"room\":\"r\"}\n",
	})

	// Flags after the positional argument reach the request; --json prints
	// the daemon's answer as is (unknown keys kept), on one line.
	r := runCLI(t, "", "history", validID, "--limit", "5", "--json", "--home", f.home)
	if r.code != 0 {
		t.Fatalf("history: exit %d: %s", r.code, r.stderr)
	}
	var req api.HistoryReq
	if err := json.Unmarshal([]byte(f.request(api.EpHistory.Method)), &req); err != nil || req.Room != validID || req.Limit != 5 {
		t.Fatalf("history request %q", f.request(api.EpHistory.Method))
	}
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"extra":1`) {
		t.Fatalf("history --json output is not the answer on one line: %q", r.stdout)
	}

	r = runCLI(t, "", "--home", f.home, "history", validID)
	if r.code != 0 || !strings.Contains(r.stdout, "hi there") || !strings.Contains(r.stdout, "* bob join") {
		t.Fatalf("history (human): exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	// send reads stdin for "-" and drops the final newline.
	r = runCLI(t, "line one\nline two\n", "send", "--home", f.home, validID, "-")
	if r.code != 0 || r.stdout != "bafyevent\n" {
		t.Fatalf("send: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	var sreq api.SendReq
	json.Unmarshal([]byte(f.request(api.EpSend.Method)), &sreq)
	if sreq.Text != "line one\nline two" || sreq.Room != validID {
		t.Fatalf("send request %+v", sreq)
	}

	r = runCLI(t, "", "status", "--home", f.home)
	if r.code != 0 || !strings.Contains(r.stdout, "peers    2") || !strings.Contains(r.stdout, "2.0 KiB") {
		t.Fatalf("status: exit %d stdout %q", r.code, r.stdout)
	}

	// Errors from the daemon become one "parley: " line without the package prefix.
	r = runCLI(t, "", "room", "info", validID, "--home", f.home)
	r.failsWith(t, "parley: unknown room")

	// watch prints one object per line and reports the end of the stream.
	r = runCLI(t, "", "watch", "--json", "--home", f.home)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !json.Valid([]byte(lines[0])) || !strings.Contains(r.stderr, "ended the stream") || r.code != 1 {
		t.Fatalf("watch: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestWrongToken(t *testing.T) {
	f := startFake(t, map[string]string{api.EpStatus.Method: `{}`})
	writeAPIFile(t, f.home, func() string {
		b, _ := os.ReadFile(filepath.Join(f.home, api.InfoFile))
		var info api.Info
		json.Unmarshal(b, &info)
		return info.URL
	}(), "wrong")
	runCLI(t, "", "status", "--home", f.home).failsWith(t, "parley: missing or wrong API token")
}

func TestGovernanceAgainstFakeDaemon(t *testing.T) {
	moderator := crdt.PublicKey{9}.String()
	f := startFake(t, map[string]string{
		api.EpRoomInvite.Method:    `{"event":"ev-invite"}`,
		api.EpRoomKick.Method:      `{"event":"ev-kick"}`,
		api.EpRoomBan.Method:       `{"event":"ev-ban"}`,
		api.EpRoomRole.Method:      `{"event":"ev-role"}`,
		api.EpRoomSet.Method:       `{"event":"ev-set"}`,
		api.EpRedact.Method:        `{"event":"ev-redact"}`,
		api.EpDM.Method:            `{"room":"dm-room"}`,
		api.EpInvites.Method:       `{"invites":[{"room":"r1","inviter":"alice","name":"Book club"}]}`,
		api.EpInvitesPolicy.Method: `{"policy":"nobody"}`,
		api.EpProfileSet.Method:    `{"user":"me","display_name":"Bob","avatar":""}`,
		api.EpProfileGet.Method:    `{"user":"me","display_name":"Bob","avatar":"bafyavatar"}`,
		api.EpBlock.Method:         `{"blocked":["carol"]}`,
		api.EpBlocked.Method:       `{"blocked":[]}`,
		api.EpRoomInfo.Method: `{"room":"r","name":"Book club","topic":"","avatar":"bafyav","join_rule":"private","history":"shared",
			"members":[{"user":"alice","membership":"join","role":"creator","power":9223372036854775807,"display_name":"Alice"},
			{"user":"` + moderator + `","membership":"join","role":"moderator","power":50,"display_name":""}],
			"sync":{"events":5,"heads":["h"],"missing":0,"pending":0}}`,
		api.EpHistory.Method: `{"events":[
			{"id":"e1","sender":"alice","type":"message","ts":1700000000000,"redacted":true,"decrypted":true},
			{"id":"e2","sender":"alice","type":"redact","ts":1700000001000,"redacts":"e1","decrypted":true},
			{"id":"e3","sender":"alice","type":"message","ts":1700000002000,"body":"still here","decrypted":true},
			{"id":"e4","sender":"alice","type":"room.topic","ts":1700000003000,"decrypted":true}]}`,
	})
	ok := func(r result, what string) {
		t.Helper()
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%s: exit %d stdout %q stderr %q", what, r.code, r.stdout, r.stderr)
		}
	}
	sent := func(method string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(f.request(method)), v); err != nil {
			t.Fatalf("%s request %q: %v", method, f.request(method), err)
		}
	}

	// User IDs are sent in their canonical (lower-case) form; flags may
	// follow the positional arguments.
	r := runCLI(t, "", "room", "kick", validID, strings.ToUpper(moderator), "--reason", "too loud", "--home", f.home)
	ok(r, "room kick")
	if !strings.Contains(r.stdout, "kicked "+moderator) || !strings.Contains(r.stdout, "ev-kick") {
		t.Errorf("room kick output %q", r.stdout)
	}
	var ur api.RoomUserReq
	sent(api.EpRoomKick.Method, &ur)
	if ur != (api.RoomUserReq{Room: validID, User: moderator, Reason: "too loud"}) {
		t.Errorf("room kick request %+v", ur)
	}
	r = runCLI(t, "", "--home", f.home, "room", "ban", validID, moderator, "--json")
	ok(r, "room ban")
	if r.stdout != `{"event":"ev-ban"}`+"\n" {
		t.Errorf("room ban --json output %q", r.stdout)
	}
	ok(runCLI(t, "", "room", "invite", validID, moderator, "--home", f.home), "room invite")
	ur = api.RoomUserReq{}
	sent(api.EpRoomInvite.Method, &ur)
	if ur != (api.RoomUserReq{Room: validID, User: moderator}) {
		t.Errorf("room invite request %+v", ur)
	}

	for role, want := range map[string]string{"Moderator": "moderator", "+50": "50", "-1": "-1", "admin": "admin"} {
		// "--" ends the flags, so that a negative level is not one.
		ok(runCLI(t, "", "room", "role", validID, moderator, "--home", f.home, "--", role), "room role "+role)
		var rr api.RoleReq
		sent(api.EpRoomRole.Method, &rr)
		if rr.Role != want || rr.User != moderator || rr.Room != validID {
			t.Errorf("room role %s: request %+v, want role %q", role, rr, want)
		}
	}

	// room set sends only the fields given; --name "" clears the name.
	png := pngOf(1000)
	avatarPath := avatarFile(t, "a.png", png)
	ok(runCLI(t, "", "room", "set", validID, "--name", "", "--avatar", avatarPath, "--home", f.home), "room set")
	var raw map[string]json.RawMessage
	sent(api.EpRoomSet.Method, &raw)
	var set api.RoomSetReq
	sent(api.EpRoomSet.Method, &set)
	if _, hasTopic := raw["topic"]; hasTopic || set.Name == nil || *set.Name != "" || set.Avatar != nil || set.AvatarPath != avatarPath {
		t.Errorf("room set request %s", f.request(api.EpRoomSet.Method))
	}
	ok(runCLI(t, "", "room", "set", validID, "--topic", "new topic", "--home", f.home), "room set --topic")
	raw = nil
	sent(api.EpRoomSet.Method, &raw)
	if _, hasName := raw["name"]; hasName || string(raw["topic"]) != `"new topic"` {
		t.Errorf("room set --topic request %s", f.request(api.EpRoomSet.Method))
	}

	r = runCLI(t, "", "redact", validID, validID, "--reason", "oops", "--home", f.home)
	ok(r, "redact")
	var rd api.RedactReq
	sent(api.EpRedact.Method, &rd)
	if rd != (api.RedactReq{Room: validID, Event: validID, Reason: "oops"}) {
		t.Errorf("redact request %+v", rd)
	}

	r = runCLI(t, "", "dm", moderator, "--home", f.home)
	ok(r, "dm")
	if r.stdout != "dm-room\n" {
		t.Errorf("dm output %q", r.stdout)
	}

	r = runCLI(t, "", "invites", "--home", f.home)
	ok(r, "invites")
	if !strings.Contains(r.stdout, "Book club") || !strings.Contains(r.stdout, "alice") {
		t.Errorf("invites output %q", r.stdout)
	}
	// "invites policy" with and without a policy; global flags anywhere.
	r = runCLI(t, "", "--home", f.home, "invites", "--json", "policy")
	ok(r, "invites policy")
	if f.request(api.EpInvitesPolicy.Method) != "{}" || r.stdout != `{"policy":"nobody"}`+"\n" {
		t.Errorf("invites policy: request %q output %q", f.request(api.EpInvitesPolicy.Method), r.stdout)
	}
	r = runCLI(t, "", "invites", "policy", "nobody", "--home", f.home)
	ok(r, "invites policy nobody")
	if f.request(api.EpInvitesPolicy.Method) != `{"policy":"nobody"}` || !strings.HasPrefix(r.stdout, "nobody: ") {
		t.Errorf("invites policy nobody: request %q output %q", f.request(api.EpInvitesPolicy.Method), r.stdout)
	}

	r = runCLI(t, "", "profile", "set", "--name", "Bob", "--home", f.home)
	ok(r, "profile set")
	if f.request(api.EpProfileSet.Method) != `{"name":"Bob"}` || !strings.Contains(r.stdout, "Bob") {
		t.Errorf("profile set: request %q output %q", f.request(api.EpProfileSet.Method), r.stdout)
	}
	ok(runCLI(t, "", "profile", "get", "--home", f.home), "profile get")
	if f.request(api.EpProfileGet.Method) != "{}" {
		t.Errorf("profile get request %q", f.request(api.EpProfileGet.Method))
	}
	r = runCLI(t, "", "profile", "get", moderator, "--home", f.home)
	ok(r, "profile get USER")
	if f.request(api.EpProfileGet.Method) != `{"user":"`+moderator+`"}` || !strings.Contains(r.stdout, "bafyavatar") {
		t.Errorf("profile get USER: request %q output %q", f.request(api.EpProfileGet.Method), r.stdout)
	}

	r = runCLI(t, "", "block", moderator, "--home", f.home)
	ok(r, "block")
	if f.request(api.EpBlock.Method) != `{"user":"`+moderator+`"}` {
		t.Errorf("block request %q", f.request(api.EpBlock.Method))
	}
	r = runCLI(t, "", "blocked", "--home", f.home)
	ok(r, "blocked")
	if r.stdout != "no blocked users\n" {
		t.Errorf("blocked output %q", r.stdout)
	}

	// room info shows each member's name, membership, role and power.
	r = runCLI(t, "", "room", "info", validID, "--home", f.home)
	ok(r, "room info")
	for _, want := range []string{"bafyav", "Alice", "creator", "max", moderator, "moderator", "50"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("room info output lacks %q:\n%s", want, r.stdout)
		}
	}

	// history shows redacted messages as such.
	r = runCLI(t, "", "history", validID, "--home", f.home)
	ok(r, "history")
	if !strings.Contains(r.stdout, "alice: [redacted]") || !strings.Contains(r.stdout, "redacted e1") || !strings.Contains(r.stdout, "still here") || !strings.Contains(r.stdout, "alice removed the topic") {
		t.Errorf("history output:\n%s", r.stdout)
	}

	// A refusal from the daemon is one "parley: " line.
	runCLI(t, "", "room", "unban", validID, moderator, "--home", f.home).failsWith(t, "parley: unknown room")
}

// TestSimAgainstUnreadable: a baseline that cannot be read is refused
// before anything runs.
func TestSimAgainstUnreadable(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "report.json"), []byte("{"), 0o600)
	for _, p := range []string{filepath.Join(dir, "none.json"), dir} {
		r := runCLI(t, "", "sim", "run", "gossip-latency", "--against", p)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: baseline report") || r.stdout != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout %q", p, r.code, r.stderr, r.stdout)
		}
	}
}

// TestSimCPUFromRefused: --cpu-from refuses an unreadable report and a run
// that is not a netns one, with a clear error and no run; and it is for
// the mocknet backend only.
func TestSimCPUFromRefused(t *testing.T) {
	dir := t.TempDir()
	mock := filepath.Join(dir, "mock.json")
	os.WriteFile(mock, []byte(`{"scenario":"gossip-latency","seed":1,"nodes":20,"backend":"mocknet (in-process)","events_published":5,"latency_ms":{"p50":40,"p99":40},"cpu":{"cores_mean":1,"ms_per_message":1}}`), 0o600)
	for p, want := range map[string]string{filepath.Join(dir, "none.json"): "parley: baseline report", mock: "parley: cpu-from: gossip-latency is a \"mocknet"} {
		r := runCLI(t, "", "sim", "run", "gossip-latency", "--cpu-from", p)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) || r.stdout != "" {
			t.Errorf("%s: exit %d, stderr %q, stdout %q", p, r.code, r.stderr, r.stdout)
		}
	}
	r := runCLI(t, "", "sim", "run", "gossip-latency", "--cpu-from", mock, "--backend", "netns")
	if r.code != 2 || !strings.Contains(r.stderr, "--cpu-from is for the mocknet backend") {
		t.Errorf("netns: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestSimUsageLayout: sim's usage errors use the layout of every other
// command (a "parley: ..." line, then the command's usage), not a text of
// their own.
func TestSimUsageLayout(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		msg, want string
	}{
		{[]string{"sim", "run", "--bogus"}, "flag provided but not defined: --bogus", "usage: parley sim run "},
		{[]string{"sim", "run"}, "missing argument", "usage: parley sim run "},
		{[]string{"sim", "list", "x"}, `unexpected argument "x"`, "usage: parley sim list"},
		{[]string{"sim", "export-shadow", "gossip-latency"}, "needs --out DIR", "usage: parley sim export-shadow "},
		{[]string{"sim"}, "missing sim subcommand", "usage: parley sim COMMAND"},
	} {
		r := runCLI(t, "", tc.args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "parley: ") || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
	}
}
