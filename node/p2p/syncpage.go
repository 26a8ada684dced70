package p2p

import "github.com/parley-p2p/parley/internal/cborhead"

// The events page, the bulk of a catch-up's frames, is written and read
// without reflection: {"op": "events", "events": [frame, ...]} in the
// canonical form crdt.Marshal gives it. Every other frame, and a page in
// any other form, goes through crdt.Marshal and the strict decoder
// (FuzzEventsPage checks that both paths agree).

// eventsPageHead is the canonical start of an events page: a map of two
// pairs, "op": "events", then the key "events".
const eventsPageHead = "\xa2\x62op\x66events\x66events"

// maxPageArray is the strict decoder's bound on array elements
// (crdt's MaxArrayElements); a longer page goes to it, which refuses it.
const maxPageArray = 4096

// appendEventsPage appends the canonical encoding of
// syncMsg{Op: opEvents, Events: events} to dst, and reports false (dst
// unchanged) when the page is not of the form it writes: no events (the
// field is omitted then), a nil event (written as null), or more than the
// decoder takes.
func appendEventsPage(dst []byte, events [][]byte) ([]byte, bool) {
	if len(events) == 0 || len(events) > maxPageArray {
		return dst, false
	}
	n := len(eventsPageHead) + 9
	for _, e := range events {
		if e == nil {
			return dst, false
		}
		n += 9 + len(e)
	}
	out := append(make([]byte, 0, len(dst)+n), dst...)
	out = append(out, eventsPageHead...)
	out = cborhead.Append(out, cborhead.Array, uint64(len(events)))
	for _, e := range events {
		out = cborhead.Append(out, cborhead.Bytes, uint64(len(e)))
		out = append(out, e...)
	}
	return out, true
}

// decodeEventsPage reads an events page in the exact form appendEventsPage
// writes, copying the events out of b (the frame reader reuses it), and
// reports false for anything else.
func decodeEventsPage(b []byte) (*syncMsg, bool) {
	if len(b) < len(eventsPageHead) || string(b[:len(eventsPageHead)]) != eventsPageHead {
		return nil, false
	}
	rest := b[len(eventsPageHead):]
	count, rest, ok := cborhead.Read(rest, cborhead.Array)
	if !ok || count == 0 || count > maxPageArray {
		return nil, false
	}
	// First pass: check the layout and size the copy.
	total, p := 0, rest
	for range count {
		var n uint64
		if n, p, ok = cborhead.Read(p, cborhead.Bytes); !ok || n > uint64(len(p)) {
			return nil, false
		}
		total += int(n)
		p = p[n:]
	}
	if len(p) != 0 {
		return nil, false
	}
	buf := make([]byte, 0, total)
	events := make([][]byte, count)
	p = rest
	for i := range events {
		n, q, _ := cborhead.Read(p, cborhead.Bytes)
		at := len(buf)
		buf = append(buf, q[:n]...)
		events[i] = buf[at:len(buf):len(buf)]
		p = q[n:]
	}
	return &syncMsg{Op: opEvents, Events: events}, true
}
