package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/api"
)

// parley edit ROOM EVENT TEXT|- [--markdown] [--mention USER]...
//
// Replaces the text of one of this user's messages on every node; the
// earlier versions stay listed (history shows "versions"; history
// --versions EVENT lists them). Mentions work as with send; the new
// version's mentions replace the earlier one's.
func runEdit(c *cli, args []string) error {
	fs := c.flags()
	markdown := fs.Bool("markdown", false, "the new text is Markdown")
	var mentions multiFlag
	fs.Var(&mentions, "mention", "mention the user `USER` (a user ID; repeatable)")
	pos, err := c.parse(fs, args, 3, 3)
	if err != nil {
		return err
	}
	room, event, err := c.roomEvent(pos)
	if err != nil {
		return err
	}
	text, err := c.messageText(pos[2])
	if err != nil {
		return err
	}
	users, err := c.mentions(mentions)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, api.EpEdit, api.EditReq{Room: room, Event: event, Text: text, Markdown: *markdown, Mentions: users}, &r, func(w io.Writer) {
		fmt.Fprintln(w, r.Event)
	})
}

// messageText reads TEXT (or stdin for "-") and checks it.
func (c *cli) messageText(text string) (string, error) {
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(c.stdin, 16*maxMessage))
		if err != nil {
			return "", fmt.Errorf("read the message from stdin: %v", err)
		}
		text = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case strings.TrimSpace(text) == "":
		return "", errors.New("empty message")
	case len(text) > maxMessage:
		return "", fmt.Errorf("message too long: %d bytes, the limit is %d (split it, or send it as a file)", len(text), maxMessage)
	case !utf8.ValidString(text):
		return "", errors.New("the message is not valid UTF-8 text")
	}
	return text, nil
}

// parley react ROOM EVENT KEY
func runReact(c *cli, args []string) error { return c.reaction(api.EpReact, args) }

// parley unreact ROOM EVENT KEY
//
// Withdraws this user's reaction KEY (every one of its devices made) on
// every node.
func runUnreact(c *cli, args []string) error { return c.reaction(api.EpUnreact, args) }

func (c *cli) reaction(ep api.Endpoint[api.ReactReq, api.EventResp], args []string) error {
	pos, err := c.parse(c.flags(), args, 3, 3)
	if err != nil {
		return err
	}
	room, event, err := c.roomEvent(pos)
	if err != nil {
		return err
	}
	var r api.EventResp
	return call(c, ep, api.ReactReq{Room: room, Event: event, Key: pos[2]}, &r, func(w io.Writer) {
		fmt.Fprintln(w, r.Event)
	})
}

// parley read ROOM EVENT
//
// A read receipt: this user has read the room up to EVENT. Only the
// furthest one counts; an earlier one changes nothing.
func runRead(c *cli, args []string) error {
	pos, err := c.parse(c.flags(), args, 2, 2)
	if err != nil {
		return err
	}
	room, event, err := c.roomEvent(pos)
	if err != nil {
		return err
	}
	var r api.Empty
	return call(c, api.EpRead, api.ReadReq{Room: room, Event: event}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "read up to %s\n", short(event))
	})
}

// parley send-file ROOM FILE [--voice] [--caption TEXT]
//
// Sends an image, video, audio, voice message or any file: the daemon
// stores it encrypted under a fresh key, with a thumbnail for images and
// the duration (and a waveform for WAV) for audio; the key and metadata
// travel only inside the (encrypted) message. Others fetch it with
// 'parley media get CID#KEY' ("media" in history).
func runSendFile(c *cli, args []string) error {
	fs := c.flags()
	voice := fs.Bool("voice", false, "a recorded voice message (a WAV or Ogg file)")
	caption := fs.String("caption", "", "a `TEXT` shown with the file")
	pos, err := c.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	room, err := c.room(pos[0])
	if err != nil {
		return err
	}
	path, err := filepath.Abs(pos[1])
	if err != nil {
		return fmt.Errorf("%s: %v", pos[1], err)
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("cannot read %s: %v", pos[1], unwrapPath(err))
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", pos[1])
	}
	if *caption != "" {
		if _, err := c.messageText(*caption); err != nil {
			return fmt.Errorf("caption: %v", err)
		}
	}
	var r api.SendFileResp
	return call(c, api.EpSendFile, api.SendFileReq{Room: room, Path: path, Voice: *voice, Caption: *caption}, &r, func(w io.Writer) {
		fmt.Fprintf(w, "%s\ncid %s\n", r.Event, r.CID)
	})
}
