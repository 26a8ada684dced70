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

// pageBuilder writes an events page, in the form appendEventsPage writes,
// as its events come: each event's byte string head and bytes into buf
// after room for the page's head, which page writes in front once the
// count is known. buf may be reused once the page is sent. It takes at
// most maxPageArray events, none nil (sendEvents: pageEvents, read frames).
type pageBuilder struct {
	buf   []byte // pageHeadRoom octets, then the events
	count int    // events added
	size  int    // octets of the events, without their heads
}

// pageHeadRoom fits the page's head: eventsPageHead and the array head.
const pageHeadRoom = len(eventsPageHead) + 9

// add appends an event.
func (p *pageBuilder) add(ev []byte) {
	if len(p.buf) < pageHeadRoom {
		p.buf = append(p.buf[:0], make([]byte, pageHeadRoom)...)
	}
	p.buf = cborhead.Append(p.buf, cborhead.Bytes, uint64(len(ev)))
	p.buf = append(p.buf, ev...)
	p.count++
	p.size += len(ev)
}

// page writes the page's head in front of its events and returns the
// page, a slice of buf.
func (p *pageBuilder) page() []byte {
	var head [pageHeadRoom]byte
	h := cborhead.Append(append(head[:0], eventsPageHead...), cborhead.Array, uint64(p.count))
	start := pageHeadRoom - len(h)
	copy(p.buf[start:], h)
	return p.buf[start:]
}

// decodeEventsPage reads an events page in the exact form appendEventsPage
// writes, and reports false for anything else. The events are cut from b,
// not copied: they are valid as long as b is (frames.recv: until the next
// recv), and a requester decodes them (crdt.DecodeBatch copies what it
// keeps) before it reads the next frame.
func decodeEventsPage(b []byte) (*syncMsg, bool) {
	if len(b) < len(eventsPageHead) || string(b[:len(eventsPageHead)]) != eventsPageHead {
		return nil, false
	}
	rest := b[len(eventsPageHead):]
	count, rest, ok := cborhead.Read(rest, cborhead.Array)
	if !ok || count == 0 || count > maxPageArray {
		return nil, false
	}
	events := make([][]byte, 0, min(count, uint64(len(rest))))
	for range count {
		var n uint64
		if n, rest, ok = cborhead.Read(rest, cborhead.Bytes); !ok || n > uint64(len(rest)) {
			return nil, false
		}
		events = append(events, rest[:n:n])
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, false
	}
	return &syncMsg{Op: opEvents, Events: events}, true
}
