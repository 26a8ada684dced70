package rbsr

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Protocol constants.
const (
	// ProtocolVersion is the first byte of every message.
	ProtocolVersion = 0x51
	// MaxIDLen is the longest accepted item ID in bytes.
	MaxIDLen = 40
	// FingerprintSize is the size of a range fingerprint in bytes.
	FingerprintSize = 16
	// MinFrameSizeLimit is the smallest non-zero Config.FrameSizeLimit.
	MinFrameSizeLimit = 4096
	// DefaultBranching is the default number of sub-ranges a mismatching range is split into.
	DefaultBranching = 16
	// DefaultIDListThreshold is the default range size below which IDs are listed explicitly.
	DefaultIDListThreshold = 32

	maxBranching = 1 << 16
)

const (
	modeSkip        = 0
	modeFingerprint = 1
	modeIDList      = 2
)

// Errors returned by the package. Decoding errors wrap ErrMalformed.
var (
	ErrMalformed = errors.New("rbsr: malformed message")
	ErrConfig    = errors.New("rbsr: invalid config")
	ErrItems     = errors.New("rbsr: invalid item set")
	ErrState     = errors.New("rbsr: call out of sequence")
)

// cidPrefix is the prefix of a Parley event ID (CIDv1, dag-cbor, sha2-256, 32 bytes).
const cidPrefix = "\x01\x71\x12\x20"

// Item is one set element. ID holds raw bytes (the crdt.EventID
// representation), 1..MaxIDLen bytes long. Depth must be below math.MaxUint64.
type Item struct {
	Depth uint64
	ID    string
}

// Compare orders items by Depth, then ID bytewise.
func (a Item) Compare(b Item) int {
	if a.Depth != b.Depth {
		if a.Depth < b.Depth {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID, b.ID)
}

// Config tunes a Reconciler. The zero value gives the defaults. Both sides may
// use different settings, because every message is self-describing.
type Config struct {
	// FrameSizeLimit caps every produced message in bytes. 0 means unlimited,
	// otherwise it must be >= MinFrameSizeLimit.
	FrameSizeLimit int
	// Branching is the number of sub-ranges a mismatching range is split into
	// (default 16, 2..65536).
	Branching int
	// IDListThreshold: ranges with fewer local items are sent as explicit ID
	// lists (default 32, must be >= 2).
	IDListThreshold int
}

func (c *Config) normalize() error {
	if c.Branching == 0 {
		c.Branching = DefaultBranching
	}
	if c.IDListThreshold == 0 {
		c.IDListThreshold = DefaultIDListThreshold
	}
	switch {
	case c.FrameSizeLimit < 0 || (c.FrameSizeLimit > 0 && c.FrameSizeLimit < MinFrameSizeLimit):
		return fmt.Errorf("%w: FrameSizeLimit %d (0 or >= %d)", ErrConfig, c.FrameSizeLimit, MinFrameSizeLimit)
	case c.Branching < 2 || c.Branching > maxBranching:
		return fmt.Errorf("%w: Branching %d (2..%d)", ErrConfig, c.Branching, maxBranching)
	case c.IDListThreshold < 2:
		return fmt.Errorf("%w: IDListThreshold %d (>= 2)", ErrConfig, c.IDListThreshold)
	}
	return nil
}

// Reconciler is one side of a reconciliation session over a fixed item set.
// A Reconciler that has called Initiate is the initiator. It keeps session
// state and is not safe for concurrent use. A Reconciler that never called
// Initiate is a responder. It is read-only and safe for concurrent use.
type Reconciler struct {
	items []Item
	sums  []acc // sums[i] = Σ v(items[:i]) mod 2^256
	cfg   Config

	itemWire int // estimated bytes of one item in an IdList

	initiator bool
	done      bool
	have      []Item
	need      []Item
}

// New builds a Reconciler over items. items must be strictly ascending by
// (Depth, ID). New copies the slice.
func New(items []Item, cfg Config) (*Reconciler, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	r := &Reconciler{items: slices.Clone(items), cfg: cfg}
	r.sums = make([]acc, len(items)+1)
	idBytes := 0
	for i, it := range r.items {
		idBytes += len(it.ID)
		if len(it.ID) == 0 || len(it.ID) > MaxIDLen {
			return nil, fmt.Errorf("%w: item %d has ID length %d (1..%d)", ErrItems, i, len(it.ID), MaxIDLen)
		}
		if it.Depth == math.MaxUint64 {
			return nil, fmt.Errorf("%w: item %d has reserved depth MaxUint64", ErrItems, i)
		}
		if i > 0 && r.items[i-1].Compare(it) >= 0 {
			return nil, fmt.Errorf("%w: items not strictly ascending at index %d", ErrItems, i)
		}
		r.sums[i+1] = r.sums[i].add(value(it))
	}
	r.itemWire = 2 + 36
	if len(r.items) > 0 {
		r.itemWire = 2 + idBytes/len(r.items)
	}
	return r, nil
}

// Len returns the number of items.
func (r *Reconciler) Len() int { return len(r.items) }

// SetInitiator marks r as the initiator without producing a message. It is
// implied by Initiate and only matters to callers that want Reconcile to keep
// have/need for a session whose first message was built elsewhere.
func (r *Reconciler) SetInitiator() {
	r.initiator = true
}

// Initiate starts (or restarts) a session with r as the initiator. It
// returns the first message and clears Have and Need.
func (r *Reconciler) Initiate() ([]byte, error) {
	r.initiator, r.done = true, false
	r.have, r.need = nil, nil
	e := r.newEncoder()
	r.expand(e, bound{}, bound{inf: true}, 0, len(r.items), false)
	return e.buf, nil
}

// Done reports whether the initiator's session is complete.
func (r *Reconciler) Done() bool { return r.done }

// Reconcile processes a peer message. On the initiator it returns the next
// message, or nil when reconciliation is complete, and accumulates Have and
// Need. On the responder it returns the reply, which is never nil. A
// malformed message gives an error that wraps ErrMalformed and leaves the
// state unchanged.
func (r *Reconciler) Reconcile(msg []byte) ([]byte, error) {
	if r.initiator && r.done {
		return nil, fmt.Errorf("%w: session already complete", ErrState)
	}
	ranges, err := decode(msg)
	if err != nil {
		return nil, err
	}
	out := r.process(ranges)
	if r.initiator && len(out) == 1 {
		r.done = true
		return nil, nil
	}
	return out, nil
}

// Have returns the items the local side has and the peer lacks, sorted and
// de-duplicated. It is complete only on the initiator after Reconcile has
// returned nil. A responder returns nil.
func (r *Reconciler) Have() []Item {
	if !r.initiator {
		return nil
	}
	r.have = sortUniq(r.have)
	return slices.Clone(r.have)
}

// Need returns the items the peer has and the local side lacks (with the
// depth the peer sent), sorted and de-duplicated. It is complete only on the
// initiator after Reconcile has returned nil. A responder returns nil.
func (r *Reconciler) Need() []Item {
	if !r.initiator {
		return nil
	}
	r.need = sortUniq(r.need)
	return slices.Clone(r.need)
}

func sortUniq(s []Item) []Item {
	if slices.IsSortedFunc(s, Item.Compare) {
		return slices.Compact(s)
	}
	slices.SortFunc(s, Item.Compare)
	return slices.Compact(s)
}

// --- fingerprints ---

// acc is a 256-bit little-endian accumulator.
type acc [4]uint64

func (a acc) add(b acc) acc {
	var c uint64
	for i := range a {
		s := a[i] + b[i]
		c1 := uint64(0)
		if s < a[i] {
			c1 = 1
		}
		s2 := s + c
		if s2 < s {
			c1 = 1
		}
		a[i], c = s2, c1
	}
	return a
}

func (a acc) sub(b acc) acc {
	var br uint64
	for i := range a {
		d := a[i] - b[i]
		b1 := uint64(0)
		if a[i] < b[i] {
			b1 = 1
		}
		d2 := d - br
		if d < br {
			b1 = 1
		}
		a[i], br = d2, b1
	}
	return a
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// value is v(item) = LE256(digest(ID)) + Depth mod 2^256.
func value(it Item) acc {
	var d string
	if len(it.ID) == 36 && it.ID[:4] == cidPrefix {
		d = it.ID[4:]
	} else {
		h := sha256.Sum256([]byte(it.ID))
		d = string(h[:])
	}
	v := acc{le64(d[0:]), le64(d[8:]), le64(d[16:]), le64(d[24:])}
	return v.add(acc{it.Depth})
}

// fingerprint of items[lo:hi].
func (r *Reconciler) fingerprint(lo, hi int) [FingerprintSize]byte {
	s := r.sums[hi].sub(r.sums[lo])
	var buf [32 + binary.MaxVarintLen64]byte
	for i, w := range s {
		binary.LittleEndian.PutUint64(buf[8*i:], w)
	}
	n := binary.PutUvarint(buf[32:], uint64(hi-lo))
	h := sha256.Sum256(buf[:32+n])
	var fp [FingerprintSize]byte
	copy(fp[:], h[:])
	return fp
}

// --- bounds ---

// bound is an exclusive upper (or inclusive lower) limit in the item order.
// The zero bound is below every item.
type bound struct {
	inf   bool
	depth uint64
	id    string
}

// itemBelow reports whether it < b.
func itemBelow(it Item, b bound) bool {
	if b.inf {
		return true
	}
	if it.Depth != b.depth {
		return it.Depth < b.depth
	}
	return it.ID < b.id
}

func boundLess(a, b bound) bool {
	switch {
	case a.inf:
		return false
	case b.inf:
		return true
	case a.depth != b.depth:
		return a.depth < b.depth
	}
	return a.id < b.id
}

// minimalBound returns the shortest bound b with prev < b <= curr.
func minimalBound(prev, curr Item) bound {
	if prev.Depth != curr.Depth {
		return bound{depth: curr.Depth}
	}
	k := 0
	for k < len(prev.ID) && k < len(curr.ID) && prev.ID[k] == curr.ID[k] {
		k++
	}
	return bound{depth: curr.Depth, id: curr.ID[:k+1]}
}

// lowerBound returns the first index >= from whose item is not below b.
func (r *Reconciler) lowerBound(b bound, from int) int {
	if b.inf {
		return len(r.items)
	}
	return from + sort.Search(len(r.items)-from, func(i int) bool { return !itemBelow(r.items[from+i], b) })
}

// --- processing ---

func (r *Reconciler) process(ranges []rangeMsg) []byte {
	e := r.newEncoder()
	prevB, prevIdx := bound{}, 0
	for i := range ranges {
		rg := &ranges[i]
		lo := prevIdx
		hi := r.lowerBound(rg.ub, lo)
		switch rg.mode {
		case modeFingerprint:
			if r.fingerprint(lo, hi) != rg.fp {
				if !r.expand(e, prevB, rg.ub, lo, hi, false) {
					return e.buf
				}
			}
		case modeIDList:
			if r.initiator {
				r.resolve(rg.ids, r.items[lo:hi])
			} else if !slices.Equal(rg.ids, r.items[lo:hi]) {
				if !r.expand(e, prevB, rg.ub, lo, hi, true) {
					return e.buf
				}
			}
		}
		prevB, prevIdx = rg.ub, hi
	}
	return e.buf
}

// resolve merges the peer's list with ours for one range into have/need.
func (r *Reconciler) resolve(theirs, ours []Item) {
	i, j := 0, 0
	for i < len(theirs) || j < len(ours) {
		switch {
		case j == len(ours):
			r.need = append(r.need, theirs[i])
			i++
		case i == len(theirs):
			r.have = append(r.have, ours[j])
			j++
		default:
			switch c := theirs[i].Compare(ours[j]); {
			case c < 0:
				r.need = append(r.need, theirs[i])
				i++
			case c > 0:
				r.have = append(r.have, ours[j])
				j++
			default:
				i++
				j++
			}
		}
	}
}

// listAnswerCost estimates the bytes of the peer's answer to an IdList of n
// items. The responder echoes a list. The initiator answers nothing.
func (r *Reconciler) listAnswerCost(n int) int {
	if !r.initiator {
		return 0
	}
	return n*r.itemWire + 4
}

// fpAnswerCost estimates the bytes of the peer's answer to a (mismatching)
// fingerprint over n local items: an IdList or a split.
func (r *Reconciler) fpAnswerCost(n int) int {
	if n < r.cfg.IDListThreshold {
		return n*r.itemWire + 4
	}
	return min(r.cfg.Branching, n) * (FingerprintSize + 6)
}

// expand emits our view of the range [lower, ub) (items[lo:hi]) so the peer
// can make progress. It returns false if the frame filled up and the message
// was closed with a catch-all range. No further ranges may then be added.
func (r *Reconciler) expand(e *encoder, lower, ub bound, lo, hi int, listOnly bool) bool {
	if !e.deferring {
		n := hi - lo
		if listOnly || n < r.cfg.IDListThreshold {
			if listOnly || e.admit(r.listAnswerCost(n)) {
				k, complete := e.idList(r.items, lower, ub, lo, hi)
				if complete {
					e.expandedPiece(r.listAnswerCost(k))
					return true
				}
				// Partial: the first k items were sent (k may be 0). Defer the rest.
				if k > 0 {
					e.expandedPiece(r.listAnswerCost(k))
					lower = minimalBound(r.items[lo+k-1], r.items[lo+k])
					lo += k
				}
			}
			e.deferring = true
		} else {
			nb := min(r.cfg.Branching, n)
			start, bl := lo, lower
			complete := true
			for i := range nb {
				end := lo + n*(i+1)/nb
				bu := ub
				if i < nb-1 {
					bu = minimalBound(r.items[end-1], r.items[end])
				}
				fp := r.fingerprint(start, end)
				cost := r.fpAnswerCost(end - start)
				if !e.admit(cost) || !e.tryRange(bl, bu, modeFingerprint, fp[:]) {
					complete = false
					break
				}
				e.expandedPiece(cost)
				start, bl = end, bu
			}
			if complete {
				return true
			}
			e.deferring = true
			lower, lo = bl, start
		}
	}
	// Deferred: echo our fingerprint so the peer splits it next round.
	fp := r.fingerprint(lo, hi)
	if e.tryRange(lower, ub, modeFingerprint, fp[:]) {
		return true
	}
	e.close(lower, r.fingerprint(lo, len(r.items)))
	return false
}
