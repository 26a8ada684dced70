package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
)

// callTimeout bounds one request/response call to the daemon.
const callTimeout = 2 * time.Minute

// longCallTimeout bounds a call whose work grows with the data (export,
// import, media get): a history of 100,000 messages takes minutes on a
// busy machine, and Ctrl-C ends the wait sooner.
const longCallTimeout = 2 * time.Hour

// client finds the daemon of this home.
func (c *cli) client() (*api.Client, error) {
	cl, err := api.NewClient(c.home())
	if err != nil {
		return nil, c.explain(err)
	}
	return cl, nil
}

// call invokes endpoint ep. With --json it prints the daemon's answer as
// is, on one line; otherwise it decodes the answer into resp and calls human.
func call[Req, Resp any](c *cli, ep api.Endpoint[Req, Resp], req Req, resp *Resp, human func(w io.Writer)) error {
	return callWithin(c, callTimeout, ep, req, resp, human)
}

// callLong is call for the methods whose work grows with the data
// (longCallTimeout).
func callLong[Req, Resp any](c *cli, ep api.Endpoint[Req, Resp], req Req, resp *Resp, human func(w io.Writer)) error {
	return callWithin(c, longCallTimeout, ep, req, resp, human)
}

func callWithin[Req, Resp any](c *cli, limit time.Duration, ep api.Endpoint[Req, Resp], req Req, resp *Resp, human func(w io.Writer)) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, limit)
	defer cancel()
	raw, err := ep.CallRaw(ctx, cl, req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the daemon of %s did not answer within %v (see its log)", c.home(), limit)
		}
		return c.explain(err)
	}
	if c.json {
		return c.printRaw(raw)
	}
	if err := json.Unmarshal(raw, resp); err != nil {
		return fmt.Errorf("cannot read the daemon's answer to %s: %v", ep.Method, err)
	}
	human(c.stdout)
	return nil
}

// hints is the advice the CLI adds to an error from the daemon, by code:
// the node's messages name no commands.
var hints = map[api.Code]string{
	api.CodeUnknownRoom:     "join it first: parley room join ROOM --via PEER",
	api.CodeRoomUnavailable: "connect to a member or host: --via MULTIADDR",
	api.CodeTypingOff:       "parley settings --typing on",
	api.CodePresenceOff:     "parley settings --presence on",
	api.CodeNotLinkCode:     "make one with 'parley device link'",
	api.CodeNoMaster:        "run 'parley device link' on the device that holds the user's master key",
	api.CodeUnknownDevice:   "see: parley device list",
}

// explain turns an error from the daemon or the client into the message users see.
func (c *cli) explain(err error) error {
	var ne *api.Error
	switch {
	case errors.Is(err, api.ErrNoDaemon):
		return fmt.Errorf("no daemon running for %s (start one with: parley daemon)", c.home())
	case errors.As(err, &ne):
		msg := strings.TrimPrefix(ne.Error(), "node: ")
		if h, ok := hints[api.CodeOf(err)]; ok {
			msg += " (" + h + ")"
		}
		return errors.New(msg)
	}
	return err
}

// printRaw prints one JSON value on one line.
func (c *cli) printRaw(raw []byte) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return fmt.Errorf("the daemon answered malformed JSON: %v", err)
	}
	b.WriteByte('\n')
	_, err := c.stdout.Write(b.Bytes())
	return err
}

// printJSON prints v as one JSON object on one line.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes aligned columns; call flush when done.
func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// short abbreviates an opaque identifier for people.
func short(id string) string {
	if len(id) <= 16 || !utf8.ValidString(id) {
		return id
	}
	return id[:8] + "…" + id[len(id)-6:]
}

// orNone renders a one-line field (a name, a topic) for people: "-" when
// empty, control characters escaped, newlines and tabs included, so that
// it stays in its line and column.
func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return oneLineTerm(s)
}

func fmtTime(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).Local().Format("2006-01-02 15:04:05")
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// labels are what a history answer adds for people: short event
// references and display names (api.HistoryResp Refs and Names).
type labels struct {
	refs, names map[string]string
	room        string // the ROOM argument as given, for commands shown
}

func (l labels) roomArg() string {
	if l.room == "" || strings.ContainsAny(l.room, " \t\n\"'\\$`") {
		return "ROOM"
	}
	return oneLineTerm(l.room)
}

// ref is an event's short reference, or its abbreviated ID.
func (l labels) ref(id string) string {
	if r := l.refs[id]; r != "" {
		return r
	}
	return short(id)
}

// name is a user's display name, or the abbreviated ID; a name shared by
// another user of the answer gets the ID beside it.
func (l labels) name(user string) string {
	n := l.names[user]
	if n == "" {
		return short(user)
	}
	for u, o := range l.names {
		if o == n && u != user {
			return oneLineTerm(n) + " (" + short(user) + ")"
		}
	}
	return oneLineTerm(n)
}

// eventLine renders one timeline event for people: when, its reference
// (every command takes it in place of the ID), who, what.
func eventLine(e *api.TimelineEvent, l labels) string {
	head := fmt.Sprintf("%s  %s  ", fmtTime(e.TS), l.ref(e.ID))
	who := l.name(e.Sender)
	switch e.Type {
	case "message":
		body := e.Body
		switch {
		case e.Redacted:
			body = "[redacted]"
		case !e.Decrypted && body == "":
			body = "(encrypted; no key for it on this node)"
		}
		if e.Media != nil && !e.Redacted {
			// The summary's first line describes the file ("[File: NAME,
			// SIZE] LINK"); what follows is the caption.
			first, caption, _ := strings.Cut(body, "\n")
			if i := strings.Index(first, " parley:media/"); i >= 0 {
				first = first[:i]
			}
			first = strings.TrimSuffix(strings.TrimPrefix(first, "["), "]")
			body = caption
			if body != "" {
				body += "  "
			}
			body += fmt.Sprintf("[%s; save it with: parley media save %s %s]", first, l.roomArg(), l.ref(e.ID))
		}
		// Continuation lines are indented: a message cannot pass for
		// other lines of the history.
		body = strings.ReplaceAll(body, "\n", "\n      ")
		return fmt.Sprintf("%s%s: %s%s", head, who, body, messageNotes(e, l))
	case "member":
		what := e.Membership
		switch what {
		case "":
			what = "changed membership"
		case "join":
			what = "joined"
		case "leave":
			what = "left"
		case "invite":
			what = "invited"
		case "ban":
			what = "banned"
		}
		if e.StateKey != nil && *e.StateKey != e.Sender && *e.StateKey != "" {
			what += " " + l.name(*e.StateKey)
		}
		return fmt.Sprintf("%s* %s %s", head, who, what)
	case "room", "create":
		return fmt.Sprintf("%s* %s created the room", head, who)
	case "redact":
		return fmt.Sprintf("%s* %s redacted %s", head, who, l.ref(orNone(e.Redacts)))
	case "power":
		return fmt.Sprintf("%s* %s changed the roles", head, who)
	case "room.name", "room.topic", "room.avatar":
		what := strings.TrimPrefix(e.Type, "room.")
		switch {
		case e.Redacted || !e.Decrypted:
			return fmt.Sprintf("%s* %s changed the %s", head, who, what)
		case e.Body == "":
			return fmt.Sprintf("%s* %s removed the %s", head, who, what)
		case what == "avatar":
			return fmt.Sprintf("%s* %s changed the avatar", head, who)
		}
		return fmt.Sprintf("%s* %s changed the %s to %q", head, who, what, e.Body)
	case "join_rule":
		return fmt.Sprintf("%s* %s made the room %s", head, who, orNone(e.Body))
	case "profile":
		return fmt.Sprintf("%s* %s changed their profile", head, who)
	case "device":
		return fmt.Sprintf("%s* %s added a device", head, who)
	case "rotate":
		return fmt.Sprintf("%s* %s rotated the room key", head, who)
	case "keyfwd":
		return fmt.Sprintf("%s* %s forwarded room keys", head, who)
	}
	return fmt.Sprintf("%s* %s %s", head, who, e.Type)
}

// messageNotes renders what the projection adds to a message: its reply,
// thread, edit and reactions.
func messageNotes(e *api.TimelineEvent, l labels) string {
	var b strings.Builder
	if e.ReplyTo != "" && e.Thread == "" {
		fmt.Fprintf(&b, "  (reply to %s)", l.ref(e.ReplyTo))
	}
	if e.Thread != "" {
		fmt.Fprintf(&b, "  (in thread %s)", l.ref(e.Thread))
	}
	if e.Edited {
		b.WriteString("  (edited)")
	}
	if e.Replaces != "" {
		fmt.Fprintf(&b, "  (edit of %s)", l.ref(e.Replaces))
	}
	if len(e.Mentions) > 0 {
		ws := make([]string, len(e.Mentions))
		for i, u := range e.Mentions {
			ws[i] = l.name(u)
		}
		fmt.Fprintf(&b, "  (mentions %s)", strings.Join(ws, ", "))
	}
	keys := make([]string, 0, len(e.Reactions))
	for k := range e.Reactions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  [%s %d]", oneLineTerm(k), len(e.Reactions[k]))
	}
	return b.String()
}
