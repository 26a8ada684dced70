package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Text from other people (messages, display names, room names, file names,
// even error messages that quote them) reaches a terminal that obeys
// escape sequences: one could clear the screen, set the window title or
// overwrite lines. Everything printed for people therefore goes through
// escapeTerm, which shows control characters as visible escapes; --json
// output is printed exactly as the daemon sent it.

// escapeTerm replaces C0 controls (but newline and tab where keep is set),
// DEL, C1 controls, the Unicode bidirectional controls (which reorder what
// follows them) and invalid UTF-8 bytes with visible escapes such as \x1b
// and \u202e.
func escapeTerm(s string, keep bool) string {
	if !needsEscape(s, keep) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r, keep):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func needsEscape(s string, keep bool) bool {
	for i, r := range s {
		if unsafeRune(r, keep) || (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) {
			return true
		}
	}
	return false
}

func unsafeRune(r rune, keep bool) bool {
	switch {
	case keep && (r == '\n' || r == '\t'):
		return false
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// termWriter escapes what is written to it (newlines and tabs pass) unless
// raw reports true (--json). A rune split between two writes is held back
// until its end arrives.
type termWriter struct {
	w     io.Writer
	raw   func() bool
	carry []byte
}

func (t *termWriter) Write(p []byte) (int, error) {
	if t.raw() {
		return t.w.Write(p)
	}
	buf := append(t.carry, p...)
	t.carry = nil
	// Hold back an incomplete rune at the end (at most 3 bytes).
	for k := 1; k <= 3 && k <= len(buf); k++ {
		if c := buf[len(buf)-k]; utf8.RuneStart(c) {
			if !utf8.FullRune(buf[len(buf)-k:]) {
				t.carry = append([]byte(nil), buf[len(buf)-k:]...)
				buf = buf[:len(buf)-k]
			}
			break
		}
	}
	if _, err := io.WriteString(t.w, escapeTerm(string(buf), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes a rune left incomplete at the end of the output, escaped.
func (t *termWriter) flush() {
	if len(t.carry) > 0 {
		io.WriteString(t.w, escapeTerm(string(t.carry), true))
		t.carry = nil
	}
}

// oneLineTerm is escapeTerm for text that must stay on one line (names).
func oneLineTerm(s string) string { return escapeTerm(s, false) }
