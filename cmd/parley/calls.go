package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/parley-p2p/parley/api"
)

// parley call ROOM [--video] [--send FILE] [--record DIR]
//
// The daemon's own WebRTC peer joins the room's call (or starts one, which
// rings the members) and stays in it until 'parley call hangup ROOM' or
// the daemon stops. It sends FILE in a loop (Ogg Opus, or 16-bit PCM WAV,
// which it encodes to G.711 µ-law), silence without one, and records what
// each other participant sends into DIR.
func runCall(c *cli, args []string) error {
	fs := c.flags()
	video := fs.Bool("video", false, "a video call (the daemon receives video and sends audio only)")
	send := fs.String("send", "", "an audio `FILE` to send in a loop: Ogg Opus, or 16-bit PCM WAV")
	record := fs.String("record", "", "a `DIR` to record what the others send into, one file per participant")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	req := api.CallDialReq{Room: room, Video: *video}
	if *send != "" {
		if req.Send, err = filepath.Abs(*send); err != nil {
			return err
		}
	}
	if *record != "" {
		if req.Record, err = filepath.Abs(*record); err != nil {
			return err
		}
	}
	var r api.CallResp
	return call(c, api.EpCallDial, req, &r, func(w io.Writer) {
		fmt.Fprintf(w, "in call %s; 'parley call hangup %s' leaves it\n", r.Call, pos[0])
	})
}

// roomOnly parses the arguments of a command that takes one ROOM.
func roomOnly(c *cli, args []string) (string, error) {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return "", err
	}
	return c.room(pos[0])
}

// parley call hangup ROOM
func runCallHangup(c *cli, args []string) error {
	room, err := roomOnly(c, args)
	if err != nil {
		return err
	}
	var r api.Empty
	return call(c, api.EpCallHangup, api.RoomReq{Room: room}, &r, func(w io.Writer) {
		fmt.Fprintln(w, "left the call")
	})
}

// parley calls ROOM
func runCalls(c *cli, args []string) error {
	room, err := roomOnly(c, args)
	if err != nil {
		return err
	}
	var r api.CallsResp
	return call(c, api.EpCalls, api.RoomReq{Room: room}, &r, func(w io.Writer) {
		if len(r.Calls) == 0 {
			fmt.Fprintln(w, "no call")
			return
		}
		for _, ci := range r.Calls {
			kind := "voice"
			if ci.Video {
				kind = "video"
			}
			var who []string
			for _, p := range ci.Participants {
				n := p.Name
				if n == "" {
					n = short(p.User)
				}
				who = append(who, n+" ("+short(p.Device)+")")
			}
			fmt.Fprintf(w, "%s %s call since %s, started by %s: %s\n", ci.Call, kind, fmtTime(ci.StartedTS), short(ci.StartedBy), strings.Join(who, ", "))
		}
	})
}
