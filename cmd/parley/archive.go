package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/importers"
)

// parley export ROOM -o FILE [--no-media]
// parley export ROOM --html DIR
// parley export ROOM --format jsonl|md -o FILE
//
// The daemon writes FILE itself (atomically, mode 0600), so the path is made
// absolute here: the daemon's working folder is not the user's.
func runExport(c *cli, args []string) error {
	fs := c.flags()
	out := fs.String("o", "", "write the archive (or the --format file) to `FILE` (replaced if it exists)")
	noMedia := fs.Bool("no-media", false, "leave out the media blobs the messages reference")
	htmlDir := fs.String("html", "", "write a static HTML page of the room, with its files decrypted beside it, into `DIR`")
	format := fs.String("format", "", "write the messages as `FORMAT` jsonl or md to -o FILE instead of an archive")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	switch {
	case *htmlDir != "" && (*out != "" || *format != ""):
		return c.usagef("--html DIR goes without -o and --format")
	case *htmlDir != "":
		*format, *out = "html", *htmlDir
	case *format != "" && *format != "jsonl" && *format != "md":
		return c.usagef("--format %q: want jsonl or md (or --html DIR)", *format)
	}
	if *out == "" {
		return c.usagef("missing -o FILE")
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		return fmt.Errorf("output %q: %v", *out, err)
	}
	if *format != "" {
		var r api.ExportReadableResp
		req := api.ExportReadableReq{Room: room, Format: *format, Out: path}
		return c.withProgress("export", false, c.daemonProgress(&req.Progress), func() error {
			return callLong(c, api.EpExportReadable, req, &r, func(w io.Writer) {
				fmt.Fprintf(w, "wrote %d messages of %s to %s (%d files decrypted beside it, %d not on this node)\n", r.Messages, r.Room, r.Out, r.Files, r.Missing)
			})
		})
	}
	var r api.ExportResp
	req := api.ExportReq{Room: room, Out: path, NoMedia: *noMedia}
	return c.withProgress("export", false, c.daemonProgress(&req.Progress), func() error {
		return callLong(c, api.EpExport, req, &r, func(w io.Writer) {
			fmt.Fprintf(w, "exported %d events and %d blobs of %s to %s\n", r.Events, r.Blobs, r.Room, path)
		})
	})
}

// parley import FILE
// parley import --from FORMAT PATH [--room ROOM | --name NAME] [--channel C]
//
// The daemon reads FILE itself and verifies all of it before taking in any
// event; importing the same archive again changes nothing. With --from,
// PATH is another messenger's chat export (a folder, a .zip or its main
// file), parsed and validated whole by the daemon before it posts anything.
func runImport(c *cli, args []string) error {
	fs := c.flags()
	from := fs.String("from", "", "import another messenger's chat export: `FORMAT` is "+strings.Join(importers.Formats, ", "))
	roomArg := fs.String("room", "", "with --from: post into `ROOM` (default: a new room)")
	name := fs.String("name", "", "with --from: name the new room `NAME` (default: the chat's name)")
	channel := fs.String("channel", "", "with --from slack: the `CHANNEL` to import")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return fmt.Errorf("file %q: %v", pos[0], err)
	}
	if *from == "" {
		if *roomArg != "" || *name != "" || *channel != "" {
			return c.usagef("--room, --name and --channel go with --from")
		}
		var r api.ImportResp
		req := api.ImportReq{Path: path}
		return c.withProgress("import", false, c.daemonProgress(&req.Progress), func() error {
			return callLong(c, api.EpImport, req, &r, func(w io.Writer) {
				fmt.Fprintf(w, "imported %s: %d events, %d new, %d media blocks\n", r.Room, r.Events, r.New, r.Blocks)
			})
		})
	}
	if !slices.Contains(importers.Formats, *from) {
		return c.usagef("--from %q: want one of %s", *from, strings.Join(importers.Formats, ", "))
	}
	if *roomArg != "" && *name != "" {
		return c.usagef("give --room or --name, not both")
	}
	req := api.ImportChatReq{Format: *from, Path: path, Name: *name, Channel: *channel}
	if *roomArg != "" {
		if req.Room, err = c.room(*roomArg); err != nil {
			return err
		}
	}
	var r api.ImportChatResp
	return c.withProgress("import", false, c.daemonProgress(&req.Progress), func() error {
		return c.importChat(req, &r)
	})
}

// importChat asks the daemon for a chat import and prints its counts.
func (c *cli) importChat(req api.ImportChatReq, r *api.ImportChatResp) error {
	return callLong(c, api.EpImportChat, req, r, func(w io.Writer) {
		fmt.Fprintf(w, "imported %s export into %s: %d messages, %d new, %d already imported, %d edits, %d files (%d not in the export), %d entries skipped\n",
			req.Format, r.Room, r.Messages, r.New, r.Existing, r.Edits, r.Media, r.MediaMissing, len(r.Skipped))
		for _, s := range r.Skipped {
			fmt.Fprintf(w, "  skipped %s: %s\n", s.Entry, s.Reason)
		}
	})
}
