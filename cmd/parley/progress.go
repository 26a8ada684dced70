package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/parley-p2p/parley/api"
)

// Progress bars go to stderr, and only when it is a terminal and --json is
// off: a pipe, a file or a program reading --json output gets nothing.

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws one line, rewritten in place: a label, a bar (or, with
// no known total, a moving marker), the amount done, the rate and the time
// elapsed. A nil *progressBar is valid and draws nothing.
type progressBar struct {
	mu     sync.Mutex
	w      io.Writer
	label  string
	bytes  bool // amounts are bytes (else items)
	millis bool // amounts are milliseconds, shown as seconds (sim run's virtual time)
	note   string
	done   int64
	total  int64 // 0: unknown
	start  time.Time
	drawn  time.Time
	now    func() time.Time
	frames int
}

// progress returns a bar on stderr, or nil when stderr is not a terminal
// or --json is set.
func (c *cli) progress(label string, bytes bool) *progressBar {
	if c.json || !isTerminal(c.stderr) {
		return nil
	}
	return newProgressBar(c.stderr, label, bytes, time.Now)
}

func newProgressBar(w io.Writer, label string, bytes bool, now func() time.Time) *progressBar {
	return &progressBar{w: w, label: label, bytes: bytes, start: now(), now: now}
}

// Set records the amount done (and the total, 0 if unknown) and redraws at
// most ten times a second.
func (p *progressBar) Set(done, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	if t := p.now(); t.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawn = t
		p.draw()
	}
}

// Note sets a short text shown after the amounts (drawn with the next Set).
func (p *progressBar) Note(s string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.note = s
}

// Line prints a line of text above the bar (the bar is drawn again below
// it), so that messages and the bar do not mix.
func (p *progressBar) Line(s string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\x1b[K%s\n", escapeTerm(s, false))
	p.draw()
}

// Finish draws the final state and ends the line.
func (p *progressBar) Finish() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.total > 0 {
		p.done = p.total
	}
	p.draw()
	fmt.Fprint(p.w, "\n")
}

// Clear erases the line (on failure, before the error line).
func (p *progressBar) Clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\x1b[K")
}

const barWidth = 24

func (p *progressBar) draw() {
	el := p.now().Sub(p.start)
	var bar string
	if p.total > 0 {
		n := int(min(p.done, p.total) * barWidth / p.total)
		bar = strings.Repeat("=", n) + strings.Repeat(" ", barWidth-n)
	} else {
		pos := p.frames % barWidth
		bar = strings.Repeat(" ", pos) + "<=>" + strings.Repeat(" ", barWidth-pos)
		bar = bar[:barWidth]
		p.frames++
	}
	amount := p.fmt(p.done)
	if p.total > 0 {
		amount = fmt.Sprintf("%3d%% %s/%s", p.done*100/p.total, p.fmt(p.done), p.fmt(p.total))
	}
	rate := ""
	if s := el.Seconds(); s >= 0.5 && p.done > 0 {
		rate = "  " + p.fmt(int64(float64(p.done)/s)) + "/s"
	}
	if p.millis { // a rate of virtual seconds per second says little
		rate = ""
	}
	note := ""
	if p.note != "" {
		note = "  " + escapeTerm(p.note, false)
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s [%s] %s%s%s  %s", escapeTerm(p.label, false), bar, amount, rate, note, el.Truncate(100*time.Millisecond))
}

func (p *progressBar) fmt(n int64) string {
	switch {
	case p.bytes:
		return fmtBytes(n)
	case p.millis:
		return fmt.Sprintf("%.1fs", float64(n)/1000)
	}
	return fmt.Sprint(n)
}

// tick redraws the bar every interval until stop is closed, with the amount
// that poll returns (poll may be nil: the bar only shows time passing).
func (p *progressBar) tick(interval time.Duration, poll func() (done, total int64), stop <-chan struct{}) {
	if p == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var d, tot int64
		if poll != nil {
			d, tot = poll()
		}
		p.Set(d, tot)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// withProgress runs fn while a bar labelled label shows what poll reports
// (poll may be nil). The bar is finished before the command's first output
// and when fn succeeds, and cleared when it fails (before the error line).
func (c *cli) withProgress(label string, bytes bool, poll func() (done, total int64), fn func() error) error {
	p := c.progress(label, bytes)
	if p == nil {
		return fn()
	}
	stop, ticked := make(chan struct{}), make(chan struct{})
	go func() { defer close(ticked); p.tick(200*time.Millisecond, poll, stop) }()
	var once sync.Once
	end := func(ok bool) {
		once.Do(func() {
			close(stop)
			<-ticked
			if !ok {
				p.Clear()
				return
			}
			if poll != nil {
				p.Set(poll())
			}
			p.Finish()
		})
	}
	out := c.stdout
	c.stdout = writeHook{out, func() { end(true) }}
	err := fn()
	c.stdout = out
	end(err == nil)
	return err
}

// daemonProgress gives *token a fresh random value and returns a poll
// that asks the daemon how far the operation with that token has come
// (api.EpProgress); it reports the last answer when a look fails (the
// operation has not started yet, or is over). Without a bar it does nothing.
func (c *cli) daemonProgress(token *string) func() (done, total int64) {
	if c.json || !isTerminal(c.stderr) {
		return nil
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil
	}
	*token = hex.EncodeToString(b[:])
	id := *token
	var last api.ProgressResp
	return func() (int64, int64) {
		cl, err := c.client()
		if err != nil {
			return last.Done, last.Total
		}
		ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		defer cancel()
		if r, err := api.EpProgress.Call(ctx, cl, api.ProgressReq{ID: id}); err == nil {
			last = r
		}
		return last.Done, last.Total
	}
}

// writeHook calls before ahead of every write to w.
type writeHook struct {
	w      io.Writer
	before func()
}

func (h writeHook) Write(b []byte) (int, error) {
	h.before()
	return h.w.Write(b)
}

// barLines is an io.Writer of whole lines that go above a bar (Line).
type barLines struct {
	bar *progressBar
	buf []byte
}

func (l *barLines) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.bar.Line(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}
