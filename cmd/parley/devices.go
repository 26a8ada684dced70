package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parley-p2p/parley/api"
)

// parley verify USER [--confirm]
//
// Prints the safety number and the emoji both users compare (in person, on
// a call); both sides print the same. --confirm records USER as verified:
// room info then marks them, and warns loudly if their name shows up under
// another master key.
func runVerify(c *cli, args []string) error {
	fs := c.flags()
	confirm := fs.Bool("confirm", false, "mark USER as verified after comparing the safety number")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	user, err := c.user(pos[0])
	if err != nil {
		return err
	}
	var r api.VerifyResp
	return call(c, api.EpVerify, api.VerifyReq{User: user, Confirm: *confirm}, &r, func(w io.Writer) {
		if *confirm {
			fmt.Fprintf(w, "verified %s\n", r.User)
			return
		}
		fmt.Fprintf(w, "safety number with %s:\n\n", r.User)
		groups := strings.Fields(r.SafetyNumber)
		for i := 0; i < len(groups); i += 4 {
			fmt.Fprintf(w, "  %s\n", strings.Join(groups[i:min(i+4, len(groups))], " "))
		}
		fmt.Fprintf(w, "\nemoji:\n\n  %s\n  %s\n\n", strings.Join(r.Emoji, "  "), strings.Join(r.EmojiNames, ", "))
		if r.Verified {
			fmt.Fprintln(w, "already verified")
		} else {
			fmt.Fprintf(w, "compare with what the other side shows; if they match: parley verify %s --confirm\n", r.User)
		}
	})
}

// parley device list [USER]
func runDeviceList(c *cli, args []string) error {
	req, err := c.optionalUser(args)
	if err != nil {
		return err
	}
	var r api.DeviceListResp
	return call(c, api.EpDeviceList, req, &r, func(w io.Writer) {
		tw := table(w)
		fmt.Fprintln(tw, "DEVICE\tNAME\tVERIFIED\tROOMS")
		for _, d := range r.Devices {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\n", d.Device, orNone(d.Name), d.Verified, len(d.Rooms))
		}
		tw.Flush()
	})
}

// parley device link
//
// Prints a one-time code for a new device of this user (valid 10 minutes,
// single use). Only a device holding the user's master key can link.
func runDeviceLink(c *cli, args []string) error {
	if _, err := c.parse(c.flags(), args, 0, 0); err != nil {
		return err
	}
	var r api.DeviceLinkResp
	return call(c, api.EpDeviceLink, api.Empty{}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nOn the new device (a fresh home, before its daemon first runs): parley device join CODE\nThe code works once, until %s. Keep it secret: it makes a device of this user.\n",
			r.Code, time.UnixMilli(r.ExpiresMS).Format("15:04:05"))
	})
}

// parley device revoke DEVICE
func runDeviceRevoke(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	var r api.DeviceRevokeResp
	return call(c, api.EpDeviceRevoke, api.DeviceReq{Device: pos[0]}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "revoked %s in %d rooms (each with a new key it does not get)\n", r.Device, len(r.Events))
	})
}
