package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// People name rooms and users by their names and events by the short
// references 'parley history' prints. An argument in the form of an ID is
// taken as it is; anything else is resolved by the daemon (node.Engine
// Resolve), which knows this node's rooms, their members and events, and
// says which match when more than one does.

// resolve asks the daemon to turn names and references into IDs, for the
// command's own use (nothing is printed).
func (c *cli) resolve(req api.ResolveReq) (api.ResolveResp, error) {
	cl, err := c.client()
	if err != nil {
		return api.ResolveResp{}, err
	}
	ctx, cancel := context.WithTimeout(c.ctx, callTimeout)
	defer cancel()
	r, err := api.EpResolve.Call(ctx, cl, req)
	if err != nil {
		return r, c.explain(err)
	}
	return r, nil
}

// room is a ROOM argument as a room ID: an ID, or a room name.
func (c *cli) room(s string) (string, error) {
	if _, err := crdt.ParseID(s); err == nil {
		return s, nil
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("malformed room ID %q (see: parley room list)", s)
	}
	r, err := c.resolve(api.ResolveReq{Room: s})
	if err != nil {
		return "", err
	}
	return r.Room, nil
}

// event is an EVENT argument of a room as an event ID: an ID, or a short
// reference.
func (c *cli) event(room, s string) (string, error) {
	if _, err := crdt.ParseID(s); err == nil {
		return s, nil
	}
	ref := strings.TrimPrefix(strings.ToLower(s), "bafyrei")
	if len(ref) < api.RefLen || strings.Trim(ref, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		return "", fmt.Errorf("malformed event ID %q (an event ID, or %d or more characters of one as 'parley history' shows)", s, api.RefLen)
	}
	r, err := c.resolve(api.ResolveReq{Room: room, Events: []string{s}})
	if err != nil {
		return "", err
	}
	if len(r.Events) != 1 {
		return "", errors.New("the daemon did not resolve the event")
	}
	return r.Events[0], nil
}

// user is a USER argument as a user ID: an ID, or a display name.
func (c *cli) user(s string) (string, error) {
	if k, err := crdt.ParseKey(s); err == nil {
		return k.String(), nil
	}
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("malformed user ID %q (a user ID is the 'user' line of 'parley id' on that user's node)", s)
	}
	r, err := c.resolve(api.ResolveReq{Users: []string{s}})
	if err != nil {
		return "", err
	}
	if len(r.Users) != 1 {
		return "", errors.New("the daemon did not resolve the user")
	}
	return r.Users[0], nil
}

// roomEventArgs parses a command whose positional arguments are ROOM
// EVENT with the flags fs, and resolves them.
func (c *cli) roomEventArgs(fs *flag.FlagSet, args []string) (room, event string, err error) {
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return "", "", err
	}
	return c.roomEvent(pos)
}

// roomEvent resolves the ROOM EVENT positional arguments.
func (c *cli) roomEvent(pos []string) (room, event string, err error) {
	if room, err = c.room(pos[0]); err != nil {
		return "", "", err
	}
	if event, err = c.event(room, pos[1]); err != nil {
		return "", "", err
	}
	return room, event, nil
}
