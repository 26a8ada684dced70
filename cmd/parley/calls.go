package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/parley-p2p/parley/api"
)

// parley call ROOM [--video] [--send FILE]... [--record DIR]
//
// The daemon's own WebRTC peer joins the room's call (or starts one, which
// rings the members) and stays in it until 'parley call hangup ROOM' or
// the daemon stops. It sends FILE in a loop (Ogg Opus, or 16-bit PCM WAV,
// which it encodes to G.711 µ-law), silence without one, and records what
// each other participant sends into DIR. In a video call it also sends a
// VP8 video: a FILE ending in .ivf, or a test pattern without one.
func runCall(c *cli, args []string) error {
	fs := c.flags()
	video := fs.Bool("video", false, "a video call: the daemon also sends video (an .ivf FILE, or a test pattern) and receives it")
	var sends []string
	fs.Func("send", "a `FILE` to send in a loop: audio (Ogg Opus, or 16-bit PCM WAV) or, once more, video (VP8 in an .ivf file); repeatable", func(v string) error {
		sends = append(sends, v)
		return nil
	})
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
	for _, f := range sends {
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		dst := &req.Send
		if strings.EqualFold(filepath.Ext(f), ".ivf") {
			dst, req.Video = &req.SendVideo, true
		}
		if *dst != "" {
			return c.usagef("--send takes one audio file and one video (.ivf) file at most")
		}
		*dst = abs
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
