package main

import (
	"fmt"
	"io"

	"github.com/parley-p2p/parley/api"
)

// parley typing ROOM [on|off] [--stop]
//
// A typing notification: ephemeral (never stored), it lapses after 30 s
// unless renewed; "off" or --stop ends it at once.
func runTyping(c *cli, args []string) error {
	fs := c.flags()
	stop := fs.Bool("stop", false, "say you stopped typing")
	pos, err := c.parse(fs, args, 1, 2)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	on := !*stop
	if len(pos) == 2 {
		switch pos[1] {
		case "on":
		case "off":
			on = false
		default:
			return c.usagef("bad typing state %q (want on or off)", pos[1])
		}
	}
	var r api.Empty
	return call(c, api.EpTyping, api.TypingReq{Room: room, On: on}, &r, func(w io.Writer) {
		if on {
			fmt.Fprintln(w, "typing")
		} else {
			fmt.Fprintln(w, "stopped typing")
		}
	})
}

// parley presence online|away|offline
// parley presence get [USER]
//
// Setting presence tells every room this user shares (ephemeral, with the
// time this user was last active); get shows what this node last heard.
func runPresence(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 2)
	if err != nil {
		return err
	}
	var r api.PresenceResp
	human := func(w io.Writer) {
		fmt.Fprintf(w, "%s %s (last active %s)\n", short(r.User), r.Presence, fmtTime(r.LastActiveMS))
	}
	switch pos[0] {
	case "online", "away", "offline":
		if len(pos) > 1 {
			return c.usagef("unexpected argument %q", pos[1])
		}
		return call(c, api.EpPresence, api.PresenceReq{Presence: pos[0]}, &r, human)
	case "get":
		var req api.UserReq
		if len(pos) == 2 {
			if req.User, err = c.user(pos[1]); err != nil {
				return err
			}
		}
		return call(c, api.EpPresenceGet, req, &r, human)
	}
	return c.usagef("bad presence %q (want online, away, offline or get)", pos[0])
}

// parley settings [--typing on|off] [--presence on|off]
//
// Whether this node sends and shows typing notifications and presence.
// Without flags: show the settings.
func runSettings(c *cli, args []string) error {
	fs := c.flags()
	typing := fs.String("typing", "", "send and show typing notifications: `on` or off")
	presence := fs.String("presence", "", "send and show presence: `on` or off")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var req api.SettingsReq
	for _, f := range []struct {
		name string
		v    string
		dst  **bool
	}{{"typing", *typing, &req.Typing}, {"presence", *presence, &req.Presence}} {
		switch f.v {
		case "":
		case "on", "off":
			on := f.v == "on"
			*f.dst = &on
		default:
			return c.usagef("bad --%s %q (want on or off)", f.name, f.v)
		}
	}
	var r api.SettingsResp
	return call(c, api.EpSettings, req, &r, func(w io.Writer) {
		fmt.Fprintf(w, "typing %s\npresence %s\n", onOff(r.Typing), onOff(r.Presence))
	})
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// signalLine renders a receipt, typing or presence line of watch.
func signalLine(kind string, s *api.Signal) string {
	who := short(s.User)
	switch kind {
	case "receipt":
		return fmt.Sprintf("* %s read up to %s", who, short(s.Read))
	case "typing":
		if s.Typing != nil && *s.Typing {
			return fmt.Sprintf("* %s is typing", who)
		}
		return fmt.Sprintf("* %s stopped typing", who)
	case "presence":
		return fmt.Sprintf("* %s is %s (last active %s)", who, s.Presence, fmtTime(s.LastActiveMS))
	}
	return kind
}
