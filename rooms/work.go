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
