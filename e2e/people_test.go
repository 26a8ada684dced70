package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// A new user gets by with the output for people alone (issue 17, "The
// terminal, for people"): Bob names the room by its name, reads Alice's
// message and file in 'parley history', takes the short references from
// its lines and replies, reacts, edits and redacts his own message, and
// saves the file Alice sent. --json is used only to check the results.
func TestNewUserHumanFlow(t *testing.T) {
	t.Parallel()
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	a.must(nil, "connect", b.addr)
	human := func(d *daemon, args ...string) string {
		t.Helper()
		r := d.run("", args...)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("%s: %v", d.name, r)
		}
		return r.stdout
	}
	human(a, "profile", "set", "--name", "Alice")
	human(b, "profile", "set", "--name", "Bob")
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "general")
	human(a, "room", "invite", "general", b.user) // the room by its name
	waitInvite(t, b, rr.Room)
	b.must(nil, "room", "join", rr.Room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, rr.Room, b.user, "join")

	w := startWatch(t, b, rr.Room)

	// Alice sends a message and a file.
	human(a, "send", "general", "hello Bob")
	file := filepath.Join(t.TempDir(), "notes.txt")
	content := bytes.Repeat([]byte("the notes of the meeting\n"), 5000)
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	human(a, "send-file", "general", file, "--caption", "the notes")

	// refOf waits for a history line of Bob's that contains text and
	// returns the reference it shows (the second column).
	refOf := func(d *daemon, text string) string {
		t.Helper()
		var ref string
		eventually(t, govTimeout, d.name+" sees "+text, func() error {
			out := d.run("", "history", "general")
			for _, line := range strings.Split(out.stdout, "\n") {
				if strings.Contains(line, text) {
					f := strings.Fields(line)
					if len(f) < 4 || len(f[2]) < api.RefLen {
						return fmt.Errorf("no reference in %q", line)
					}
					ref = f[2]
					return nil
				}
			}
			return fmt.Errorf("history: %v", out)
		})
		return ref
	}
	hello := refOf(b, "Alice: hello Bob")
	fileRef := refOf(b, "Alice: the notes")
	// watch gives each event's reference and its sender's name (Alice
	// sends until Bob's watch, which may start late, shows a message).
	eventually(t, govTimeout, "watch shows a message with its reference", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, it := range w.items {
			if it.Event != nil && it.Event.Body == "watch me" {
				if len(it.Ref) < api.RefLen || !strings.HasPrefix(it.Event.ID, "bafyrei"+it.Ref) || it.Name != "Alice" {
					return fmt.Errorf("watch item %s: ref %q name %q", it.Event.ID, it.Ref, it.Name)
				}
				return nil
			}
		}
		a.run("", "send", "general", "watch me")
		return fmt.Errorf("%d lines so far; stderr %q", len(w.items), w.errs.String())
	})

	human(b, "send", "general", "hi Alice", "--reply-to", hello)
	human(b, "react", "general", hello, "👍")
	human(b, "send", "general", "a typo")
	typo := refOf(b, "Bob: a typo")
	human(b, "edit", "general", typo, "no typo")
	human(b, "send", "general", "a mistake")
	mistake := refOf(b, "Bob: a mistake")
	human(b, "redact", "general", mistake)
	saved := filepath.Join(t.TempDir(), "saved.txt")
	human(b, "media", "save", "general", fileRef, "-o", saved)
	if got, err := os.ReadFile(saved); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("media save wrote %d bytes (%v), want the %d sent", len(got), err, len(content))
	}

	// media get CID alone: the key comes from the message that carries it.
	var fh api.HistoryResp
	b.must(&fh, "history", rr.Room)
	cid := ""
	for _, e := range fh.Events {
		if e.Media != nil {
			cid = e.Media.CID
		}
	}
	got := filepath.Join(t.TempDir(), "got.txt")
	human(b, "media", "get", cid, "-o", got)
	if g, err := os.ReadFile(got); err != nil || !bytes.Equal(g, content) {
		t.Fatalf("media get CID wrote %d bytes (%v), want the %d sent", len(g), err, len(content))
	}
	if r := b.run("", "media", "save", "general", fileRef, "-o", saved); r.code != 0 {
		t.Errorf("media save over a regular file: %v", r)
	}

	// Alice's node shows all of it.
	eventually(t, govTimeout, "A sees what B did", func() error {
		var h api.HistoryResp
		if err := a.try(&h, "history", rr.Room); err != nil {
			return err
		}
		find := func(ref string) *api.TimelineEvent {
			for i, e := range h.Events {
				if strings.HasPrefix(e.ID, "bafyrei"+ref) {
					return &h.Events[i]
				}
			}
			return nil
		}
		var reply *api.TimelineEvent
		for i, e := range h.Events {
			if e.Body == "hi Alice" {
				reply = &h.Events[i]
			}
		}
		hm, tm, mm := find(hello), find(typo), find(mistake)
		switch {
		case hm == nil || reply == nil || tm == nil || mm == nil:
			return fmt.Errorf("missing events in %+v", h.Events)
		case reply.ReplyTo != hm.ID:
			return fmt.Errorf("reply to %s, want %s", reply.ReplyTo, hm.ID)
		case !slices.Equal(hm.Reactions["👍"], []string{b.user}):
			return fmt.Errorf("reactions %v", hm.Reactions)
		case tm.Body != "no typo" || !tm.Edited:
			return fmt.Errorf("edited message %+v", tm)
		case !mm.Redacted:
			return fmt.Errorf("redacted message %+v", mm)
		}
		return nil
	})

	// What a person sees: names, references, no key-management lines.
	out := human(b, "history", "general")
	t.Logf("parley history general (Bob):\n%s", out)
	for _, want := range []string{"Alice: hello Bob", "[👍 1]", "Bob: hi Alice  (reply to " + hello + ")", "Bob: no typo  (edited)", "Bob: [redacted]", "notes.txt"} {
		if !strings.Contains(out, want) {
			t.Errorf("history lacks %q", want)
		}
	}
	all := human(b, "history", "general", "--all")
	if strings.Count(all, "\n") <= strings.Count(out, "\n") {
		t.Errorf("history --all lists no more than history (key events hidden):\n%s", all)
	}
	// Users by name; a name nobody has is a clear error.
	human(a, "profile", "get", "Bob")
	if r := a.run("", "dm", "Nobody"); r.code != 1 || !strings.Contains(r.stderr, `no user named "Nobody"`) {
		t.Errorf("dm Nobody: %v", r)
	}
}
