package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(step); return t }
}

// TestProgressBar: a known total draws a filling bar with percent, amounts
// and rate, each redraw rewriting the line; an unknown total moves a marker;
// a nil bar draws nothing.
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := newProgressBar(&b, "media get", true, fakeClock(time.Second))
	p.Set(512<<10, 2<<20)
	p.Set(1<<20, 2<<20)
	p.Finish()
	out := b.String()
	lines := strings.Split(out, "\r\x1b[K")
	if len(lines) != 4 || lines[0] != "" || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want three in-place redraws and a final newline: %q", out)
	}
	for i, want := range []string{"[======                  ]  25% ", "[============            ]  50% ", "[========================] 100% "} {
		if !strings.HasPrefix(lines[i+1], "media get "+want) {
			t.Errorf("redraw %d: %q, want prefix %q", i, lines[i+1], "media get "+want)
		}
	}
	if !strings.Contains(lines[2], "/s") {
		t.Errorf("no rate in %q", lines[2])
	}
	b.Reset()
	p = newProgressBar(&b, "import", false, fakeClock(time.Second))
	p.Set(0, 0)
	p.Set(0, 0)
	if got := b.String(); !strings.Contains(got, "[<=>") || !strings.Contains(got, "[ <=>") {
		t.Errorf("unknown total: %q", got)
	}
	b.Reset()
	p = newProgressBar(&b, "x", false, fakeClock(time.Millisecond))
	p.Set(1, 10)
	p.Set(2, 10) // within 100 ms of the first: not drawn
	if n := strings.Count(b.String(), "\r"); n != 1 {
		t.Errorf("%d redraws within 100 ms, want 1: %q", n, b.String())
	}
	var nilBar *progressBar
	nilBar.Set(1, 2)
	nilBar.Finish()
	nilBar.Clear()
	// A label from a file name cannot move the cursor.
	b.Reset()
	newProgressBar(&b, "evil\x1b[2J", false, fakeClock(time.Second)).Set(1, 2)
	if strings.Contains(b.String(), "\x1b[2J") {
		t.Errorf("escape sequence of the label reached the terminal: %q", b.String())
	}
}

// TestProgressNotATerminal: with stderr a pipe, a file or --json, no bar
// and nothing on stderr; the commands' own output is unchanged.
func TestProgressNotATerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, errw := range []any{f, w, &bytes.Buffer{}} {
		c := &cli{stderr: errw.(interface{ Write([]byte) (int, error) })}
		if p := c.progress("x", false); p != nil {
			t.Errorf("a bar on %T", errw)
		}
	}
	if isTerminal(f) || isTerminal(w) {
		t.Errorf("a file or a pipe taken for a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		c := &cli{stderr: tty, json: true}
		if c.progress("x", false) != nil {
			t.Errorf("a bar with --json")
		}
		c.json = false
		if !isTerminal(tty) || c.progress("x", false) == nil {
			t.Errorf("no bar on a terminal")
		}
	}
	// withProgress without a terminal: fn runs, nothing is written.
	var eb bytes.Buffer
	c := &cli{stderr: &eb}
	ran := false
	if err := c.withProgress("x", true, func() (int64, int64) { return 5, 10 }, func() error { ran = true; return nil }); err != nil || !ran || eb.Len() != 0 {
		t.Errorf("withProgress off a terminal: ran %v err %v stderr %q", ran, err, eb.String())
	}
	// sim run: no progress writer off a terminal, unless --progress asks
	// for plain lines (no bar).
	if w, step, _ := simProgress(f, false, false); w != nil || step != nil {
		t.Errorf("sim progress into a file")
	}
	if w, step, _ := simProgress(f, true, true); w != f || step != nil {
		t.Errorf("sim --progress into a file: lines %v, bar %v", w, step != nil)
	}
}

// TestBarLines: lines written to a sim's progress go above the bar, which
// is drawn again below each; the bar shows virtual seconds and its note.
func TestBarLines(t *testing.T) {
	var b bytes.Buffer
	bar := newProgressBar(&b, "sim", false, fakeClock(time.Second))
	bar.millis = true
	lw := &barLines{bar: bar}
	bar.Note("published 3")
	bar.Set(1500, 6000)
	lw.Write([]byte("setting up 5 no"))
	lw.Write([]byte("des\n"))
	bar.Finish()
	out := b.String()
	parts := strings.Split(out, "\r\x1b[K")
	if len(parts) != 5 {
		t.Fatalf("want a bar, a line, the bar again and the final bar: %q", out)
	}
	if !strings.HasPrefix(parts[1], "sim [======                  ]  25% 1.5s/6.0s  published 3  ") {
		t.Errorf("bar %q", parts[1])
	}
	if parts[2] != "setting up 5 nodes\n" {
		t.Errorf("line %q", parts[2])
	}
	if strings.Contains(parts[1], "/s ") {
		t.Errorf("a rate of virtual seconds: %q", parts[1])
	}
	if !strings.HasPrefix(parts[4], "sim [========================] 100% 6.0s/6.0s") || !strings.HasSuffix(out, "\n") {
		t.Errorf("final %q", parts[4])
	}
}
