package importers

import (
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// DiscordChatExporter's JSON: {guild, channel: {id, name, ...}, messages:
// [{id, type, timestamp, timestampEdited, content, author: {id, name,
// nickname}, attachments: [{id, url, fileName}], reactions: [{emoji:
// {name}, count, users: [{name, nickname}]}], reference: {messageId}}]}.
// With --media the attachments' url is a path relative to the JSON file;
// without, a Discord CDN address (the file is then not in the export).

type dcExport struct {
	Guild struct {
		ID   flexString `json:"id"`
		Name string     `json:"name"`
	} `json:"guild"`
	Channel *struct {
		ID   flexString `json:"id"`
		Name string     `json:"name"`
	} `json:"channel"`
	Messages []dcMessage `json:"messages"`
}

type dcUser struct {
	ID       flexString `json:"id"`
	Name     string     `json:"name"`
	Nickname string     `json:"nickname"`
}

func (u dcUser) display() string {
	if u.Nickname != "" {
		return u.Nickname
	}
	return u.Name
}

type dcMessage struct {
	ID          flexString `json:"id"`
	Type        string     `json:"type"`
	Timestamp   string     `json:"timestamp"`
	Edited      *string    `json:"timestampEdited"`
	Content     string     `json:"content"`
	Author      dcUser     `json:"author"`
	Attachments []struct {
		URL      string `json:"url"`
		FileName string `json:"fileName"`
	} `json:"attachments"`
	Reactions []struct {
		Emoji struct {
			Name string `json:"name"`
			Code string `json:"code"`
		} `json:"emoji"`
		Count int      `json:"count"`
		Users []dcUser `json:"users"`
	} `json:"reactions"`
	Reference *struct {
		MessageID flexString `json:"messageId"`
	} `json:"reference"`
}

// ParseDiscord reads a DiscordChatExporter JSON export of one channel
// (main: its JSON file, "" for the only one at the root).
func ParseDiscord(fsys fs.FS, main string) (*Export, error) {
	var d dcExport
	name, err := readMainJSON(fsys, main, "DiscordChatExporter JSON file", &d, "*.json")
	if err != nil {
		return nil, err
	}
	if d.Channel == nil || d.Messages == nil {
		return nil, malformed("%s has no \"channel\" or \"messages\": not a DiscordChatExporter JSON export", name)
	}
	dir := path.Dir(name)
	x := &Export{Name: d.Channel.Name, Chat: string(d.Channel.ID)}
	for i, m := range d.Messages {
		entry := fmt.Sprintf("%s messages[%d]", name, i)
		if m.ID == "" {
			return nil, malformed("%s: no id", entry)
		}
		switch m.Type {
		case "Default", "Reply", "":
		default:
			x.Skipped = append(x.Skipped, Skip{entry, "system message (" + m.Type + ")"})
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
		if err != nil {
			return nil, malformed("%s (id %s): timestamp %q is not an RFC 3339 time", entry, m.ID, m.Timestamp)
		}
		msg := Message{ID: string(m.ID), AuthorID: string(m.Author.ID), Author: m.Author.display(), Time: ts.UTC(), Text: m.Content}
		if m.Edited != nil && *m.Edited != "" {
			t, err := time.Parse(time.RFC3339Nano, *m.Edited)
			if err != nil {
				return nil, malformed("%s (id %s): timestampEdited %q is not an RFC 3339 time", entry, m.ID, *m.Edited)
			}
			msg.Edited = t.UTC()
		}
		if m.Reference != nil {
			msg.ReplyTo = string(m.Reference.MessageID)
		}
		for _, r := range m.Reactions {
			re := Reaction{Key: r.Emoji.Name, Count: r.Count}
			if re.Key == "" {
				re.Key = ":" + r.Emoji.Code + ":"
			}
			for _, u := range r.Users {
				re.Users = append(re.Users, u.display())
			}
			re.Count = max(re.Count, len(re.Users))
			msg.Reactions = append(msg.Reactions, re)
		}
		for _, a := range m.Attachments {
			if strings.Contains(a.URL, "://") {
				msg.Attachments = append(msg.Attachments, Attachment{Name: a.FileName, Missing: true})
				continue
			}
			msg.Attachments = append(msg.Attachments, attachment(fsys, dir, strings.ReplaceAll(a.URL, `\`, "/"), a.FileName))
		}
		if msg.Text == "" && len(msg.Attachments) == 0 {
			x.Skipped = append(x.Skipped, Skip{entry, "no content (embed or sticker only)"})
			continue
		}
		x.Messages = append(x.Messages, msg)
	}
	return x, nil
}
