package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node"
)

// parley room create [--name N] [--topic T] [--public] [--history shared|joined] [--plaintext|--encrypted]
//
// The creator is the room's admin. A room is invite-only unless --public.
// With history "shared" (the default) new members read history from before
// they joined; with "joined" only from their join on. Private rooms are
// end-to-end encrypted unless --plaintext; public rooms are plaintext
// unless --encrypted.
func runRoomCreate(c *cli, args []string) error {
	fs := c.flags()
	name := fs.String("name", "", "room `NAME`")
	topic := fs.String("topic", "", "room `TOPIC`")
	public := fs.Bool("public", false, "anyone may join (default: invite only)")
	history := fs.String("history", "shared", "`MODE` shared: members read all history; joined: only from their join on")
	plain := fs.Bool("plaintext", false, "no end-to-end encryption (the default for --public rooms)")
	enc := fs.Bool("encrypted", false, "end-to-end encryption (the default for private rooms)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *history != "shared" && *history != "joined" {
		return c.usagef("bad --history %q (use shared or joined)", *history)
	}
	if *plain && *enc {
		return c.usagef("--plaintext and --encrypted exclude each other")
	}
	req := api.RoomCreateReq{Name: *name, Topic: *topic, Public: *public, History: *history}
	if *plain || *enc {
		req.Encrypted = enc
	}
	var r api.RoomResp
	return call(c, api.EpRoomCreate, req, &r, func(w io.Writer) {
		fmt.Fprintln(w, r.Room)
	})
}

// parley room list
func runRoomList(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r api.RoomListResp
	return call(c, api.EpRoomList, api.Empty{}, &r, func(w io.Writer) {
		if len(r.Rooms) == 0 {
			fmt.Fprintln(w, "no rooms (create one with: parley room create)")
			return
		}
		tw := table(w)
		fmt.Fprintln(tw, "ROOM\tNAME\tMEMBERSHIP")
		for _, room := range r.Rooms {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", room.Room, orNone(room.Name), room.Membership)
		}
		tw.Flush()
	})
}

// parley room info ROOM
func runRoomInfo(c *cli, args []string) error {
	room, err := c.roomArg(args)
	if err != nil {
		return err
	}
	var r api.RoomInfoResp
	return call(c, api.EpRoomInfo, api.RoomReq{Room: room}, &r, func(w io.Writer) {
		tw := table(w)
		fmt.Fprintf(tw, "room\t%s\n", r.Room)
		fmt.Fprintf(tw, "name\t%s\n", orNone(r.Name))
		fmt.Fprintf(tw, "topic\t%s\n", orNone(r.Topic))
		fmt.Fprintf(tw, "avatar\t%s\n", orNone(r.Avatar))
		if a := r.AvatarMedia; a != nil {
			fmt.Fprintf(tw, "\t%s %dx%d (fetch with: parley media get %s#%s -o FILE)\n", a.MIME, a.Width, a.Height, a.CID, a.Key)
		}
		fmt.Fprintf(tw, "join rule\t%s\n", orNone(r.JoinRule))
		fmt.Fprintf(tw, "history\t%s\n", orNone(r.History))
		fmt.Fprintf(tw, "encrypted\t%v (%d member devices)\n", r.Encrypted, len(r.Devices))
		fmt.Fprintf(tw, "events\t%d held, %d missing, %d pending\n", r.Sync.Events, r.Sync.Missing, r.Sync.Pending)
		fmt.Fprintf(tw, "heads\t%s\n", orNone(strings.Join(r.Sync.Heads, " ")))
		fmt.Fprintf(tw, "sync peers\t%d\n", r.Sync.SyncPeers)
		tw.Flush()
		if r.Sync.SyncPeers == 0 && r.Sync.Missing > 0 {
			fmt.Fprintf(w, "\n!!! no peer that serves this room is reachable: %d missing events wait for one\n", r.Sync.Missing)
		}
		if len(r.Members) == 0 {
			return
		}
		fmt.Fprintln(w)
		tw = table(w)
		fmt.Fprintln(tw, "MEMBER\tNAME\tMEMBERSHIP\tROLE\tPOWER\tVERIFIED")
		for _, m := range r.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.User, orNone(m.DisplayName), m.Membership, orNone(m.Role), fmtPower(m.Power), yesNo(m.Verified))
		}
		tw.Flush()
		for _, wn := range r.Warnings {
			fmt.Fprintf(w, "\n!!! %s\n", wn.Message)
		}
	})
}

// parley room join ROOM [--via MULTIADDR]...
//
// --via names peers that hold the room, for a node that does not know any.
func runRoomJoin(c *cli, args []string) error {
	req, err := c.roomVia(args)
	if err != nil {
		return err
	}
	var r api.RoomEventResp
	return call(c, api.EpRoomJoin, req, &r, func(w io.Writer) {
		if r.Event == "" {
			fmt.Fprintf(w, "already in %s\n", r.Room)
			return
		}
		fmt.Fprintf(w, "joined %s (event %s)\n", r.Room, r.Event)
	})
}

// roomVia parses ROOM [--via MULTIADDR]..., the arguments of room join and
// room host.
func (c *cli) roomVia(args []string) (api.RoomJoinReq, error) {
	fs := c.flags()
	var via multiFlag
	fs.Var(&via, "via", "reach the room through the peer at `MULTIADDR` (repeatable)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return api.RoomJoinReq{}, err
	}
	if strings.HasPrefix(pos[0], node.RoomLinkPrefix) {
		id, linkVia, err := node.ParseRoomLink(pos[0])
		if err != nil {
			return api.RoomJoinReq{}, c.explain(err)
		}
		pos[0], via = id.String(), append(via, linkVia...)
	}
	room, err := c.room(pos[0])
	if err != nil {
		return api.RoomJoinReq{}, err
	}
	req := api.RoomJoinReq{Room: room}
	for _, v := range via {
		a, err := parseAddr(v, true)
		if err != nil {
			return api.RoomJoinReq{}, err
		}
		req.Via = append(req.Via, a)
	}
	return req, nil
}

// parley room host ROOM [--via MULTIADDR]...
//
// Keep a copy of a room without being a member: the node stores and serves
// its log (ciphertext in an encrypted room) so that members reach each
// other through it. It holds no key and reads nothing.
func runRoomHost(c *cli, args []string) error {
	req, err := c.roomVia(args)
	if err != nil {
		return err
	}
	var r api.RoomResp
	return call(c, api.EpRoomHost, req, &r, func(w io.Writer) {
		fmt.Fprintf(w, "hosting %s\n", r.Room)
	})
}

// parley room unhost ROOM
func runRoomUnhost(c *cli, args []string) error {
	room, err := c.roomArg(args)
	if err != nil {
		return err
	}
	var r api.RoomResp
	return call(c, api.EpRoomUnhost, api.RoomReq{Room: room}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "no longer hosting %s\n", r.Room)
	})
}

// fmtPower renders a power level; the creator's is above every other.
func fmtPower(p int64) string {
	if p == math.MaxInt64 {
		return "max"
	}
	return strconv.FormatInt(p, 10)
}

// roomArg parses a lone ROOM argument.
func (c *cli) roomArg(args []string) (string, error) {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return "", err
	}
	return c.room(pos[0])
}

// optionalUser parses an optional USER argument (none: this user).
func (c *cli) optionalUser(args []string) (api.UserReq, error) {
	pos, err := c.parse(c.flags(), args, 0, 1)
	if err != nil || len(pos) == 0 {
		return api.UserReq{}, err
	}
	u, err := c.user(pos[0])
	return api.UserReq{User: u}, err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}

// parley room link ROOM
//
// Prints a link to the room with a few of this node's current addresses
// (relay addresses first), for `parley room join LINK` on another node.
func runRoomLink(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	id, err := crdt.ParseID(room)
	if err != nil {
		return err
	}
	var st api.StatusResp
	var link string
	asJSON := c.json
	c.json = false // the answer is the link, not the status
	err = call(c, api.EpStatus, api.Empty{}, &st, func(io.Writer) { link = node.RoomLink(id, st.Addrs) })
	c.json = asJSON
	if err != nil {
		return err
	}
	if c.json {
		raw, _ := json.Marshal(map[string]string{"room": room, "link": link})
		return c.printRaw(raw)
	}
	fmt.Fprintln(c.stdout, link)
	return nil
}
