package mimi

import (
	"fmt"
	"strings"
)

// Target returns the ID of the message c is about: the one it replaces for
// edits and deletions, the one it answers or reacts to otherwise (for an
// unreaction, the message the reaction was on). Nil for a plain new
// message.
func (c *Content) Target() *MessageID {
	switch c.Kind() {
	case KindEdit, KindDelete:
		return c.Replaces
	}
	return c.InReplyTo
}

// Fallback returns the plain text every service can show for c, even one
// that knows nothing of its relations or of Parley media. target is the
// message c.Target() names, or nil when it is unknown. The fallback is
// computed, not sent: MIMI clients would show a quote sent inside the
// body twice (note §4).
//
//   - a reply or thread reply: a quote of the target ("> ..."), a blank
//     line, the body;
//   - an edit: the quote, then the new body marked with "* ";
//   - a deletion: the quote, then "(deleted)";
//   - a reaction: a reply carrying the reaction key;
//   - an unreaction: the quote, then "(reaction withdrawn)";
//   - media: a line per file with its name, size and parley: link, then
//     the caption.
func Fallback(c *Content, target *Content) string {
	body := Summary(c)
	switch c.Kind() {
	case KindEdit:
		return quoted(c, target, "* "+body)
	case KindDelete:
		return quoted(c, target, "(deleted)")
	case KindReaction:
		key, _ := c.ReactionKey()
		return quoted(c, target, key)
	case KindUnreaction:
		return quoted(c, target, "(reaction withdrawn)")
	}
	if c.InReplyTo != nil {
		return quoted(c, target, body)
	}
	return body
}

// Summary returns c's own text without any quote: its plain text, or one
// line per media file followed by the caption.
func Summary(c *Content) string {
	var lines []string
	for _, m := range c.MediaParts() {
		lines = append(lines, mediaLine(&m.Ref))
	}
	plain, _ := c.Text()
	if plain != "" {
		lines = append(lines, plain)
	}
	return strings.Join(lines, "\n")
}

func mediaLine(r *MediaRef) string {
	kind := "File"
	switch base, _, _ := strings.Cut(r.MIME, "/"); {
	case r.Info.Voice:
		kind = "Voice message"
	case base == "image":
		kind = "Image"
	case base == "video":
		kind = "Video"
	case base == "audio":
		kind = "Audio"
	}
	name := r.Name
	if name == "" {
		name = r.MIME
	}
	details := []string{HumanSize(r.Size)}
	if r.Info.DurationMs > 0 {
		details = append(details, fmt.Sprintf("%d:%02d", r.Info.DurationMs/60000, r.Info.DurationMs/1000%60))
	}
	if r.Info.Width > 0 && r.Info.Height > 0 {
		details = append(details, fmt.Sprintf("%dx%d", r.Info.Width, r.Info.Height))
	}
	return fmt.Sprintf("[%s: %s, %s] %s", kind, name, strings.Join(details, ", "), MediaURL(r.CID))
}

// maxQuoteLines and maxQuoteBytes bound the quote in a fallback.
const (
	maxQuoteLines = 3
	maxQuoteBytes = 200
)

func quoted(c, target *Content, body string) string {
	var q string
	if target == nil {
		q = "> (an earlier message)"
	} else {
		who := target.SenderURI()
		if who != "" {
			who = "<" + who + "> "
		}
		q = prefixLines(shorten(Summary(target)), "> "+who, "> ")
	}
	if body == "" {
		return q
	}
	return q + "\n\n" + body
}

func shorten(s string) string {
	lines := strings.Split(s, "\n")
	cut := false
	if len(lines) > maxQuoteLines {
		lines, cut = lines[:maxQuoteLines], true
	}
	s = strings.Join(lines, "\n")
	if len(s) > maxQuoteBytes {
		i := maxQuoteBytes
		for i > 0 && s[i]&0xc0 == 0x80 { // do not split a UTF-8 sequence
			i--
		}
		s, cut = s[:i], true
	}
	if cut {
		s += "…"
	}
	return s
}

// HumanSize formats a byte count with decimal units ("1.5 MB").
func HumanSize(n uint64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= 1000
		if f < 1000 {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f PB", f/1000)
}
