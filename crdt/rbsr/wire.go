package rbsr

import (
	"encoding/binary"
	"fmt"
	"math"
)

// reserve is the number of bytes kept free in a limited frame. It always
// fits a Skip to any bound (<= 52 bytes) plus the closing (+∞, Fingerprint)
// range (19 bytes).
const reserve = 80

type encoder struct {
	buf       []byte
	limit     int
	lastDepth uint64
	last      bound // upper bound of the last emitted range
	deferring bool  // the frame is nearly full: defer instead of expanding

	// expect estimates the size of the peer's answer to what has been
	// expanded so far. Expansion stops once it would exceed the limit,
	// because the peer would otherwise truncate its answer and the work
	// past its cut would be lost.
	expect   int
	expanded bool // at least one expansion piece was emitted (progress)
}

// admit reports whether an expansion piece whose answer is expected to cost
// cost bytes may be emitted. The first piece is always admitted, so every
// message makes progress.
func (e *encoder) admit(cost int) bool {
	return e.limit == 0 || !e.expanded || e.expect+cost <= e.limit-reserve
}

func (e *encoder) expandedPiece(cost int) {
	e.expect += cost
	e.expanded = true
}

func (r *Reconciler) newEncoder() *encoder {
	e := &encoder{limit: r.cfg.FrameSizeLimit}
	e.buf = append(make([]byte, 0, 256), ProtocolVersion)
	return e
}

func (e *encoder) putBound(b bound) {
	if b.inf {
		e.buf = append(e.buf, 0, 0)
		return
	}
	// Bounds strictly increase and depth < MaxUint64, so this cannot overflow.
	e.buf = binary.AppendUvarint(e.buf, 1+b.depth-e.lastDepth)
	e.lastDepth = b.depth
	e.buf = binary.AppendUvarint(e.buf, uint64(len(b.id)))
	e.buf = append(e.buf, b.id...)
}

// begin starts a range whose lower bound is lower, emitting a Skip over any
// gap since the last emitted range. It returns a rollback mark.
func (e *encoder) begin(lower bound) (int, uint64) {
	mark, depth := len(e.buf), e.lastDepth
	if lower != e.last {
		e.putBound(lower)
		e.buf = append(e.buf, modeSkip)
	}
	return mark, depth
}

// commit keeps the range that ends at ub if the frame still has its reserve.
// Otherwise it rolls the range back.
func (e *encoder) commit(mark int, depth uint64, ub bound) bool {
	if e.limit > 0 && len(e.buf)+reserve > e.limit {
		e.buf, e.lastDepth = e.buf[:mark], depth
		return false
	}
	e.last = ub
	return true
}

func (e *encoder) tryRange(lower, ub bound, mode byte, payload []byte) bool {
	mark, depth := e.begin(lower)
	e.putBound(ub)
	e.buf = append(e.buf, mode)
	e.buf = append(e.buf, payload...)
	return e.commit(mark, depth, ub)
}

func itemSize(prevDepth uint64, it Item) int {
	return uvarintLen(it.Depth-prevDepth) + 1 + len(it.ID)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// idList emits an IdList range for items[lo:hi]. If complete, every item was
// sent and the range ends at ub. Otherwise only the first k items were sent
// (k may be 0, meaning nothing was emitted) and the range ends between item
// lo+k-1 and item lo+k.
func (e *encoder) idList(items []Item, lower, ub bound, lo, hi int) (k int, complete bool) {
	if e.tryIDList(items, lower, ub, lo, hi) {
		return hi - lo, true
	}
	// Estimate how many items fit, then back off until one does.
	budget := e.limit - reserve - len(e.buf) - 2*(binary.MaxVarintLen64+1+MaxIDLen+1) - binary.MaxVarintLen64
	prev := lower.depth
	for lo+k < hi-1 {
		s := itemSize(prev, items[lo+k])
		if budget < s {
			break
		}
		budget -= s
		prev = items[lo+k].Depth
		k++
	}
	for ; k > 0; k-- {
		if e.tryIDList(items, lower, minimalBound(items[lo+k-1], items[lo+k]), lo, lo+k) {
			return k, false
		}
	}
	return 0, false
}

func (e *encoder) tryIDList(items []Item, lower, ub bound, lo, hi int) bool {
	if e.limit > 0 && len(e.buf)+(hi-lo)*2 > e.limit {
		return false // certainly too big, skip the trial encode
	}
	mark, depth := e.begin(lower)
	e.putBound(ub)
	e.buf = append(e.buf, modeIDList)
	e.buf = binary.AppendUvarint(e.buf, uint64(hi-lo))
	prev := lower.depth
	for _, it := range items[lo:hi] {
		e.buf = binary.AppendUvarint(e.buf, it.Depth-prev)
		e.buf = append(e.buf, byte(len(it.ID)))
		e.buf = append(e.buf, it.ID...)
		prev = it.Depth
		if e.limit > 0 && len(e.buf)+reserve > e.limit {
			break
		}
	}
	return e.commit(mark, depth, ub)
}

// close ends the message with one (+∞, Fingerprint) range that starts at
// lower. It always fits because of the reserve.
func (e *encoder) close(lower bound, fp [FingerprintSize]byte) {
	e.begin(lower)
	e.putBound(bound{inf: true})
	e.buf = append(e.buf, modeFingerprint)
	e.buf = append(e.buf, fp[:]...)
	e.last = bound{inf: true}
}

// --- decoding ---

type rangeMsg struct {
	ub   bound
	mode byte
	fp   [FingerprintSize]byte
	ids  []Item
}

type decoder struct {
	buf []byte
	off int // offset in the whole message, for error messages
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrMalformed, d.off, fmt.Sprintf(format, args...))
}

func (d *decoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.buf)
	if n <= 0 {
		if n == 0 {
			return 0, d.errorf("truncated varint")
		}
		return 0, d.errorf("varint overflows 64 bits")
	}
	d.buf, d.off = d.buf[n:], d.off+n
	return x, nil
}

func (d *decoder) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(d.buf)) {
		return nil, d.errorf("need %d bytes, have %d", n, len(d.buf))
	}
	b := d.buf[:n]
	d.buf, d.off = d.buf[n:], d.off+int(n)
	return b, nil
}

// id reads varint(len) ‖ bytes with len <= MaxIDLen.
func (d *decoder) id() (string, error) {
	n, err := d.uvarint()
	if err != nil {
		return "", err
	}
	if n > MaxIDLen {
		return "", d.errorf("ID length %d exceeds %d", n, MaxIDLen)
	}
	b, err := d.bytes(n)
	return string(b), err
}

// depth applies an encoded delta to base. Depth MaxUint64 is reserved.
func (d *decoder) depth(base, delta uint64) (uint64, error) {
	if delta >= math.MaxUint64-base {
		return 0, d.errorf("depth overflow")
	}
	return base + delta, nil
}

func (d *decoder) bound(lastDepth *uint64) (bound, error) {
	enc, err := d.uvarint()
	if err != nil {
		return bound{}, err
	}
	id, err := d.id()
	if err != nil {
		return bound{}, err
	}
	if enc == 0 {
		if id != "" {
			return bound{}, d.errorf("infinite bound with ID prefix")
		}
		return bound{inf: true}, nil
	}
	dep, err := d.depth(*lastDepth, enc-1)
	if err != nil {
		return bound{}, err
	}
	*lastDepth = dep
	return bound{depth: dep, id: id}, nil
}

// decode parses and fully validates a message. Allocation is proportional
// to len(msg).
func decode(msg []byte) ([]rangeMsg, error) {
	if len(msg) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	if msg[0] != ProtocolVersion {
		return nil, fmt.Errorf("%w: unsupported protocol version 0x%02x (want 0x%02x)", ErrMalformed, msg[0], ProtocolVersion)
	}
	d := &decoder{buf: msg[1:], off: 1}
	var out []rangeMsg
	prev := bound{}
	var lastDepth uint64
	for len(d.buf) > 0 {
		if prev.inf {
			return nil, d.errorf("range after +∞ bound")
		}
		ub, err := d.bound(&lastDepth)
		if err != nil {
			return nil, err
		}
		if !boundLess(prev, ub) {
			return nil, d.errorf("bounds not strictly ascending")
		}
		m, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		rg := rangeMsg{ub: ub, mode: byte(m)}
		switch m {
		case modeSkip:
		case modeFingerprint:
			b, err := d.bytes(FingerprintSize)
			if err != nil {
				return nil, err
			}
			copy(rg.fp[:], b)
		case modeIDList:
			if rg.ids, err = d.idList(prev, ub); err != nil {
				return nil, err
			}
		default:
			return nil, d.errorf("unknown mode %d", m)
		}
		out = append(out, rg)
		prev = ub
	}
	return out, nil
}

func (d *decoder) idList(lower, ub bound) ([]Item, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	const minItem = 3 // delta, length, at least one ID byte
	if n > uint64(len(d.buf)/minItem) {
		return nil, d.errorf("ID count %d exceeds remaining length", n)
	}
	ids := make([]Item, 0, n)
	depth := lower.depth
	for i := uint64(0); i < n; i++ {
		delta, err := d.uvarint()
		if err != nil {
			return nil, err
		}
		if depth, err = d.depth(depth, delta); err != nil {
			return nil, err
		}
		id, err := d.id()
		if err != nil {
			return nil, err
		}
		it := Item{Depth: depth, ID: id}
		switch {
		case id == "":
			return nil, d.errorf("empty ID")
		case itemBelow(it, lower) || !itemBelow(it, ub):
			return nil, d.errorf("ID list item outside its range")
		case len(ids) > 0 && ids[len(ids)-1].Compare(it) >= 0:
			return nil, d.errorf("ID list not strictly ascending")
		}
		ids = append(ids, it)
	}
	return ids, nil
}
