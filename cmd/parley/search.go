package main

import (
	"cmp"
	"fmt"
	"io"

	"github.com/parley-p2p/parley/api"
)

// parley search [ROOM] QUERY [--limit N]
//
// The messages whose current text holds every word of QUERY
// (case-insensitive), newest first: in ROOM, or in every joined room when
// QUERY is the only argument. Only what this node can read is searched (in
// an encrypted room, what it decrypted); deleted messages are never found.
func runSearch(c *cli, args []string) error {
	fs := c.flags()
	limit := fs.Int("limit", 0, "show at most `N` messages (default 20, at most 200)")
	pos, err := c.parse(fs, args, 1, 2)
	if err != nil {
		return err
	}
	if *limit < 0 || *limit > 200 {
		return c.usagef("bad --limit %d (want 1 to 200)", *limit)
	}
	req := api.SearchReq{Query: pos[len(pos)-1], Limit: *limit}
	roomArg := ""
	if len(pos) == 2 {
		roomArg = pos[0]
		if req.Room, err = c.room(pos[0]); err != nil {
			return err
		}
	}
	var r api.SearchResp
	return call(c, api.EpSearch, req, &r, func(w io.Writer) {
		if len(r.Hits) == 0 {
			fmt.Fprintln(w, "no messages found")
			return
		}
		for i := range r.Hits {
			hit := &r.Hits[i]
			l := labels{map[string]string{hit.Event.ID: hit.Ref}, r.Names, cmp.Or(roomArg, hit.Room)}
			line := eventLine(&hit.Event, l)
			if req.Room == "" {
				line = oneLineTerm(cmp.Or(hit.RoomName, short(hit.Room))) + "  " + line
			}
			fmt.Fprintln(w, line)
		}
		if r.More {
			fmt.Fprintln(w, "(more messages match: raise --limit, or search for more words)")
		}
	})
}
