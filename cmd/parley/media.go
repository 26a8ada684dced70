package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-p2p/parley/api"
)

// The media commands extend the CLI contract (docs/cli.md "Media") in one
// way: a blob is encrypted with a random file key that the contract's
// `media get CID -o FILE` has no place for. `media add` therefore also
// prints the key ("key" in --json, unpadded URL-safe base64), and
// `media get` takes it either inside the CID argument as CID#KEY (what
// `media add` prints as "link") or with --key KEY.

// parley media add FILE
func runMediaAdd(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 1, 1)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return fmt.Errorf("%s: %v", pos[0], err)
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("cannot read %s: %v", pos[0], unwrapPath(err))
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", pos[0])
	}
	var r api.MediaAddResp
	return call(c, api.EpMediaAdd, api.MediaAddReq{Path: path}, &r, func(w io.Writer) {
		tw := table(w)
		fmt.Fprintf(tw, "cid\t%s\nsize\t%s (%d bytes)\nmime\t%s\nkey\t%s\n", r.CID, fmtBytes(r.Size), r.Size, r.MIME, r.Key)
		tw.Flush()
		fmt.Fprintf(w, "fetch it elsewhere with: parley media get %s#%s -o FILE\n", r.CID, r.Key)
	})
}

// parley media get CID[#KEY] -o FILE [--key KEY]
//
// Without a key the daemon takes it from a message of this node's rooms
// that carries the file.
func runMediaGet(c *cli, args []string) error {
	fs := c.flags()
	out := fs.String("o", "", "write the file to `FILE` (required; replaced atomically)")
	keyFlag := fs.String("key", "", "the file `KEY` (base64) printed by 'media add', unless given as CID#KEY")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id, key, hasKey := strings.Cut(pos[0], "#")
	switch {
	case id == "":
		return c.usagef("missing CID")
	case hasKey && *keyFlag != "" && key != *keyFlag:
		return c.usagef("two different keys: CID#KEY and --key")
	case !hasKey || key == "":
		key = *keyFlag
	}
	if *out == "" || *out == "-" {
		return c.usagef("missing -o FILE (where to write the file)")
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		return fmt.Errorf("%s: %v", *out, err)
	}
	var r api.MediaGetResp
	req := api.MediaGetReq{CID: id, Key: key, Out: path}
	return c.withProgress("media get", true, c.daemonProgress(&req.Progress), func() error {
		return call(c, api.EpMediaGet, req, &r, func(w io.Writer) {
			fmt.Fprintf(w, "wrote %s (%d bytes) to %s\n", fmtBytes(r.Size), r.Size, *out)
		})
	})
}

// parley media save ROOM EVENT [-o FILE]
//
// The file of a media message, decrypted with the key inside the message;
// without -o it goes into the current folder under the name the sender
// gave it (which must not exist yet).
func runMediaSave(c *cli, args []string) error {
	fs := c.flags()
	out := fs.String("o", "", "write the file to `FILE` (default: the file's own name in the current folder)")
	room, event, err := c.roomEventArgs(fs, args)
	if err != nil {
		return err
	}
	req := api.MediaSaveReq{Room: room, Event: event}
	if *out == "" {
		if req.Dir, err = os.Getwd(); err != nil {
			return fmt.Errorf("the current folder: %v", err)
		}
	} else if req.Out, err = filepath.Abs(*out); err != nil {
		return fmt.Errorf("%s: %v", *out, err)
	}
	var r api.MediaSaveResp
	return call(c, api.EpMediaSave, req, &r, func(w io.Writer) {
		fmt.Fprintf(w, "wrote %s (%d bytes) to %s\n", fmtBytes(r.Size), r.Size, r.Path)
	})
}

// parley media gc [--grace DURATION]
func runMediaGC(c *cli, args []string) error {
	fs := c.flags()
	grace := fs.Duration("grace", api.MediaGCGrace, "keep files added or fetched within `DURATION` (0 keeps none)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *grace < 0 {
		return c.usagef("--grace must not be negative")
	}
	ms := grace.Milliseconds()
	var r api.MediaGCResp
	return call(c, api.EpMediaGC, api.MediaGCReq{GraceMS: &ms}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "freed %d files (%d blocks)\n", len(r.Blobs), r.Blocks)
		for _, b := range r.Blobs {
			fmt.Fprintln(w, b)
		}
	})
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
