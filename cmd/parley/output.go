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

	"github.com/parley-p2p/parley/node"
)

// callTimeout bounds one request/response call to the daemon.
const callTimeout = 2 * time.Minute

// client finds the daemon of this home.
func (c *cli) client() (*node.Client, error) {
	cl, err := node.NewClient(c.home())
	if err != nil {
		return nil, c.explain(err)
	}
	return cl, nil
}

// call invokes endpoint ep. With --json it prints the daemon's answer as
// is, on one line; otherwise it decodes the answer into resp and calls human.
func call[Req, Resp any](c *cli, ep node.Endpoint[Req, Resp], req Req, resp *Resp, human func(w io.Writer)) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
	defer cancel()
	raw, err := ep.CallRaw(ctx, cl, req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("the daemon of %s did not answer within %v (see its log)", c.home(), callTimeout)
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
var hints = map[node.Code]string{
	node.CodeUnknownRoom:     "join it first: parley room join ROOM --via PEER",
	node.CodeRoomUnavailable: "connect to a member or host: --via MULTIADDR",
	node.CodeTypingOff:       "parley settings --typing on",
	node.CodePresenceOff:     "parley settings --presence on",
	node.CodeNotLinkCode:     "make one with 'parley device link'",
	node.CodeNoMaster:        "run 'parley device link' on the device that holds the user's master key",
	node.CodeUnknownDevice:   "see: parley device list",
}

// explain turns an error from the node package into the message users see.
func (c *cli) explain(err error) error {
	var ne *node.Error
	switch {
	case errors.Is(err, node.ErrNoDaemon):
		return fmt.Errorf("no daemon running for %s (start one with: parley daemon)", c.home())
	case errors.As(err, &ne):
		msg := strings.TrimPrefix(ne.Error(), "node: ")
		if h, ok := hints[node.CodeOf(err)]; ok {
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

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
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

// eventLine renders one timeline event for people.
func eventLine(e *node.TimelineEvent) string {
	when := fmtTime(e.TS)
	who := short(e.Sender)
	switch e.Type {
	case "message":
		body := e.Body
		switch {
		case e.Redacted:
			body = "[redacted]"
		case !e.Decrypted && body == "":
			body = "(encrypted; no key for it on this node)"
		}
		return fmt.Sprintf("%s  %s  %s%s", when, who, body, messageNotes(e))
	case "member":
		what := e.Membership
		if what == "" {
			what = "changed membership"
		}
		if e.StateKey != nil && *e.StateKey != e.Sender && *e.StateKey != "" {
			what += " " + short(*e.StateKey)
		}
		return fmt.Sprintf("%s  * %s %s", when, who, what)
	case "room", "create":
		return fmt.Sprintf("%s  * %s created the room", when, who)
	case "redact":
		return fmt.Sprintf("%s  * %s redacted %s", when, who, orNone(e.Redacts))
	case "power":
		return fmt.Sprintf("%s  * %s changed the roles", when, who)
	case "room.name", "room.topic", "room.avatar":
		return fmt.Sprintf("%s  * %s changed the room's %s", when, who, strings.TrimPrefix(e.Type, "room."))
	case "profile":
		return fmt.Sprintf("%s  * %s changed their profile", when, who)
	}
	return fmt.Sprintf("%s  * %s %s", when, who, e.Type)
}

// messageNotes renders what the projection adds to a message: its reply,
// thread, edit and reactions.
func messageNotes(e *node.TimelineEvent) string {
	var b strings.Builder
	if e.ReplyTo != "" && e.Thread == "" {
		fmt.Fprintf(&b, "  (reply to %s)", short(e.ReplyTo))
	}
	if e.Thread != "" {
		fmt.Fprintf(&b, "  (in thread %s)", short(e.Thread))
	}
	if e.Edited {
		b.WriteString("  (edited)")
	}
	if e.Replaces != "" {
		fmt.Fprintf(&b, "  (edit of %s)", short(e.Replaces))
	}
	if len(e.Mentions) > 0 {
		ws := make([]string, len(e.Mentions))
		for i, u := range e.Mentions {
			ws[i] = short(u)
		}
		fmt.Fprintf(&b, "  (mentions %s)", strings.Join(ws, " "))
	}
	keys := make([]string, 0, len(e.Reactions))
	for k := range e.Reactions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  [%s %d]", k, len(e.Reactions[k]))
	}
	return b.String()
}
