package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node"
)

// TestBadInput: bad input gets exit 1 and one "parley: ..." line, changes
// nothing, and the daemon lives on.
func TestBadInput(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "D")
	var rr api.RoomResp
	d.must(&rr, "room", "create", "--name", "bad-input")
	room := rr.Room
	d.must(nil, "send", room, "the only message")

	snapshot := func() (ids []string, rooms string) {
		t.Helper()
		evs, err := d.history(room)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		r := d.run("", "room", "list", "--json")
		if r.code != 0 {
			t.Fatal(r)
		}
		return ids, r.stdout
	}
	idsBefore, roomsBefore := snapshot()

	randomID := make([]byte, 16)
	rand.Read(randomID)
	unknown := crdt.IDOf(randomID).String() // well-formed, held by nobody
	noDaemon := t.TempDir()

	for _, tc := range []struct {
		name  string
		home  string
		stdin string
		args  []string
		want  string // substring of the error line
	}{
		{"unknown room: send", "", "", []string{"send", unknown, "hello"}, ""},
		{"unknown room: history", "", "", []string{"history", unknown}, ""},
		{"unknown room: info", "", "", []string{"room", "info", unknown}, ""},
		{"unknown room name: send", "", "", []string{"send", "bafy-not-a-room", "hello"}, `no room named "bafy-not-a-room"`},
		{"unknown room name: history", "", "", []string{"history", "12345", "--limit", "5"}, `no room named "12345"`},
		{"malformed event reference", "", "", []string{"react", room, "abc", "+1"}, `malformed event ID "abc"`},
		{"unknown event reference", "", "", []string{"react", room, "zzzzzzzz", "+1"}, "no event zzzzzzzz"},
		{"unknown user name", "", "", []string{"room", "invite", room, "Nobody Here"}, `no user named "Nobody Here"`},
		{"malformed multiaddr: connect", "", "", []string{"connect", "/ip4/127.0.0.1/tcp/notaport"}, "malformed multiaddr"},
		{"malformed multiaddr: garbage", "", "", []string{"connect", "hello there"}, "malformed multiaddr"},
		{"malformed multiaddr: join --via", "", "", []string{"room", "join", room, "--via", "/ip6/zz"}, "malformed multiaddr"},
		{"empty message", "", "", []string{"send", room, ""}, "empty message"},
		{"empty message from stdin", "", "\n", []string{"send", room, "-"}, "empty message"},
		{"200 kB message", "", strings.Repeat("0123456789", 20000), []string{"send", room, "-"}, "too long"},
		{"61 kB message", "", strings.Repeat("x", 61000), []string{"send", room, "-"}, "too long"},
		{"no daemon", noDaemon, "", []string{"status"}, "no daemon running for " + noDaemon + " (start one with: parley daemon)"},
		{"no daemon: send", noDaemon, "", []string{"send", room, "hi"}, "no daemon running for " + noDaemon},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := d.home
			if tc.home != "" {
				home = tc.home
			}
			r := runCLI(home, tc.stdin, append(tc.args, "--json")...)
			if r.code != 1 {
				t.Fatalf("want exit 1: %v", r)
			}
			if !strings.HasPrefix(r.stderr, "parley: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("want exactly one 'parley: ' line on stderr: %v", r)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("stderr does not say %q: %v", tc.want, r)
			}
			if r.stdout != "" {
				t.Fatalf("output on stdout: %v", r)
			}
		})
	}

	// The daemon validates on its own too: the same bad input straight
	// through the API, past the CLI's checks, is refused.
	t.Run("api", func(t *testing.T) {
		cl, err := api.NewClient(d.home)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for _, tc := range []struct {
			name   string
			method string
			req    any
		}{
			{"send to unknown room", api.EpSend.Method, api.SendReq{Room: unknown, Text: "x"}},
			{"send to malformed room", api.EpSend.Method, api.SendReq{Room: "bafy-not-a-room", Text: "x"}},
			{"empty text", api.EpSend.Method, api.SendReq{Room: room, Text: ""}},
			{"200 kB text", api.EpSend.Method, api.SendReq{Room: room, Text: strings.Repeat("y", 200_000)}},
			{"history of malformed room", api.EpHistory.Method, api.HistoryReq{Room: "nope"}},
			{"connect malformed", api.EpConnect.Method, api.AddrReq{Addr: "/ip4/1.2.3.4/tcp/x"}},
			{"connect without peer id", api.EpConnect.Method, api.AddrReq{Addr: "/ip4/127.0.0.1/tcp/1"}},
			{"join malformed", api.EpRoomJoin.Method, api.RoomJoinReq{Room: "nope"}},
			{"unknown field", api.EpStatus.Method, map[string]int{"bogus": 1}},
			{"unknown method", "no/such/method", nil},
		} {
			resp, err := cl.Raw(ctx, tc.method, tc.req)
			var ne *api.Error
			if !errors.As(err, &ne) {
				t.Errorf("%s: want a *node.Error, got %v (answer %s)", tc.name, err, resp)
			}
		}
	})

	idsAfter, roomsAfter := snapshot()
	if !slices.Equal(idsBefore, idsAfter) {
		t.Errorf("history changed by bad input: %d events before, %d after", len(idsBefore), len(idsAfter))
	}
	if roomsBefore != roomsAfter {
		t.Errorf("room list changed by bad input:\nbefore %s\nafter  %s", roomsBefore, roomsAfter)
	}
	var st api.StatusResp
	d.must(&st, "status")
	if !d.running() {
		t.Fatalf("daemon died: %v", d.exitErr)
	}
}

// TestAPIRefusesForeignRequests: the local API wants the token, a loopback
// Host and no foreign Origin (DESIGN §10).
func TestAPIRefusesForeignRequests(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "E")
	b, err := os.ReadFile(filepath.Join(d.home, api.InfoFile))
	if err != nil {
		t.Fatal(err)
	}
	var info api.Info
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.home, api.InfoFile))
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("api file holds the token but has mode %v", fi.Mode().Perm())
	}
	for _, tc := range []struct {
		name   string
		token  string
		host   string
		origin string
		want   int
	}{
		{"control", info.Token, "", "", http.StatusOK},
		{"same origin", info.Token, "", info.URL, http.StatusOK},
		{"no token", "", "", "", http.StatusForbidden},
		{"wrong token", info.Token + "x", "", "", http.StatusForbidden},
		{"foreign host", info.Token, "evil.example", "", http.StatusForbidden},
		{"foreign host with port", info.Token, "evil.example:" + port(info.URL), "", http.StatusForbidden},
		{"foreign origin", info.Token, "", "http://evil.example", http.StatusForbidden},
		{"null origin", info.Token, "", "null", http.StatusForbidden},
	} {
		req, err := http.NewRequest(http.MethodPost, info.URL+"/v1/"+api.EpStatus.Method, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, resp.StatusCode, tc.want, body)
		}
	}
}

func port(url string) string {
	i := strings.LastIndexByte(url, ':')
	return url[i+1:]
}

// TestInitAndWatch: init is idempotent and is the identity the daemon then
// runs with; watch streams a message sent after it started.
func TestInitAndWatch(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	var first, second node.InitResult
	for i, v := range []*node.InitResult{&first, &second} {
		r := runCLI(home, "", "init", "--json", "--name", "alice")
		if r.code != 0 {
			t.Fatal(r)
		}
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("init %d: %v: %v", i, err, r)
		}
	}
	if !first.Created || second.Created || first.User == "" || first.User != second.User || first.Device != second.Device {
		t.Fatalf("init not idempotent: first %+v, second %+v", first, second)
	}
	filepath.WalkDir(home, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && strings.Contains(strings.ToLower(de.Name()), "ident") {
			if info, _ := de.Info(); info != nil && info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s holds keys but has mode %v, want 0600", p, info.Mode().Perm())
			}
		}
		return nil
	})

	d := newDaemon(t, "W", home)
	d.start()
	if d.user != first.User {
		t.Errorf("daemon runs as user %q, init created %q", d.user, first.User)
	}
	var rr api.RoomResp
	d.must(&rr, "room", "create", "--name", "watched")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, parleyBin, "watch", rr.Room, "--json", "--home", home)
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var werr syncBuffer
	watch.Stderr = &werr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		watch.Process.Kill()
		watch.Wait()
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The stream may open after the send; send until a message shows up.
	sent := 0
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended: %s", werr.String())
			}
			var item api.WatchItem
			if err := json.Unmarshal([]byte(line), &item); err != nil || item.Kind == "" {
				t.Fatalf("watch line %q is not an object with a kind: %v", line, err)
			}
			if item.Event != nil && item.Event.Type == "message" && strings.HasPrefix(item.Event.Body, "watched message") {
				if item.Room != rr.Room {
					t.Errorf("watch item room %q, want %q", item.Room, rr.Room)
				}
				return
			}
		case <-tick.C:
			if sent < 10 {
				d.must(nil, "send", rr.Room, "watched message")
				sent++
			}
		case <-ctx.Done():
			t.Fatalf("no message on watch within 30s (sent %d); stderr %s", sent, werr.String())
		}
	}
}
