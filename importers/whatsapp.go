package importers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WhatsApp's "Export chat": a text file (_chat.txt on iOS, "WhatsApp Chat
// with NAME.txt" on Android), alone or zipped with the attached media. Each
// message starts a line with its date and time in the phone's locale, then
// the author and the text; further lines continue the text:
//
//	12/31/23, 9:05 PM - Name: text          (Android, US)
//	31/12/2023, 21:05 - Name: text          (Android, UK and most of Europe)
//	[31.12.23, 21:05:03] Name: text         (iOS, Germany)
//	[12/31/23, 9:05:03 PM] Name: text       (iOS, US)
//
// A line with a date but no "Name: " is a system notice. Attachments show as
// "<attached: FILE>" (iOS) or "FILE (file attached)" (Android), or as
// "<Media omitted>" when the export left media out. The file has no time
// zone: times are read as UTC, and no reactions or replies are exported.

var waHeader = regexp.MustCompile(`^\x{200e}?\[?(\d{1,4})([./-])(\d{1,2})[./-](\d{2,4}),? (\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?(?:[\x{202f}\x{a0} ]?([AaPp])\.? ?[Mm]\.?)?\]?(?: -|:)? (.*)$`)

var (
	waAttachediOS     = regexp.MustCompile(`^\x{200e}?<attached: ([^<>]+)>$`)
	waAttachedAndroid = regexp.MustCompile(`^\x{200e}?(.+?) \(file attached\)$`)
)

// waLine is one message header line, before the date order is known.
type waLine struct {
	line           int
	a, b, y        int // the two day/month fields and the year, as written
	h, min, s      int
	ampm           byte // 'a', 'p' or 0
	rest           string
	text           []string
	yearFirst, iso bool
}

// ParseWhatsApp reads a WhatsApp chat export (main: the .txt file, "" for
// the only one at the root).
func ParseWhatsApp(fsys fs.FS, main string) (*Export, error) {
	name, err := findMain(fsys, main, "WhatsApp chat text file", "_chat.txt", "*.txt")
	if err != nil {
		return nil, err
	}
	b, err := readFile(fsys, name)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(b) {
		return nil, malformed("%s is not UTF-8 text", name)
	}
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	var lines []*waLine
	for i, l := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
		m := waHeader.FindStringSubmatch(l)
		if m == nil {
			if len(lines) == 0 {
				if strings.TrimSpace(l) == "" {
					continue
				}
				return nil, malformed("%s line %d: not a WhatsApp chat line (no date and time at its start): %q", name, i+1, truncate(l, 60))
			}
			last := lines[len(lines)-1]
			last.text = append(last.text, l)
			continue
		}
		w := &waLine{line: i + 1, rest: m[9]}
		x, _ := strconv.Atoi(m[1])
		w.b, _ = strconv.Atoi(m[3])
		w.y, _ = strconv.Atoi(m[4])
		if len(m[1]) == 4 { // 2023-12-31
			w.yearFirst = true
			w.y, w.a, w.b = x, w.b, w.y
		} else {
			w.a = x
		}
		w.h, _ = strconv.Atoi(m[5])
		w.min, _ = strconv.Atoi(m[6])
		if m[7] != "" {
			w.s, _ = strconv.Atoi(m[7])
		}
		if m[8] != "" {
			w.ampm = m[8][0] | 0x20
		}
		lines = append(lines, w)
	}
	if len(lines) == 0 {
		return nil, malformed("%s has no messages", name)
	}
	dayFirst := waDayFirst(lines)
	dir := path.Dir(name)
	// The file has no message IDs, and line numbers move when a later
	// export starts elsewhere: a message is known by its time, author and
	// text (and how many such came before it).
	x := &Export{Name: strings.TrimSuffix(path.Base(name), ".txt")}
	seen := map[string]int{}
	if x.Name == "_chat" {
		x.Name = ""
	}
	for _, w := range lines {
		entry := fmt.Sprintf("%s line %d", name, w.line)
		ts, err := w.time(dayFirst)
		if err != nil {
			return nil, malformed("%s: %v", entry, err)
		}
		author, text, ok := strings.Cut(w.rest, ": ")
		// iOS marks notices (and attachments) with a left-to-right mark.
		notice := strings.HasPrefix(text, "\u200e") && !waAttachediOS.MatchString(text)
		if !ok || notice || strings.Contains(text, "Messages and calls are end-to-end encrypted") {
			x.Skipped = append(x.Skipped, Skip{entry, "system notice"})
			continue
		}
		author = strings.Trim(author, "\u200e\u202a\u202c")
		lines := append([]string{text}, w.text...)
		msg := Message{Author: author, AuthorID: author, Time: ts}
		var body []string
		for _, l := range lines {
			l = strings.TrimPrefix(l, "\u200e")
			if m := waAttachediOS.FindStringSubmatch(l); m != nil {
				msg.Attachments = append(msg.Attachments, attachment(fsys, dir, m[1], ""))
				continue
			}
			if m := waAttachedAndroid.FindStringSubmatch(l); m != nil && !strings.Contains(m[1], "/") {
				msg.Attachments = append(msg.Attachments, attachment(fsys, dir, m[1], ""))
				continue
			}
			switch strings.TrimSpace(l) {
			case "<Media omitted>", "image omitted", "video omitted", "audio omitted", "sticker omitted", "document omitted", "GIF omitted":
				msg.Attachments = append(msg.Attachments, Attachment{Name: strings.Trim(strings.TrimSpace(l), "<>"), Missing: true})
				continue
			}
			if t, ok := strings.CutSuffix(l, "<This message was edited>"); ok {
				l = strings.TrimRight(t, " \u200e")
				msg.Edited = ts
			}
			body = append(body, l)
		}
		msg.Text = strings.TrimRight(strings.Join(body, "\n"), "\n ")
		if msg.Text == "" && len(msg.Attachments) == 0 {
			x.Skipped = append(x.Skipped, Skip{entry, "empty message"})
			continue
		}
		key := fmt.Sprintf("%d\x00%s\x00%s", ts.Unix(), author, strings.Join(lines, "\n"))
		seen[key]++
		sum := sha256.Sum256([]byte(key))
		msg.ID = fmt.Sprintf("%s-%d", hex.EncodeToString(sum[:12]), seen[key])
		x.Messages = append(x.Messages, msg)
	}
	return x, nil
}

// waDayFirst decides the date order from the whole file: a first field
// over 12 means day first, a second over 12 month first; without such a
// date, 12-hour clocks mean month first (US) and 24-hour ones day first.
func waDayFirst(lines []*waLine) bool {
	ampm := false
	for _, w := range lines {
		if w.yearFirst {
			return false
		}
		switch {
		case w.a > 12:
			return true
		case w.b > 12:
			return false
		}
		ampm = ampm || w.ampm != 0
	}
	return !ampm
}

// time is the line's time in UTC.
func (w *waLine) time(dayFirst bool) (time.Time, error) {
	d, mo := w.a, w.b
	if !dayFirst {
		d, mo = w.b, w.a
	}
	y := w.y
	if y < 100 {
		y += 2000
	}
	h := w.h
	switch w.ampm {
	case 'a':
		if h == 12 {
			h = 0
		}
	case 'p':
		if h != 12 {
			h += 12
		}
	}
	if w.ampm != 0 && (w.h < 1 || w.h > 12) || h > 23 || w.min > 59 || w.s > 59 || mo < 1 || mo > 12 || d < 1 || d > 31 {
		return time.Time{}, fmt.Errorf("no valid date and time at the start of the line")
	}
	t := time.Date(y, time.Month(mo), d, h, w.min, w.s, 0, time.UTC)
	if t.Day() != d {
		return time.Time{}, fmt.Errorf("%d-%02d-%02d is not a date", y, mo, d)
	}
	return t, nil
}
