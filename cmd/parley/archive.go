package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/parley-p2p/parley/api"
)

// parley export ROOM -o FILE
//
// The daemon writes FILE itself (atomically, mode 0600), so the path is made
// absolute here: the daemon's working folder is not the user's.
func runExport(c *cli, args []string) error {
	fs := c.flags()
	out := fs.String("o", "", "write the archive to `FILE` (replaced if it exists)")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if *out == "" {
		return c.usagef("missing -o FILE")
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		return fmt.Errorf("output file %q: %v", *out, err)
	}
	var r api.ExportResp
	return c.withProgress("export", false, nil, func() error {
		return call(c, api.EpExport, api.ExportReq{Room: room, Out: path}, &r, func(w io.Writer) {
			fmt.Fprintf(w, "exported %d events and %d blobs of %s to %s\n", r.Events, r.Blobs, r.Room, path)
		})
	})
}

// parley import FILE
//
// The daemon reads FILE itself and verifies all of it before taking in any
// event; importing the same archive again changes nothing.
func runImport(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return fmt.Errorf("archive file %q: %v", pos[0], err)
	}
	var r api.ImportResp
	return c.withProgress("import", false, nil, func() error {
		return call(c, api.EpImport, api.ImportReq{Path: path}, &r, func(w io.Writer) {
			fmt.Fprintf(w, "imported %s: %d events, %d new\n", r.Room, r.Events, r.New)
		})
	})
}
