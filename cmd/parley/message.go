package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
)

// maxMessage is the largest message text the CLI sends. An event is at most
// 64 KiB with its envelope (crdt.MaxEventSize); this leaves room for it.
const maxMessage = 60000

// parley send ROOM TEXT|- [--markdown] [--reply-to EVENT] [--thread ROOT] [--mention USER]...
//
// The message is MIMI content: plain text, or with --markdown rich text
// rendered to sanitized HTML beside its plain version. "@USERID" in TEXT
// and every --mention USER (put in front when TEXT does not name it)
// mention that user: a link to parley:user/USERID showing the user's
// display name, and an entry in the message's mention list.
func runSend(c *cli, args []string) error {
	fs := c.flags()
	markdown := fs.Bool("markdown", false, "the text is Markdown (shown as sanitized HTML, with a plain version)")
	replyTo := fs.String("reply-to", "", "answer the message `EVENT`")
	thread := fs.String("thread", "", "post into the thread whose root is the message `ROOT`")
	var mentions multiFlag
	fs.Var(&mentions, "mention", "mention the user `USER` (a user ID; repeatable)")
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	text := pos[1]
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(c.stdin, 16*maxMessage))
		if err != nil {
			return fmt.Errorf("read the message from stdin: %v", err)
		}
		text = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case strings.TrimSpace(text) == "":
		return errors.New("empty message")
	case len(text) > maxMessage:
		return fmt.Errorf("message too long: %d bytes, the limit is %d (split it, or send it as a file)", len(text), maxMessage)
	case !utf8.ValidString(text):
		return errors.New("the message is not valid UTF-8 text")
	}
	for _, ev := range []*string{replyTo, thread} {
		if *ev != "" {
			if *ev, err = c.event(room, *ev); err != nil {
				return err
			}
		}
	}
	users, err := c.mentions(mentions)
	if err != nil {
		return err
	}
	var r api.EventResp
	req := api.SendReq{Room: room, Text: text, Markdown: *markdown, ReplyTo: *replyTo, Thread: *thread, Mentions: users}
	return call(c, api.EpSend, req, &r, func(w io.Writer) {
		fmt.Fprintln(w, r.Event)
	})
}

// parley history ROOM [--limit N] [--before EVENT] [--thread ROOT] [--versions EVENT] [--all]
//
// The visible timeline, oldest first: one entry per message with its edits,
// reactions and read markers folded in. --limit keeps the newest N entries
// (of those before EVENT, with --before); --thread lists one thread;
// --versions lists the original of one message and each of its edits, in
// the order that decides which is shown (the last). People's output leaves
// out the key-management events unless --all; --json lists every event.
func runHistory(c *cli, args []string) error {
	fs := c.flags()
	limit := fs.Int("limit", 0, "show at most the newest `N` events (0: the daemon's default)")
	before := fs.String("before", "", "only events before `EVENT`")
	after := fs.String("after", "", "only events after `EVENT` (with --limit: the oldest N of them)")
	around := fs.String("around", "", "`EVENT` and the events around it (with --limit: N in all, half of them older)")
	thread := fs.String("thread", "", "only the thread whose root is the message `ROOT`")
	versions := fs.String("versions", "", "the original and every edit of the message `EVENT`")
	all := fs.Bool("all", false, "also list the key-management events (device, rotate, keyfwd)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return c.usagef("bad --limit %d (want a positive number)", *limit)
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	for _, ev := range []*string{before, after, around, thread, versions} {
		if *ev != "" {
			if *ev, err = c.event(room, *ev); err != nil {
				return err
			}
		}
	}
	if *versions != "" && (*before != "" || *after != "" || *around != "" || *thread != "" || *limit != 0) {
		return c.usagef("--versions lists one message: it goes without --limit, --before, --after, --around and --thread")
	}
	if n := len(slices.DeleteFunc([]string{*before, *after, *around}, func(s string) bool { return s == "" })); n > 1 {
		return c.usagef("--before, --after and --around exclude each other")
	}
	var r api.HistoryResp
	return call(c, api.EpHistory, api.HistoryReq{Room: room, Limit: *limit, Before: *before, After: *after, Around: *around, Thread: *thread, Versions: *versions, Quiet: !c.json && !*all}, &r, func(w io.Writer) {
		if len(r.Events) == 0 {
			fmt.Fprintln(w, "no events")
			return
		}
		for i := range r.Events {
			fmt.Fprintln(w, eventLine(&r.Events[i], labels{r.Refs, r.Names, pos[0]}))
		}
	})
}

// mentions resolves the users of --mention.
func (c *cli) mentions(users []string) ([]string, error) {
	var out []string
	for _, u := range users {
		id, err := c.user(u)
		if err != nil {
			return nil, fmt.Errorf("--mention: %v", err)
		}
		out = append(out, id)
	}
	return out, nil
}

// parley watch [ROOM]
//
// Streams new events until interrupted. With --json every line is one
// object with a "kind".
func runWatch(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 0, 1)
	if err != nil {
		return err
	}
	var req api.WatchReq
	if len(pos) == 1 {
		if req.Room, err = c.room(pos[0]); err != nil {
			return err
		}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	err = api.EpWatch.Stream(c.ctx, cl, req, func(item api.WatchItem, line json.RawMessage) error {
		if item.Kind == "error" {
			var e struct {
				Error string `json:"error"`
			}
			json.Unmarshal(line, &e)
			return fmt.Errorf("watch ended: %s", e.Error)
		}
		if c.json {
			return c.printRaw(line)
		}
		if item.Kind == api.WatchReady {
			return nil
		}
		prefix := ""
		if req.Room == "" {
			prefix = "[" + short(item.Room) + "] "
		}
		if item.Kind == api.WatchResync {
			if item.Room == "" {
				prefix = ""
			}
			_, err := fmt.Fprintf(c.stdout, "%s(more events than shown here: see 'parley history')\n", prefix)
			return err
		}
		if item.MentionsMe {
			prefix += "(mentions you) "
		}
		if item.Event != nil {
			l := labels{refs: map[string]string{item.Event.ID: item.Ref}, names: map[string]string{item.Event.Sender: item.Name}}
			if req.Room != "" {
				l.room = pos[0]
			}
			_, err := fmt.Fprintf(c.stdout, "%s%s\n", prefix, eventLine(item.Event, l))
			return err
		}
		if item.Signal != nil {
			_, err := fmt.Fprintf(c.stdout, "%s%s\n", prefix, signalLine(item.Kind, item.Signal))
			return err
		}
		_, err := fmt.Fprintf(c.stdout, "%s%s\n", prefix, item.Kind)
		return err
	})
	if err != nil {
		return c.explain(err)
	}
	if c.ctx.Err() == nil {
		return errors.New("the daemon ended the stream (did it stop?)")
	}
	return nil
}
