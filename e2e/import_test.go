package e2e

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// fixtures is the importers' test data, shared with package importers.
const fixtures = "../importers/testdata"

// TestImportChats: each importer's fixture (the same small conversation as
// each app exports it) becomes a room whose history shows the original
// authors and times, the reply, the edit, the reaction and the image, all
// sent by the importing user; the image opens from the node's own store;
// a second import adds nothing.
func TestImportChats(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "I")
	png, err := os.ReadFile(filepath.Join(fixtures, "telegram/photos/photo_1@31-12-2023_21-06-00.png"))
	if err != nil {
		t.Fatal(err)
	}
	waZip := filepath.Join(t.TempDir(), "WhatsApp Chat - Hiking club.zip")
	zipDir(t, filepath.Join(fixtures, "whatsapp"), waZip)
	cases := []struct {
		format, path string
		extra        []string
		reply, react bool   // the source keeps replies and reactions
		versions     int    // versions of Bob's edited message (2 when the source kept the old text)
		skipped      int    // entries skipped
		missing      int    // files not in the export
		bobTS        int64  // Bob's message's original time
		aliceText    string // Alice's first message
	}{
		{"telegram", filepath.Join(fixtures, "telegram"), nil, true, true, 1, 1, 1, 1704056730000, "Happy new year!"},
		{"whatsapp", waZip, nil, false, false, 1, 1, 1, 1704056700000, "Happy new year!\nSee you in the mountains"},
		{"element", filepath.Join(fixtures, "element/export.json"), nil, true, true, 2, 2, 0, 1704056730000, "Happy new year!"},
		{"discord", filepath.Join(fixtures, "discord/general.json"), nil, true, true, 1, 1, 0, 1704056730123, "Happy new year!"},
		{"slack", filepath.Join(fixtures, "slack"), []string{"--channel", "general"}, true, true, 1, 1, 0, 1704056730000, "Happy new year!"},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			var r api.ImportChatResp
			d.must(&r, append([]string{"import", "--from", c.format, c.path, "--name", "from " + c.format}, c.extra...)...)
			if !r.Created || r.New != r.Messages || r.Existing != 0 || r.Media != 1 || r.MediaMissing != c.missing || len(r.Skipped) != c.skipped {
				t.Fatalf("import answered %+v", r)
			}
			hist, err := d.history(r.Room)
			if err != nil {
				t.Fatal(err)
			}
			byAuthor := map[string][]api.TimelineEvent{}
			for _, e := range hist {
				if e.Type != "message" {
					continue
				}
				if e.Imported == nil || e.Sender != d.user || e.Imported.From != c.format {
					t.Fatalf("message %+v is not shown as imported by %s from %s", e, d.user, c.format)
				}
				byAuthor[e.Imported.Author] = append(byAuthor[e.Imported.Author], e)
			}
			alice, bob := byAuthor["Alice Example"], byAuthor["Bob Example"]
			if len(alice) != 2 || len(bob) < 1 {
				t.Fatalf("authors: %d from Alice, %d from Bob, want 2 and 1 or more: %+v", len(alice), len(bob), hist)
			}
			hello, photo, same := alice[0], alice[1], bob[0]
			if hello.Body != c.aliceText || hello.Imported.TS != 1704056700000 {
				t.Errorf("Alice's first message: %q at %d", hello.Body, hello.Imported.TS)
			}
			if c.react && (len(hello.Imported.Reactions["👍"]) != 1 && len(hello.Imported.Reactions[":+1:"]) != 1) {
				t.Errorf("reactions of %q: %v", hello.Body, hello.Imported.Reactions)
			}
			if !strings.HasPrefix(same.Body, "Same to you") || same.Imported.TS != c.bobTS || !same.Edited || same.Versions != c.versions {
				t.Errorf("Bob's message: %q at %d, edited %v, versions %d", same.Body, same.Imported.TS, same.Edited, same.Versions)
			}
			if c.reply && same.ReplyTo != hello.ID {
				t.Errorf("Bob's message answers %q, want %s", same.ReplyTo, hello.ID)
			}
			if photo.Media == nil || photo.Media.MIME != "image/png" || photo.Media.Width != 64 || photo.Media.Height != 48 {
				t.Fatalf("Alice's photo: %+v", photo.Media)
			}
			out := filepath.Join(t.TempDir(), "photo.png")
			d.must(nil, "media", "get", photo.Media.CID+"#"+photo.Media.Key, "-o", out)
			if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, png) {
				t.Fatalf("the imported image does not open as the original: %v", err)
			}

			// Again, into the same room: nothing new.
			var again api.ImportChatResp
			d.must(&again, append([]string{"import", "--from", c.format, c.path, "--room", r.Room}, c.extra...)...)
			if again.New != 0 || again.Existing != r.Messages || again.Media != 0 || again.Edits != 0 {
				t.Fatalf("second import answered %+v", again)
			}
			if h2, _ := d.history(r.Room); len(h2) != len(hist) {
				t.Fatalf("second import changed the history: %d entries, then %d", len(hist), len(h2))
			}
		})
	}
}

// TestImportChatMalformed: a broken export is refused with the entry named,
// and nothing is created.
func TestImportChatMalformed(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "M")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "result.json"), []byte("{\"messages\": [\n{\"id\": 1, \"type\": \"message\", \"date_unixtime\": \"1\", \"text\": \"ok\"},\n{\"id\": 2, \"type\": \"message\", \"date_unixtime\": \"soon\"}]}"), 0o600); err != nil {
		t.Fatal(err)
	}
	var before api.RoomListResp
	d.must(&before, "room", "list")
	r := d.run("", "import", "--from", "telegram", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "messages[1] (id 2): date") || !strings.Contains(r.stderr, "nothing was imported") {
		t.Fatalf("import of a malformed export: exit %d, stderr %q", r.code, r.stderr)
	}
	var after api.RoomListResp
	d.must(&after, "room", "list")
	if len(after.Rooms) != len(before.Rooms) {
		t.Fatalf("a refused import made a room: %d rooms, then %d", len(before.Rooms), len(after.Rooms))
	}
	if r := d.run("", "import", "--from", "icq", dir); r.code == 0 || !strings.Contains(r.stderr, "want one of") {
		t.Fatalf("unknown format: exit %d, stderr %q", r.code, r.stderr)
	}
}

// zipDir zips the files of dir (flat) into out.
func zipDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
