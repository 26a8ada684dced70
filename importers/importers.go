// Package importers reads the chat exports other messengers produce
// (Telegram Desktop, WhatsApp, Element, DiscordChatExporter, Slack) into one
// neutral form: a list of messages with their original author, time, text,
// reply, edits, reactions and attached files.
//
// It must not do I/O beyond the fs.FS it is given (no os, no network) and
// must not read the clock: a parser is a pure function of the export's
// bytes, so that the node can parse and validate a whole export before it
// sends anything. A malformed export is refused with an error naming the
// file and the line or entry.
package importers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// Formats this package reads, as named by `parley import --from`.
const (
	Telegram = "telegram"
	WhatsApp = "whatsapp"
	Element  = "element"
	Discord  = "discord"
	Slack    = "slack"
)

// Formats lists the formats Parse knows.
var Formats = []string{Telegram, WhatsApp, Element, Discord, Slack}

// ErrMalformed is wrapped by every error about the export's content.
var ErrMalformed = errors.New("importers: malformed export")

// MaxFileRead bounds one JSON or text file of an export read into memory.
const MaxFileRead = 1 << 30

// Export is one conversation read from an export.
type Export struct {
	Format   string
	Chat     string // the chat's identity in the source (an ID, else its name)
	Name     string // the chat's name in the source, if it has one
	Messages []Message
	Skipped  []Skip // source entries not taken as messages, and why
}

// Message is one message of the source, in the source's order (oldest
// first).
type Message struct {
	ID          string // the source's ID (unique in the export)
	AuthorID    string // the source's ID of the author, or the name
	Author      string // the author's display name
	Time        time.Time
	Text        string
	ReplyTo     string    // the source ID of the message answered, or ""
	Edited      time.Time // when the source says the message was last edited
	Edits       []Edit    // later versions of the text, when the source keeps them
	Reactions   []Reaction
	Attachments []Attachment
}

// Edit is a later version of a message's text.
type Edit struct {
	ID   string
	Time time.Time
	Text string
}

// Reaction is one reaction key on a message, with who reacted as far as
// the source tells (Count may exceed len(Users)).
type Reaction struct {
	Key   string
	Count int
	Users []string // display names
}

// Attachment is a file the message carries. Path names it inside the
// export's fs.FS; Missing says the export does not include it (only its
// name is known).
type Attachment struct {
	Name    string
	Path    string
	Missing bool
}

// Skip is a source entry not imported as a message.
type Skip struct {
	Entry  string // where: "line 12", "messages[4]", "general/2024-01-02.json[3]"
	Reason string
}

// ImportID is the stable identity of a source message: a hash of the
// format, the chat's identity in the source and the message's source ID.
// Importing the same export twice finds the same IDs.
func ImportID(format, chat, id string) [32]byte {
	return sha256.Sum256([]byte("parley-import\x00" + format + "\x00" + chat + "\x00" + id))
}

// ImportIDString is ImportID in hex.
func ImportIDString(format, chat, id string) string {
	h := ImportID(format, chat, id)
	return hex.EncodeToString(h[:])
}

// Parse reads the export of format in fsys. main names the export's main
// file inside fsys ("result.json", "_chat.txt", the Element or Discord JSON
// file); "" means the format's usual name or the only candidate. For Slack,
// channel names the channel to read ("" when the export has one).
func Parse(format string, fsys fs.FS, main, channel string) (*Export, error) {
	var x *Export
	var err error
	switch format {
	case Telegram:
		x, err = ParseTelegram(fsys, main)
	case WhatsApp:
		x, err = ParseWhatsApp(fsys, main)
	case Element:
		x, err = ParseElement(fsys, main)
	case Discord:
		x, err = ParseDiscord(fsys, main)
	case Slack:
		x, err = ParseSlack(fsys, channel)
	default:
		return nil, fmt.Errorf("importers: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return nil, err
	}
	x.Format = format
	if err := x.check(); err != nil {
		return nil, err
	}
	return x, nil
}

// check validates what every parser must produce: unique non-empty IDs,
// replies to earlier messages only (others are dropped as not in the
// export), attachment paths inside the FS.
func (x *Export) check() error {
	seen := make(map[string]bool, len(x.Messages))
	for i := range x.Messages {
		m := &x.Messages[i]
		if m.ID == "" {
			return malformed("message %d has no ID", i)
		}
		if seen[m.ID] {
			return malformed("message ID %q appears twice", m.ID)
		}
		seen[m.ID] = true
		if m.ReplyTo != "" && !seen[m.ReplyTo] {
			m.ReplyTo = "" // answers a message outside the export
		}
		if m.Author == "" {
			m.Author = m.AuthorID
		}
		if m.AuthorID == "" {
			m.AuthorID = m.Author
		}
		for _, a := range m.Attachments {
			if !a.Missing && !fs.ValidPath(a.Path) {
				return malformed("message %q: attachment path %q leaves the export", m.ID, a.Path)
			}
		}
	}
	return nil
}

// malformed is an ErrMalformed with context.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readFile reads name from fsys, at most MaxFileRead bytes.
func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileRead+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileRead {
		return nil, malformed("%s is larger than %d bytes", name, MaxFileRead)
	}
	return b, nil
}

// findMain returns main, or the only file at the root of fsys matching
// one of the patterns.
func findMain(fsys fs.FS, main string, what string, patterns ...string) (string, error) {
	if main != "" {
		return main, nil
	}
	for _, p := range patterns {
		if _, err := fs.Stat(fsys, p); err == nil && !strings.ContainsAny(p, "*?[") {
			return p, nil
		}
	}
	var found []string
	for _, p := range patterns {
		m, _ := fs.Glob(fsys, p)
		found = append(found, m...)
	}
	slices.Sort(found)
	found = slices.Compact(found)
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("importers: no %s in the export (looked for %s)", what, strings.Join(patterns, ", "))
	}
	return "", fmt.Errorf("importers: several candidates for the %s: %s; name one", what, strings.Join(found, ", "))
}

// attachment names a file of the export at p (relative to the main
// file's folder dir), or a missing one when it is not there.
func attachment(fsys fs.FS, dir, p, name string) Attachment {
	full := path.Join(dir, p)
	if name == "" {
		name = path.Base(p)
	}
	if p == "" || !fs.ValidPath(full) {
		return Attachment{Name: name, Missing: true}
	}
	if st, err := fs.Stat(fsys, full); err != nil || !st.Mode().IsRegular() {
		return Attachment{Name: name, Missing: true}
	}
	return Attachment{Name: name, Path: full}
}
