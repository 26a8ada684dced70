package p2p

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
	out = appendHead(out, 4, uint64(len(events)))
	for _, e := range events {
		out = appendHead(out, 2, uint64(len(e)))
		out = append(out, e...)
	}
	return out, true
}

// appendHead appends the shortest CBOR head of major type major.
func appendHead(dst []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(dst, m|byte(n))
	case n <= 0xff:
		return append(dst, m|24, byte(n))
	case n <= 0xffff:
		return append(dst, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(dst, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// decodeEventsPage reads an events page in the exact form appendEventsPage
// writes, copying the events out of b (the frame reader reuses it), and
// reports false for anything else.
func decodeEventsPage(b []byte) (*syncMsg, bool) {
	if len(b) < len(eventsPageHead) || string(b[:len(eventsPageHead)]) != eventsPageHead {
		return nil, false
	}
	rest := b[len(eventsPageHead):]
	count, rest, ok := readHead(rest, 4)
	if !ok || count == 0 || count > maxPageArray {
		return nil, false
	}
	// First pass: check the layout and size the copy.
	total, p := 0, rest
	for range count {
		var n uint64
		if n, p, ok = readHead(p, 2); !ok || n > uint64(len(p)) {
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
		n, q, _ := readHead(p, 2)
		at := len(buf)
		buf = append(buf, q[:n]...)
		events[i] = buf[at:len(buf):len(buf)]
		p = q[n:]
	}
	return &syncMsg{Op: opEvents, Events: events}, true
}

// readHead reads a definite head of major type major in its shortest form.
func readHead(b []byte, major byte) (uint64, []byte, bool) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, false
	}
	info := b[0] & 0x1f
	var n, least uint64
	switch {
	case info < 24:
		return uint64(info), b[1:], true
	case info == 24 && len(b) >= 2:
		n, least, b = uint64(b[1]), 24, b[2:]
	case info == 25 && len(b) >= 3:
		n, least, b = uint64(b[1])<<8|uint64(b[2]), 1<<8, b[3:]
	case info == 26 && len(b) >= 5:
		n, least, b = uint64(b[1])<<24|uint64(b[2])<<16|uint64(b[3])<<8|uint64(b[4]), 1<<16, b[5:]
	case info == 27 && len(b) >= 9:
		for _, c := range b[1:9] {
			n = n<<8 | uint64(c)
		}
		least, b = 1<<32, b[9:]
	default:
		return 0, nil, false
	}
	return n, b, n >= least
}
