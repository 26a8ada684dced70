package main

import (
	"fmt"
	"io"

	"github.com/parley-p2p/parley/api"
)

// policies are the invite policies and what they mean, for people.
var policies = map[string]string{
	"anyone":   "anyone may invite this user",
	"contacts": "only users who share a room with this user may invite them",
	"nobody":   "nobody may invite this user; new invites are dropped",
}

// parley invites [--requests]
//
// The inbox holds invites from contacts; invites from strangers wait apart
// as requests (--requests lists them). Both are accepted with room join
// and forgotten with invites decline.
func runInvites(c *cli, args []string) error {
	fs := c.flags()
	requests := fs.Bool("requests", false, "list the invites from strangers (users who share no room with this user) instead")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	var r api.InvitesResp
	return call(c, api.EpInvites, api.Empty{}, &r, func(w io.Writer) {
		list, none := r.Invites, "no pending invites"
		if *requests {
			list, none = r.Requests, "no invite requests"
		}
		if len(list) == 0 {
			fmt.Fprintln(w, none)
		} else {
			tw := table(w)
			fmt.Fprintln(tw, "ROOM\tNAME\tINVITER")
			for _, inv := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", inv.Room, orNone(inv.Name), inv.Inviter)
			}
			tw.Flush()
			fmt.Fprintln(w, "\naccept one with: parley room join ROOM")
		}
		switch {
		case *requests && r.RequestsDropped > 0:
			fmt.Fprintf(w, "%d requests over a stranger's rate were dropped\n", r.RequestsDropped)
		case !*requests && len(r.Requests) > 0:
			fmt.Fprintf(w, "%d invite requests from strangers: parley invites --requests\n", len(r.Requests))
		}
	})
}

// parley invites policy [anyone|contacts|nobody]
//
// The receiving node enforces the policy: it drops unwanted invites when
// they are delivered. Without an argument, prints the current policy.
func runInvitesPolicy(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 0, 1)
	if err != nil {
		return err
	}
	var req api.PolicyReq
	if len(pos) == 1 {
		if _, ok := policies[pos[0]]; !ok {
			return c.usagef("bad policy %q (use anyone, contacts or nobody)", pos[0])
		}
		req.Policy = pos[0]
	}
	var r api.PolicyResp
	return call(c, api.EpInvitesPolicy, req, &r, func(w io.Writer) {
		what, ok := policies[r.Policy]
		if !ok {
			what = "unknown to this version of parley"
		}
		fmt.Fprintf(w, "%s: %s\n", r.Policy, what)
	})
}

// parley invites decline ROOM
func runInvitesDecline(c *cli, args []string) error {
	room, err := c.roomArg(args)
	if err != nil {
		return err
	}
	var r api.RoomResp
	return call(c, api.EpInvitesDecline, api.RoomReq{Room: room}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "declined the invite to %s\n", r.Room)
	})
}

// parley dm USER
//
// The first call creates the two-person room and invites USER; every later
// call, on either side, returns that room.
func runDM(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	user, err := c.user(pos[0])
	if err != nil {
		return err
	}
	var r api.RoomResp
	return call(c, api.EpDM, api.UserReq{User: user}, &r, func(w io.Writer) {
		fmt.Fprintln(w, r.Room)
	})
}

// parley profile set [--name NAME] [--avatar FILE]
//
// Only the flags given change; --name "" clears the display name.
func runProfileSet(c *cli, args []string) error {
	fs := c.flags()
	name := fs.String("name", "", "display `NAME` (\"\" clears it)")
	avatar := fs.String("avatar", "", "image `FILE` to use as this user's avatar (stored in the media store)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	set := flagsSet(fs)
	if !set["name"] && !set["avatar"] {
		return c.usagef("nothing to change (give --name or --avatar)")
	}
	var req api.ProfileSetReq
	if set["name"] {
		req.Name = name
	}
	if set["avatar"] {
		var err error
		if req.AvatarPath, err = avatarPath(*avatar); err != nil {
			return err
		}
	}
	var r api.ProfileResp
	return call(c, api.EpProfileSet, req, &r, func(w io.Writer) { writeProfile(w, &r) })
}

// parley profile get [USER]
func runProfileGet(c *cli, args []string) error {
	req, err := c.optionalUser(args)
	if err != nil {
		return err
	}
	var r api.ProfileResp
	return call(c, api.EpProfileGet, req, &r, func(w io.Writer) { writeProfile(w, &r) })
}

func writeProfile(w io.Writer, r *api.ProfileResp) {
	fmt.Fprintf(w, "user    %s\nname    %s\navatar  %s\n", r.User, orNone(r.DisplayName), orNone(r.Avatar))
	if a := r.AvatarMedia; a != nil {
		fmt.Fprintf(w, "        %s %dx%d (fetch with: parley media get %s#%s -o FILE)\n", a.MIME, a.Width, a.Height, a.CID, a.Key)
	}
}

// parley block USER
//
// Hides USER's messages and invites for this user, in every room. Others'
// views are unaffected: this node still relays USER's events.
func runBlock(c *cli, args []string) error {
	return c.blockCall(api.EpBlock, args, "blocked %s (their messages and invites are hidden)\n")
}

// parley unblock USER
func runUnblock(c *cli, args []string) error {
	return c.blockCall(api.EpUnblock, args, "unblocked %s\n")
}

func (c *cli) blockCall(ep api.Endpoint[api.UserReq, api.BlockedResp], args []string, done string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	user, err := c.user(pos[0])
	if err != nil {
		return err
	}
	var r api.BlockedResp
	return call(c, ep, api.UserReq{User: user}, &r, func(w io.Writer) {
		fmt.Fprintf(w, done, user)
	})
}

// parley blocked
func runBlocked(c *cli, args []string) error {
	if err := c.noArgs(args); err != nil {
		return err
	}
	var r api.BlockedResp
	return call(c, api.EpBlocked, api.Empty{}, &r, func(w io.Writer) {
		if len(r.Blocked) == 0 {
			fmt.Fprintln(w, "no blocked users")
			return
		}
		for _, u := range r.Blocked {
			fmt.Fprintln(w, u)
		}
	})
}
