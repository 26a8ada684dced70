package importers

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// Telegram Desktop's "Export chat history" in JSON: result.json with the
// chat's name, type and id and its messages, and media in folders beside it
// (photos/, files/, video_files/, voice_messages/, ...). A message has id,
// type ("message" or "service"), date and date_unixtime, from and from_id,
// text (a string or an array of strings and {type, text} entities),
// reply_to_message_id, edited_unixtime, reactions ([{emoji, count,
// recent: [{from}]}]), and photo or file (a relative path, or a note that
// the file was not included).

type tgExport struct {
	Name     string      `json:"name"`
	Type     string      `json:"type"`
	ID       flexString  `json:"id"`
	Messages []tgMessage `json:"messages"`
	Chats    *struct{}   `json:"chats"` // present in a whole-account export
}

type tgMessage struct {
	ID             flexString      `json:"id"`
	Type           string          `json:"type"`
	DateUnix       flexString      `json:"date_unixtime"`
	Date           string          `json:"date"`
	EditedUnix     flexString      `json:"edited_unixtime"`
	From           *string         `json:"from"`
	FromID         flexString      `json:"from_id"`
	Actor          string          `json:"actor"`
	Text           json.RawMessage `json:"text"`
	ReplyTo        flexString      `json:"reply_to_message_id"`
	Photo          string          `json:"photo"`
	File           string          `json:"file"`
	FileName       string          `json:"file_name"`
	MediaType      string          `json:"media_type"`
	ForwardedFrom  string          `json:"forwarded_from"`
	Reactions      []tgReaction    `json:"reactions"`
	Action         string          `json:"action"`
	StickerEmoji   string          `json:"sticker_emoji"`
	Thumbnail      string          `json:"thumbnail"`
	ContactInfo    json.RawMessage `json:"contact_information"`
	LocationInfo   json.RawMessage `json:"location_information"`
	Poll           json.RawMessage `json:"poll"`
	SelfDestructIn json.RawMessage `json:"self_destruct_period_seconds"`
}

type tgReaction struct {
	Type   string `json:"type"`
	Count  int    `json:"count"`
	Emoji  string `json:"emoji"`
	Recent []struct {
		From   string     `json:"from"`
		FromID flexString `json:"from_id"`
	} `json:"recent"`
}

// ParseTelegram reads a Telegram Desktop JSON export (main: its
// result.json, "" for the one at the root).
func ParseTelegram(fsys fs.FS, main string) (*Export, error) {
	var t tgExport
	name, err := readMainJSON(fsys, main, "Telegram result.json", &t, "result.json", "*.json")
	if err != nil {
		return nil, err
	}
	if t.Chats != nil && t.Messages == nil {
		return nil, malformed("%s is a whole-account export; export one chat (Export chat history in the chat's menu)", name)
	}
	if t.Messages == nil {
		return nil, malformed("%s has no \"messages\" list: not a Telegram chat export", name)
	}
	dir := path.Dir(name)
	x := &Export{Name: t.Name, Chat: string(t.ID)}
	for i, m := range t.Messages {
		entry := fmt.Sprintf("%s messages[%d]", name, i)
		if m.ID == "" {
			return nil, malformed("%s: no id", entry)
		}
		if m.Type == "service" {
			x.Skipped = append(x.Skipped, Skip{entry, "service message (" + m.Action + ")"})
			continue
		}
		if m.Type != "message" {
			x.Skipped = append(x.Skipped, Skip{entry, fmt.Sprintf("unknown type %q", m.Type)})
			continue
		}
		ts, err := tgTime(m.DateUnix, m.Date)
		if err != nil {
			return nil, malformed("%s (id %s): date: %v", entry, m.ID, err)
		}
		text, err := tgText(m.Text)
		if err != nil {
			return nil, malformed("%s (id %s): text: %v", entry, m.ID, err)
		}
		msg := Message{ID: string(m.ID), AuthorID: string(m.FromID), Time: ts, Text: text, ReplyTo: string(m.ReplyTo)}
		if m.From != nil {
			msg.Author = *m.From
		}
		if msg.Author == "" && msg.AuthorID == "" {
			msg.Author = "Deleted Account"
		}
		if m.ForwardedFrom != "" {
			msg.Text = "Forwarded from " + m.ForwardedFrom + "\n" + msg.Text
		}
		if m.StickerEmoji != "" && msg.Text == "" {
			msg.Text = m.StickerEmoji
		}
		if m.EditedUnix != "" {
			if msg.Edited, err = unixString(string(m.EditedUnix)); err != nil {
				return nil, malformed("%s (id %s): edited_unixtime: %v", entry, m.ID, err)
			}
		}
		for _, r := range m.Reactions {
			key := r.Emoji
			if key == "" {
				key = r.Type
			}
			re := Reaction{Key: key, Count: r.Count}
			for _, u := range r.Recent {
				re.Users = append(re.Users, u.From)
			}
			re.Count = max(re.Count, len(re.Users))
			msg.Reactions = append(msg.Reactions, re)
		}
		for _, p := range []struct{ path, name string }{{m.Photo, ""}, {m.File, m.FileName}} {
			if p.path == "" {
				continue
			}
			if strings.HasPrefix(p.path, "(") { // "(File not included. Change data exporting settings to download.)"
				n := p.name
				if n == "" {
					n = "file"
				}
				msg.Attachments = append(msg.Attachments, Attachment{Name: n, Missing: true})
				continue
			}
			msg.Attachments = append(msg.Attachments, attachment(fsys, dir, p.path, p.name))
		}
		if msg.Text == "" && len(msg.Attachments) == 0 {
			why := "no text and no file"
			switch {
			case len(m.Poll) > 0:
				why = "poll"
			case len(m.ContactInfo) > 0:
				why = "shared contact"
			case len(m.LocationInfo) > 0:
				why = "shared location"
			}
			x.Skipped = append(x.Skipped, Skip{entry, why})
			continue
		}
		x.Messages = append(x.Messages, msg)
	}
	return x, nil
}

// tgTime reads date_unixtime, or the older exports' local date.
func tgTime(unix flexString, date string) (time.Time, error) {
	if unix != "" {
		return unixString(string(unix))
	}
	t, err := time.Parse("2006-01-02T15:04:05", date)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date", date)
	}
	return t, nil
}

// tgText flattens Telegram's text: a string, or an array of strings and
// entities with a "text" field.
func tgText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", fmt.Errorf("neither a string nor a list")
	}
	var b strings.Builder
	for i, p := range parts {
		if json.Unmarshal(p, &s) == nil {
			b.WriteString(s)
			continue
		}
		var ent struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(p, &ent); err != nil || ent.Text == nil {
			return "", fmt.Errorf("part %d is neither a string nor an entity with text", i)
		}
		b.WriteString(*ent.Text)
	}
	return b.String(), nil
}
