package importers

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/parley-p2p/parley/internal/puretest"
)

// TestPureImports: the parsers read only the fs.FS they are given and
// never the clock ("time" is allowed for parsing dates; Now is checked
// below).
func TestPureImports(t *testing.T) {
	forbidden := []string{"github.com/libp2p/", "github.com/dgraph-io/badger", "net", "os", "os/exec", "math/rand", "syscall", "unsafe", "testing"}
	puretest.CheckImports(t, ".", forbidden...)
	files, _ := os.ReadDir(".")
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".go") && !strings.HasSuffix(f.Name(), "_test.go") {
			b, _ := os.ReadFile(f.Name())
			if strings.Contains(string(b), "time.Now") || strings.Contains(string(b), "time.Since") {
				t.Errorf("%s reads the clock", f.Name())
			}
		}
	}
}

// summary renders what a test checks of an export, one line a message.
func summary(x *Export) string {
	var b strings.Builder
	for _, m := range x.Messages {
		fmt.Fprintf(&b, "%s|%s|%s|%q", m.Author, m.AuthorID, m.Time.Format(time.RFC3339), m.Text)
		if m.ReplyTo != "" {
			fmt.Fprintf(&b, " reply=%s", m.ReplyTo)
		}
		if !m.Edited.IsZero() {
			fmt.Fprintf(&b, " edited=%s", m.Edited.Format(time.RFC3339))
		}
		for _, e := range m.Edits {
			fmt.Fprintf(&b, " edit=%q", e.Text)
		}
		for _, r := range m.Reactions {
			fmt.Fprintf(&b, " react=%s:%d:%s", r.Key, r.Count, strings.Join(r.Users, ","))
		}
		for _, a := range m.Attachments {
			if a.Missing {
				fmt.Fprintf(&b, " file=%s(missing)", a.Name)
			} else {
				fmt.Fprintf(&b, " file=%s@%s", a.Name, a.Path)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "skipped %d", len(x.Skipped))
	return b.String()
}

func TestFixtures(t *testing.T) {
	cases := []struct {
		format, dir, main, channel string
		want                       string
	}{
		{Telegram, "telegram", "", "", `Alice Example|user1001|2023-12-31T21:05:00Z|"Happy new year!" react=👍:1:Bob Example
Bob Example|user1002|2023-12-31T21:05:30Z|"Same to you!" reply=2 edited=2023-12-31T21:07:00Z
Alice Example|user1001|2023-12-31T21:06:00Z|"Look at this" file=photo_1@31-12-2023_21-06-00.png@photos/photo_1@31-12-2023_21-06-00.png
Bob Example|user1002|2023-12-31T21:08:00Z|"The route" file=route.gpx(missing)
skipped 1`},
		{WhatsApp, "whatsapp", "", "", `Alice Example|Alice Example|2023-12-31T21:05:00Z|"Happy new year!\nSee you in the mountains"
Bob Example|Bob Example|2023-12-31T21:05:00Z|"Same to you!" edited=2023-12-31T21:05:00Z
Alice Example|Alice Example|2023-12-31T21:06:00Z|"Look at this" file=00000003-PHOTO-2023-12-31-21-06-10.png@00000003-PHOTO-2023-12-31-21-06-10.png
Bob Example|Bob Example|2023-12-31T21:08:00Z|"" file=Media omitted(missing)
skipped 1`},
		{WhatsApp, "whatsapp-ios", "", "", `Alice Example|Alice Example|2023-12-31T21:05:03Z|"Happy new year!"
Bob Example|Bob Example|2023-12-31T21:05:40Z|"Same to you!"
Alice Example|Alice Example|2023-12-31T21:06:10Z|"" file=00000003-PHOTO-2023-12-31-21-06-10.png@00000003-PHOTO-2023-12-31-21-06-10.png
skipped 1`},
		{WhatsApp, "whatsapp-eu", "", "", `Alice Example|Alice Example|2023-12-31T21:05:00Z|"Happy new year!"
Bob Example|Bob Example|2023-12-31T21:05:00Z|"Same to you!"
Alice Example|Alice Example|2024-01-01T09:30:00Z|"Good morning"
skipped 0`},
		{Element, "element", "", "", `Alice Example|@alice:example.org|2023-12-31T21:05:00Z|"Happy new year!" react=👍:1:Bob Example
Bob Example|@bob:example.org|2023-12-31T21:05:30Z|"Same to yu!" reply=$e1 edited=2023-12-31T21:07:00Z edit="Same to you!"
Alice Example|@alice:example.org|2023-12-31T21:06:00Z|"" file=sunset.png@images/sunset-2023-12-31 21-06-00.png
skipped 2`},
		{Discord, "discord", "", "", `Alice Example|900000000000000101|2023-12-31T21:05:00Z|"Happy new year!" react=👍:1:Bob Example
Bob Example|900000000000000102|2023-12-31T21:05:30Z|"Same to you!" reply=900000000000000011 edited=2023-12-31T21:07:00Z
Alice Example|900000000000000101|2023-12-31T21:06:00Z|"Look at this" file=sunset.png@general.json_Files/sunset-5A3F1.png
skipped 1`},
		{Slack, "slack", "", "general", `Alice Example|U01|2023-12-31T21:05:00Z|"Happy new year!" react=:+1::1:Bob Example
Bob Example|U02|2023-12-31T21:05:30Z|"Same to you, @Alice Example!" reply=1704056700.000200 edited=2023-12-31T21:07:00Z
Alice Example|U01|2023-12-31T21:06:00Z|"Look at this" file=sunset.png@__uploads/F01/sunset.png
skipped 1`},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			x, err := Parse(c.format, os.DirFS("testdata/"+c.dir), c.main, c.channel)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(x); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestWhatsAppLocales(t *testing.T) {
	cases := []struct{ line, want string }{
		{"12/31/23, 9:05 PM - A: x", "2023-12-31T21:05:00Z"},
		{"1/2/23, 12:05 AM - A: x", "2023-01-02T00:05:00Z"},
		{"[31.12.23, 21:05:03] A: x", "2023-12-31T21:05:03Z"},
		{"31/12/2023, 21:05 - A: x", "2023-12-31T21:05:00Z"},
		{"[12/31/23, 9:05:03\u202fPM] A: x", "2023-12-31T21:05:03Z"},
		{"2023-12-31, 21:05 - A: x", "2023-12-31T21:05:00Z"},
		{"31.12.23, 21:05 - A: x", "2023-12-31T21:05:00Z"},
	}
	for _, c := range cases {
		x, err := ParseWhatsApp(fstest.MapFS{"_chat.txt": {Data: []byte(c.line + "\n")}}, "")
		if err != nil {
			t.Errorf("%q: %v", c.line, err)
			continue
		}
		if len(x.Messages) != 1 || x.Messages[0].Time.Format(time.RFC3339) != c.want {
			t.Errorf("%q: got %+v, want %s", c.line, x.Messages, c.want)
		}
	}
}

// TestMalformed: a broken export is refused with an error naming the file
// and the line or entry.
func TestMalformed(t *testing.T) {
	cases := []struct {
		format string
		fs     fstest.MapFS
		want   string
	}{
		{Telegram, fstest.MapFS{"result.json": {Data: []byte("{\"messages\": [\n{\"id\": 1, \"type\": \"message\",\n \"date_unixtime\": \"x\"}]}")}}, "result.json messages[0] (id 1): date"},
		{Telegram, fstest.MapFS{"result.json": {Data: []byte("{\"messages\": [\n{\"id\": 1,,}]}")}}, "result.json line 2"},
		{WhatsApp, fstest.MapFS{"_chat.txt": {Data: []byte("hello\n")}}, "_chat.txt line 1"},
		{WhatsApp, fstest.MapFS{"_chat.txt": {Data: []byte("12/31/23, 9:05 PM - A: x\n13/13/23, 9:05 PM - A: y\n")}}, "_chat.txt line 2"},
		{Element, fstest.MapFS{"export.json": {Data: []byte(`{"messages": [{"type": "m.room.message", "sender": "@a:b"}]}`)}}, "export.json messages[0]"},
		{Discord, fstest.MapFS{"c.json": {Data: []byte(`{"channel": {"id": "1"}, "messages": [{"id": "2", "timestamp": "yesterday"}]}`)}}, "c.json messages[0] (id 2): timestamp"},
		{Slack, fstest.MapFS{"channels.json": {Data: []byte(`[{"id": "C1", "name": "g"}]`)}, "g/2024-01-01.json": {Data: []byte(`[{"type": "message", "ts": "soon"}]`)}}, "g/2024-01-01.json[0]: ts"},
		{Telegram, fstest.MapFS{"result.json": {Data: []byte(`{"messages": [{"id": 1, "type": "message", "date_unixtime": "1", "text": "a"}, {"id": 1, "type": "message", "date_unixtime": "1", "text": "b"}]}`)}}, `message ID "1" appears twice`},
	}
	for _, c := range cases {
		_, err := Parse(c.format, c.fs, "", "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.format, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v does not wrap ErrMalformed", c.format, err)
		}
	}
}

func TestImportIDStable(t *testing.T) {
	a, b := ImportID(Telegram, "1", "2"), ImportID(Telegram, "1", "2")
	if a != b || a == ImportID(Telegram, "12", "") || a == ImportID(Discord, "1", "2") {
		t.Fatal("import IDs are not stable and distinct")
	}
}

// fuzzParse runs one parser on arbitrary bytes as its main file: it may
// refuse them, but must not panic, and what it returns passes check.
func fuzzParse(f *testing.F, format, main, seedDir string) {
	if b, err := os.ReadFile("testdata/" + seedDir + "/" + main); err == nil {
		f.Add(b)
	}
	f.Add([]byte("{}"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := fstest.MapFS{main: {Data: b}}
		if format == Slack {
			fsys = fstest.MapFS{"channels.json": {Data: []byte(`[{"id": "C1", "name": "g"}]`)}, "g/2024-01-01.json": {Data: b}}
		}
		x, err := Parse(format, fsys, "", "")
		if err != nil {
			return
		}
		for _, m := range x.Messages {
			if m.ID == "" {
				t.Fatal("message without ID")
			}
		}
	})
}

func FuzzTelegram(f *testing.F) { fuzzParse(f, Telegram, "result.json", "telegram") }
func FuzzWhatsApp(f *testing.F) { fuzzParse(f, WhatsApp, "_chat.txt", "whatsapp") }
func FuzzElement(f *testing.F)  { fuzzParse(f, Element, "export.json", "element") }
func FuzzDiscord(f *testing.F)  { fuzzParse(f, Discord, "general.json", "discord") }
func FuzzSlack(f *testing.F)    { fuzzParse(f, Slack, "g/2024-01-01.json", "slack") }
