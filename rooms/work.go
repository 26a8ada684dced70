package rooms

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/parley-p2p/parley/crdt"
)

// Join proof of work (docs/protocol.md §5, "Proof of work on joins"): a
// room whose room.limits sets join_work D > 0 refuses a join or knock of
// a user who is neither joined nor invited in the state before it unless
// the member body carries work W with
//
//	SHA-256("parley/join-work/1" ‖ 0x00 ‖ room ID ‖ user key ‖ W)
//
// starting with D zero bits. It binds the room and the user, so one proof
// serves one identity in one room (a leave and a new join reuse it), and
// it costs about 2^D hashes to mint and one to verify.
//
// The rule reads the state before the join, so a join built on parents
// from before the room.limits event L asking for work would need none.
// Three more rules close that gap, as strong removal does for a ban
// concurrent with an event (overlay.go):
//
//   - overlay: L hides every stranger's join or knock (its sender neither
//     joined nor invited in the state before it) that is concurrent with L
//     (neither in L's past nor after it) and carries fewer than L's
//     join_work bits ("join without the proof of work asked concurrently"),
//     and, transitively, the events whose auth references needed it;
//   - resolution (R4): room.limits is a power event, so it is applied
//     before members, and the iterative auth check of a member event
//     applies this rule against the partial state: where such a join meets
//     L, the resolved state drops it, and the joiner's later events (which
//     know L) are refused as the events of a user who is not joined.
//   - a join after L (L in its past) is judged by R3 as before.

// workTag separates join-work hashes from every other hash.
const workTag = "parley/join-work/1\x00"

// MaxWorkLen bounds the work field of a member body.
const MaxWorkLen = 16

// DefaultJoinWork is the difficulty `parley room limits --join-work` sets
// when asked for proof of work without a number: about 2^20 hashes, a few
// hundred milliseconds of one core (docs/limits.md has the measurement).
const DefaultJoinWork = 20

// WorkBits returns the leading zero bits of the join-work hash of work for
// user in room.
func WorkBits(room crdt.RoomID, user crdt.UserID, work []byte) int {
	h := sha256.New()
	h.Write([]byte(workTag))
	h.Write([]byte(room))
	h.Write(user[:])
	h.Write(work)
	var sum [sha256.Size]byte
	return leadingZeros(h.Sum(sum[:0]))
}

// MintWork finds work with at least d leading zero bits for user in room,
// trying counters from start on (callers pass a random start so that two
// devices of one user do not repeat each other's work). It returns nil if
// stop reports true first; stop is asked every 2^14 tries, and may be nil.
func MintWork(room crdt.RoomID, user crdt.UserID, d int, start uint64, stop func() bool) []byte {
	buf := make([]byte, 0, len(workTag)+len(room)+len(user)+8)
	buf = append(append(append(buf, workTag...), room...), user[:]...)
	n := len(buf)
	buf = buf[:n+8]
	for i := start; ; i++ {
		if i&(1<<14-1) == 0 && stop != nil && stop() {
			return nil
		}
		binary.BigEndian.PutUint64(buf[n:], i)
		sum := sha256.Sum256(buf)
		if leadingZeros(sum[:]) >= d {
			return append([]byte(nil), buf[n:]...)
		}
	}
}

func leadingZeros(b []byte) int {
	n := 0
	for _, x := range b {
		if x != 0 {
			return n + bits.LeadingZeros8(x)
		}
		n += 8
	}
	return n
}

// joinWork applies the join proof of work in force in the state before a
// member event (R3): it returns the refusal reason, or "".
func joinWork(room crdt.RoomID, sender crdt.UserID, lb *LimitsBody, sm string, p *parsed) string {
	if lb == nil || lb.JoinWork == 0 || !p.hasTarget || p.target != sender || p.member == nil {
		return ""
	}
	if p.membership != Join && p.membership != Knock {
		return ""
	}
	if sm == Join || sm == Invite {
		return "" // a member's own update, or an invited user: vouched for
	}
	if len(p.member.Work) == 0 {
		return "the room asks for proof of work on joins and the join carries none"
	}
	if got := WorkBits(room, sender, p.member.Work); got < int(lb.JoinWork) {
		return fmt.Sprintf("join proof of work too weak: %d zero bits, the room asks for %d", got, lb.JoinWork)
	}
	return ""
}

// strangerJoinWork returns the zero bits of the work of a stranger's own
// join or knock (sm: the sender's membership before it; 0 for none), or
// -1 when the event is not one (workHides never hides it).
func strangerJoinWork(room crdt.RoomID, sender crdt.UserID, sm string, p *parsed) int {
	if !p.hasTarget || p.target != sender || p.member == nil || sm == Join || sm == Invite {
		return -1
	}
	if p.membership != Join && p.membership != Knock {
		return -1
	}
	if len(p.member.Work) == 0 {
		return 0
	}
	return WorkBits(room, sender, p.member.Work)
}

// reasonJoinWork is why the overlay hides a join concurrent with a
// room.limits event asking for more work than it carries.
const reasonJoinWork = "join without the proof of work asked concurrently"

// workHides reports whether the work rule of room.limits event l hides x,
// an event not in l's past: a stranger's join or knock not after l with
// fewer bits than l asks.
func (r *Room) workHides(l, x int32) bool {
	xi := r.ev(x)
	return xi.work >= 0 && int64(xi.work) < r.ev(l).workReq && !xi.rmIncl.has(l)
}
