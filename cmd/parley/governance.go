package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/api"
)

// maxAvatar is the largest avatar image the CLI hands to the daemon, which
// imports it into the media store (the daemon checks it again).
const maxAvatar = 16 << 20

// parley room invite ROOM USER
//
// Records the invite in the room and tells the invitee's devices, which
// list it in 'parley invites' (unless their invite policy drops it).
func runRoomInvite(c *cli, args []string) error {
	room, user, err := c.roomUser(c.flags(), args)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRoomInvite, api.RoomUserReq{Room: room, User: user}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "invited %s to %s (event %s)\n", user, room, r.Event)
	})
}

// parley room leave ROOM
func runRoomLeave(c *cli, args []string) error {
	room, err := c.roomArg(args)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRoomLeave, api.RoomReq{Room: room}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "left %s (event %s)\n", room, r.Event)
	})
}

// parley room kick ROOM USER [--reason R]
func runRoomKick(c *cli, args []string) error {
	fs := c.flags()
	reason := fs.String("reason", "", "the reason `R`, shown to the room")
	room, user, err := c.roomUser(fs, args)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRoomKick, api.RoomUserReq{Room: room, User: user, Reason: *reason}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "kicked %s from %s (event %s)\n", user, room, r.Event)
	})
}

// parley room ban ROOM USER [--reason R]
//
// A ban also hides the target's events that were written concurrently with
// it (on the far side of a partition), on every node.
func runRoomBan(c *cli, args []string) error {
	fs := c.flags()
	reason := fs.String("reason", "", "the reason `R`, shown to the room")
	room, user, err := c.roomUser(fs, args)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRoomBan, api.RoomUserReq{Room: room, User: user, Reason: *reason}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "banned %s from %s (event %s)\n", user, room, r.Event)
	})
}

// parley room unban ROOM USER
func runRoomUnban(c *cli, args []string) error {
	room, user, err := c.roomUser(c.flags(), args)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRoomUnban, api.RoomUserReq{Room: room, User: user}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "unbanned %s in %s (event %s); they may be invited again\n", user, room, r.Event)
	})
}

// parley room role ROOM USER admin|moderator|member|POWER
//
// Roles are power levels: admin 100, moderator 50, member 0. Only levels
// below the sender's own can be changed.
func runRoomRole(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 3, 3)
	if err != nil {
		return err
	}
	role, ok := parseRole(pos[2])
	if !ok {
		return c.usagef("bad role %q (use admin, moderator, member or a power level number)", pos[2])
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	user, err := c.user(pos[1])
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRoomRole, api.RoleReq{Room: room, User: user, Role: role}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "%s is now %s in %s (event %s)\n", user, role, room, r.Event)
	})
}

// parley room set ROOM [--name N] [--topic T] [--avatar FILE]
//
// Only the flags given change; --name "" clears the name.
func runRoomSet(c *cli, args []string) error {
	fs := c.flags()
	name := fs.String("name", "", "new room `NAME` (\"\" clears it)")
	topic := fs.String("topic", "", "new room `TOPIC` (\"\" clears it)")
	avatar := fs.String("avatar", "", "image `FILE` to use as the room's avatar (stored in the media store)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	set := flagsSet(fs)
	if !set["name"] && !set["topic"] && !set["avatar"] {
		return c.usagef("nothing to change (give --name, --topic or --avatar)")
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	req := api.RoomSetReq{Room: room}
	if set["name"] {
		req.Name = name
	}
	if set["topic"] {
		req.Topic = topic
	}
	if set["avatar"] {
		if req.AvatarPath, err = avatarPath(*avatar); err != nil {
			return err
		}
	}
	var r api.EventResp
	return call(c, api.EpRoomSet, req, &r, func(w io.Writer) {
		fmt.Fprintf(w, "updated %s (event %s)\n", room, r.Event)
	})
}

// parley room limits ROOM [--messages N] [--bytes N] [--join-work BITS]
//
// Without flags it shows the limits; with flags it changes those given (0
// lifts one). The limits bind members below the level that may set them.
func runRoomLimits(c *cli, args []string) error {
	fs := c.flags()
	msgs := fs.Int64("messages", 0, "at most `N` events per member device per minute (0: no limit)")
	bytes := fs.Int64("bytes", 0, "at most `N` bytes per member device per minute (0: no limit)")
	work := fs.Int64("join-work", 0, "joins of users not invited need a proof of work of `BITS` zero bits (0: none; 20 costs an honest joiner about half a second)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	set := flagsSet(fs)
	req := api.RoomLimitsReq{Room: room}
	if set["messages"] {
		req.Messages = msgs
	}
	if set["bytes"] {
		req.Bytes = bytes
	}
	if set["join-work"] {
		req.JoinWork = work
	}
	var r api.RoomLimitsResp
	return call(c, api.EpRoomLimits, req, &r, func(w io.Writer) {
		tw := table(w)
		fmt.Fprintf(tw, "room\t%s\n", r.Room)
		fmt.Fprintf(tw, "messages\t%s\n", perMinute(r.Messages, "events"))
		fmt.Fprintf(tw, "bytes\t%s\n", perMinute(r.Bytes, "bytes"))
		if r.JoinWork == 0 {
			fmt.Fprintf(tw, "join work\tnone\n")
		} else {
			fmt.Fprintf(tw, "join work\t%d bits (joins of users not invited)\n", r.JoinWork)
		}
		tw.Flush()
		if r.Event != "" {
			fmt.Fprintf(w, "updated %s (event %s)\n", room, r.Event)
		}
	})
}

// perMinute renders a per-device rate limit for people.
func perMinute(n int64, unit string) string {
	if n == 0 {
		return "no limit"
	}
	return fmt.Sprintf("%d %s per member device per minute", n, unit)
}

// parley redact ROOM EVENT [--reason R]
//
// The body disappears from the timeline and the disk of every node; the
// event itself stays, marked as redacted.
func runRedact(c *cli, args []string) error {
	fs := c.flags()
	reason := fs.String("reason", "", "the reason `R`, shown in place of the message")
	room, event, err := c.roomEventArgs(fs, args)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpRedact, api.RedactReq{Room: room, Event: event, Reason: *reason}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "redacted %s (event %s)\n", event, r.Event)
	})
}

// roomUser parses the ROOM USER arguments of a command with the flags fs.
func (c *cli) roomUser(fs *flag.FlagSet, args []string) (room, user string, err error) {
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return "", "", err
	}
	if room, err = c.room(pos[0]); err != nil {
		return "", "", err
	}
	if user, err = c.user(pos[1]); err != nil {
		return "", "", err
	}
	return room, user, nil
}

// parseRole accepts a role name or a power level number.
func parseRole(s string) (string, bool) {
	switch r := strings.ToLower(s); r {
	case "admin", "moderator", "member":
		return r, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "", false
	}
	return strconv.FormatInt(n, 10), true
}

// flagsSet names the flags given on the command line.
func flagsSet(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// avatarPath checks that path is an image of at most maxAvatar bytes and
// returns it absolute: the daemon reads it into the media store.
func avatarPath(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty --avatar file name")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("read the avatar: %v", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("read the avatar: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return "", fmt.Errorf("read the avatar %s: %v", path, err)
	case !st.Mode().IsRegular():
		return "", fmt.Errorf("the avatar %s is not a regular file", path)
	case st.Size() == 0:
		return "", fmt.Errorf("the avatar %s is empty", path)
	case st.Size() > maxAvatar:
		return "", fmt.Errorf("the avatar %s is larger than %d MiB (shrink the image)", path, maxAvatar>>20)
	}
	head, err := io.ReadAll(io.LimitReader(f, 512))
	if err != nil {
		return "", fmt.Errorf("read the avatar %s: %v", path, err)
	}
	if mime := http.DetectContentType(head); !strings.HasPrefix(mime, "image/") {
		return "", fmt.Errorf("the avatar %s is not an image (it looks like %s; use PNG, JPEG or GIF)", path, mime)
	}
	return abs, nil
}
