package importers

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Slack's workspace export: a zip with channels.json ([{id, name}]),
// users.json ([{id, name, real_name, profile: {display_name,
// real_name}}]) and one folder per channel of daily files
// (general/2024-01-02.json), each a list of messages {type, subtype, user,
// text, ts, thread_ts, edited: {ts}, reactions: [{name, users, count}],
// files: [{id, name}]}. A message's ts is its ID; a thread reply's
// thread_ts names the thread's first message. Files are links to Slack in a
// standard export; a file that some tools store at __uploads/ID/NAME is
// attached.

type slackChannel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type slackUser struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	RealName string `json:"real_name"`
	Profile  struct {
		DisplayName string `json:"display_name"`
		RealName    string `json:"real_name"`
	} `json:"profile"`
}

type slackMessage struct {
	Type        string `json:"type"`
	Subtype     string `json:"subtype"`
	User        string `json:"user"`
	UserProfile *struct {
		DisplayName string `json:"display_name"`
		RealName    string `json:"real_name"`
	} `json:"user_profile"`
	Text     string `json:"text"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts"`
	Edited   *struct {
		TS string `json:"ts"`
	} `json:"edited"`
	Reactions []struct {
		Name  string   `json:"name"`
		Users []string `json:"users"`
		Count int      `json:"count"`
	} `json:"reactions"`
	Files []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"files"`
}

var slackMention = regexp.MustCompile(`<@([A-Z0-9]+)(?:\|[^>]*)?>`)

// ParseSlack reads one channel of a Slack workspace export (channel: its
// name; "" when the export has one channel).
func ParseSlack(fsys fs.FS, channel string) (*Export, error) {
	var chans []slackChannel
	b, err := readFile(fsys, "channels.json")
	if err != nil {
		return nil, fmt.Errorf("importers: a Slack export has channels.json at its root: %w", err)
	}
	if err := decodeJSON("channels.json", b, &chans); err != nil {
		return nil, err
	}
	var users []slackUser
	if b, err := readFile(fsys, "users.json"); err == nil {
		if err := decodeJSON("users.json", b, &users); err != nil {
			return nil, err
		}
	}
	names := map[string]string{}
	for _, u := range users {
		for _, n := range []string{u.Profile.DisplayName, u.Profile.RealName, u.RealName, u.Name} {
			if n != "" {
				names[u.ID] = n
				break
			}
		}
	}
	var ch *slackChannel
	var all []string
	for i := range chans {
		all = append(all, chans[i].Name)
		if chans[i].Name == channel || (channel == "" && len(chans) == 1) {
			ch = &chans[i]
		}
	}
	if ch == nil || ch.Name == "" || !fs.ValidPath(ch.Name) || strings.Contains(ch.Name, "/") {
		if channel == "" {
			return nil, fmt.Errorf("importers: the export has %d channels (%s); name one with --channel", len(chans), strings.Join(all, ", "))
		}
		return nil, fmt.Errorf("importers: no channel %q in the export (it has %s)", channel, strings.Join(all, ", "))
	}
	days, err := fs.Glob(fsys, ch.Name+"/*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(days) // YYYY-MM-DD.json sorts by date
	x := &Export{Name: ch.Name, Chat: ch.ID}
	for _, day := range days {
		b, err := readFile(fsys, day)
		if err != nil {
			return nil, err
		}
		var msgs []slackMessage
		if err := decodeJSON(day, b, &msgs); err != nil {
			return nil, err
		}
		for i, m := range msgs {
			entry := fmt.Sprintf("%s[%d]", day, i)
			if m.Type != "message" {
				x.Skipped = append(x.Skipped, Skip{entry, fmt.Sprintf("not a message (%q)", m.Type)})
				continue
			}
			switch m.Subtype {
			case "", "thread_broadcast", "file_share", "me_message", "bot_message":
			default:
				x.Skipped = append(x.Skipped, Skip{entry, "system message (" + m.Subtype + ")"})
				continue
			}
			ts, err := unixString(m.TS)
			if err != nil {
				return nil, malformed("%s: ts: %v", entry, err)
			}
			author := names[m.User]
			if author == "" && m.UserProfile != nil {
				author = m.UserProfile.DisplayName
				if author == "" {
					author = m.UserProfile.RealName
				}
			}
			msg := Message{ID: m.TS, AuthorID: m.User, Author: author, Time: ts, Text: slackText(m.Text, names)}
			if m.ThreadTS != "" && m.ThreadTS != m.TS {
				msg.ReplyTo = m.ThreadTS
			}
			if m.Edited != nil && m.Edited.TS != "" {
				if msg.Edited, err = unixString(m.Edited.TS); err != nil {
					return nil, malformed("%s: edited.ts: %v", entry, err)
				}
			}
			for _, r := range m.Reactions {
				re := Reaction{Key: ":" + r.Name + ":", Count: max(r.Count, len(r.Users))}
				for _, u := range r.Users {
					n := names[u]
					if n == "" {
						n = u
					}
					re.Users = append(re.Users, n)
				}
				msg.Reactions = append(msg.Reactions, re)
			}
			for _, f := range m.Files {
				a := Attachment{Name: f.Name, Missing: true}
				if f.ID != "" && f.Name != "" && !strings.ContainsAny(f.ID+f.Name, "/\\") {
					a = attachment(fsys, ".", path.Join("__uploads", f.ID, f.Name), f.Name)
				}
				msg.Attachments = append(msg.Attachments, a)
			}
			if msg.Text == "" && len(msg.Attachments) == 0 {
				x.Skipped = append(x.Skipped, Skip{entry, "empty message"})
				continue
			}
			x.Messages = append(x.Messages, msg)
		}
	}
	// A message can appear twice (a thread broadcast); keep the first.
	seen := map[string]bool{}
	x.Messages = slices.DeleteFunc(x.Messages, func(m Message) bool {
		dup := seen[m.ID]
		seen[m.ID] = true
		return dup
	})
	return x, nil
}

// slackText turns Slack's markup back into text: user mentions become
// @name, and the &amp; &lt; &gt; escapes are undone.
func slackText(s string, names map[string]string) string {
	s = slackMention.ReplaceAllStringFunc(s, func(m string) string {
		id := slackMention.FindStringSubmatch(m)[1]
		if n, ok := names[id]; ok {
			return "@" + n
		}
		return "@" + id
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
