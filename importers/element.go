package importers

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Element's "Export chat" as JSON: {room_name, room_creator, topic,
// export_date, exported_by, messages: [Matrix events]}; with attachments it
// is a zip of export.json and the files in images/, videos/, audio/ and
// files/, named after the event's body with the date inserted before the
// extension. Events are m.room.message (msgtype m.text, m.image, m.file,
// ...), m.reaction and state such as m.room.member. Relations sit in
// content["m.relates_to"]: a reply's m.in_reply_to.event_id, an edit's
// rel_type m.replace with the new text in content["m.new_content"], a
// reaction's rel_type m.annotation with its key.

type mxExport struct {
	RoomName string    `json:"room_name"`
	Messages []mxEvent `json:"messages"`
}

type mxEvent struct {
	Type     string    `json:"type"`
	EventID  string    `json:"event_id"`
	Sender   string    `json:"sender"`
	TS       int64     `json:"origin_server_ts"`
	RoomID   string    `json:"room_id"`
	StateKey *string   `json:"state_key"`
	Content  mxContent `json:"content"`
}

type mxContent struct {
	MsgType     string     `json:"msgtype"`
	Body        string     `json:"body"`
	URL         string     `json:"url"`
	FileName    string     `json:"filename"`
	DisplayName string     `json:"displayname"`
	Membership  string     `json:"membership"`
	NewContent  *mxContent `json:"m.new_content"`
	RelatesTo   *struct {
		RelType   string `json:"rel_type"`
		EventID   string `json:"event_id"`
		Key       string `json:"key"`
		InReplyTo *struct {
			EventID string `json:"event_id"`
		} `json:"m.in_reply_to"`
	} `json:"m.relates_to"`
}

// ParseElement reads an Element JSON room export (main: its JSON file,
// "" for export.json or the only .json at the root).
func ParseElement(fsys fs.FS, main string) (*Export, error) {
	var ex mxExport
	name, err := readMainJSON(fsys, main, "Element export JSON", &ex, "export.json", "*.json")
	if err != nil {
		return nil, err
	}
	if ex.Messages == nil {
		return nil, malformed("%s has no \"messages\" list: not an Element room export", name)
	}
	dir := path.Dir(name)
	x := &Export{Name: ex.RoomName}
	names := map[string]string{}
	index := map[string]int{} // event ID → index in x.Messages
	type pending struct {
		entry string
		ev    *mxEvent
	}
	var later []pending // relations, applied once every message is known
	for i := range ex.Messages {
		ev := &ex.Messages[i]
		entry := fmt.Sprintf("%s messages[%d]", name, i)
		if ev.RoomID != "" && x.Chat == "" {
			x.Chat = ev.RoomID
		}
		if ev.Type == "m.room.member" && ev.StateKey != nil && ev.Content.DisplayName != "" {
			names[*ev.StateKey] = ev.Content.DisplayName
		}
		switch ev.Type {
		case "m.room.message", "m.reaction":
		default:
			x.Skipped = append(x.Skipped, Skip{entry, "state or other event (" + ev.Type + ")"})
			continue
		}
		if ev.EventID == "" || ev.Sender == "" || ev.TS <= 0 {
			return nil, malformed("%s: an event needs event_id, sender and origin_server_ts", entry)
		}
		rel := ev.Content.RelatesTo
		if ev.Type == "m.reaction" || (rel != nil && rel.RelType == "m.replace") {
			later = append(later, pending{entry, ev})
			continue
		}
		msg := Message{ID: ev.EventID, AuthorID: ev.Sender, Author: names[ev.Sender], Time: time.UnixMilli(ev.TS).UTC()}
		msg.Text = mxBody(&ev.Content)
		if rel != nil && rel.InReplyTo != nil {
			msg.ReplyTo = rel.InReplyTo.EventID
		}
		switch ev.Content.MsgType {
		case "m.image", "m.file", "m.video", "m.audio":
			fname := ev.Content.FileName
			if fname == "" {
				fname = ev.Content.Body
			}
			if ev.Content.FileName == "" || ev.Content.FileName == ev.Content.Body {
				msg.Text = "" // the body is only the file's name
			}
			msg.Attachments = append(msg.Attachments, mxFile(fsys, dir, ev.Content.MsgType, fname))
		}
		if msg.Text == "" && len(msg.Attachments) == 0 {
			x.Skipped = append(x.Skipped, Skip{entry, "empty or redacted message"})
			continue
		}
		index[ev.EventID] = len(x.Messages)
		x.Messages = append(x.Messages, msg)
	}
	for _, p := range later {
		rel := p.ev.Content.RelatesTo
		if rel == nil {
			x.Skipped = append(x.Skipped, Skip{p.entry, "reaction without a target"})
			continue
		}
		i, ok := index[rel.EventID]
		if !ok {
			x.Skipped = append(x.Skipped, Skip{p.entry, "relation to a message not in the export"})
			continue
		}
		m := &x.Messages[i]
		switch {
		case p.ev.Type == "m.reaction" && rel.RelType == "m.annotation" && rel.Key != "":
			who := names[p.ev.Sender]
			if who == "" {
				who = p.ev.Sender
			}
			addReaction(m, rel.Key, who)
		case p.ev.Type == "m.room.message" && p.ev.Sender == m.AuthorID:
			c := p.ev.Content.NewContent
			if c == nil {
				c = &p.ev.Content
			}
			m.Edits = append(m.Edits, Edit{ID: p.ev.EventID, Time: time.UnixMilli(p.ev.TS).UTC(), Text: mxBody(c)})
			m.Edited = time.UnixMilli(p.ev.TS).UTC()
		default:
			x.Skipped = append(x.Skipped, Skip{p.entry, "relation not understood (" + rel.RelType + ")"})
		}
	}
	// Names learnt from later membership events, for authors seen earlier.
	for i := range x.Messages {
		if m := &x.Messages[i]; m.Author == "" {
			m.Author = names[m.AuthorID]
		}
	}
	return x, nil
}

// mxBody is the text of a message without the reply fallback (the
// quoted "> " lines before a blank line that replies start with).
func mxBody(c *mxContent) string {
	b := c.Body
	if c.RelatesTo != nil && c.RelatesTo.InReplyTo != nil && strings.HasPrefix(b, "> ") {
		if _, rest, ok := strings.Cut(b, "\n\n"); ok {
			b = rest
		}
	}
	return b
}

// mxFile finds an attachment in the export's folder for its kind: Element
// names it after the body, with the date before the extension.
func mxFile(fsys fs.FS, dir, msgtype, fname string) Attachment {
	folder := map[string]string{"m.image": "images", "m.video": "videos", "m.audio": "audio", "m.file": "files"}[msgtype]
	ext := path.Ext(fname)
	stem := strings.TrimSuffix(fname, ext)
	entries, err := fs.ReadDir(fsys, path.Join(dir, folder))
	if err == nil {
		for _, e := range entries {
			n := e.Name()
			if n == fname || (strings.HasPrefix(n, stem) && strings.HasSuffix(n, ext)) {
				return attachment(fsys, dir, path.Join(folder, n), fname)
			}
		}
	}
	return Attachment{Name: fname, Missing: true}
}

// addReaction counts who's reaction key on m.
func addReaction(m *Message, key, who string) {
	for i := range m.Reactions {
		if r := &m.Reactions[i]; r.Key == key {
			r.Users = append(r.Users, who)
			r.Count++
			return
		}
	}
	m.Reactions = append(m.Reactions, Reaction{Key: key, Count: 1, Users: []string{who}})
}
