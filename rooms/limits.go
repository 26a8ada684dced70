package rooms

import (
	"fmt"
	"strings"

	"github.com/parley-p2p/parley/crdt"
)

// Room rate limits (docs/protocol.md §5, "Rate limits"): a `room.limits`
// state event, set like any state by senders at the state level, caps how
// many events one device of a member may author per minute. The rule is a
// function of the event's causal past only: the author's own earlier
// events, found through its self chain, and their signed timestamps.

// TypeLimits is the room's rate limits (state key "").
const TypeLimits = "room.limits"

// LimitWindow is the window of the rate limit, in milliseconds of the
// authors' own timestamps.
const LimitWindow = 60_000

// MaxLimitMessages bounds the messages a limit may allow per window, and
// so the self-chain walk of each check.
const MaxLimitMessages = 10_000

// MaxLimitBytes bounds the bytes a limit may allow per window (1 GiB).
const MaxLimitBytes = 1 << 30

// MaxJoinWork bounds the difficulty of the join proof of work (work.go):
// 2^28 hashes is minutes of one core, far past what an honest joiner
// should wait.
const MaxJoinWork = 28

// LimitsBody is the body of a room.limits event. Zero means no limit.
type LimitsBody struct {
	Messages int64 `cbor:"messages,omitempty"` // events per device per LimitWindow
	// Bytes caps the bytes one device may author per LimitWindow, as its
	// events' envelopes state them (crdt.Event.SignedSize: the envelope
	// and its signed body length, blen), so the rule (R3, overLimit) does
	// not change when a body is purged. Where it is in force, an event
	// must sign its body length (BodyLenAt).
	Bytes int64 `cbor:"bytes,omitempty"`
	// JoinWork is the proof of work (work.go) a join or knock of a user
	// not invited must carry: leading zero bits, 0 for none.
	JoinWork int64 `cbor:"join_work,omitempty"`
}

func parseLimits(skey *string, body []byte) (*LimitsBody, error) {
	if skey == nil || *skey != "" {
		return nil, malformed("%s event needs the empty state key", TypeLimits)
	}
	var lb LimitsBody
	if err := DecodeBody(body, &lb); err != nil {
		return nil, malformed("bad %s body", TypeLimits)
	}
	if lb.Messages < 0 || lb.Messages > MaxLimitMessages {
		return nil, malformed("%s messages out of range 0-%d", TypeLimits, MaxLimitMessages)
	}
	if lb.Bytes < 0 || lb.Bytes > MaxLimitBytes {
		return nil, malformed("%s bytes out of range 0-%d", TypeLimits, MaxLimitBytes)
	}
	if lb.JoinWork < 0 || lb.JoinWork > MaxJoinWork {
		return nil, malformed("%s join_work out of range 0-%d", TypeLimits, MaxJoinWork)
	}
	return &lb, nil
}

// MaxBytesChain bounds the events of a self chain the bytes limit counts:
// the latest MaxBytesChain before an event (so the walk stays short however
// large the limit).
const MaxBytesChain = 1024

// overLimit applies the rate limits in force in the state before the event
// (R3, after the permission checks), unless E's sender is at or above the
// level that may change the limits. Messages: an event E of device D is
// refused when the limit allows N events per window and D's self chain
// before E holds N events whose ts is within (E.ts - LimitWindow, E.ts].
// Bytes: E must sign its body length (blen), and is refused when the latest
// MaxBytesChain events of that part of the chain sum to the limit or more
// (crdt.Event.SignedSize; events without blen count their envelope). Every
// event on the chain counts, refused ones too, so a device that keeps
// writing past its limit stays refused until it pauses; ts never decreases
// along a self chain (R2). It returns the refusal reason, or "".
func (r *Room) overLimit(info *evInfo, in *authInput) string {
	v := info.before.lookup(kLimits)
	if v < 0 {
		return ""
	}
	lb := r.ev(v).body.limits
	e := info.ev
	if lb == nil || lb.Messages == 0 && lb.Bytes == 0 {
		return ""
	}
	if in.power(e.User) >= in.levels.EventLevel(TypeLimits, true) {
		return "" // those who may change the limits are not held by them
	}
	if lb.Bytes > 0 && !e.HasBodyLen {
		return "the room limits bytes per minute and the event does not sign its body length"
	}
	var n, bytes int64
	for cur := e; cur.Seq > 0; {
		si, ok := r.idx(cur.Self)
		if !ok {
			break
		}
		cur = r.ev(si).ev
		if cur.TS <= e.TS-LimitWindow {
			break
		}
		n++
		if lb.Messages > 0 && n >= lb.Messages {
			return fmt.Sprintf("over the room's limit of %d events per minute", lb.Messages)
		}
		if lb.Bytes > 0 && n <= MaxBytesChain {
			if bytes += cur.SignedSize(); bytes >= lb.Bytes {
				return fmt.Sprintf("over the room's limit of %d bytes per minute", lb.Bytes)
			}
		}
		if n >= MaxBytesChain && lb.Messages == 0 {
			break
		}
	}
	return ""
}

// BodyLenAt reports whether an event with parents prev must sign its body
// length (crdt.Draft.SignBodyLen): the state it is judged against limits
// bytes. Authors at the limits' level need not, but may.
func (r *Room) BodyLenAt(prev []crdt.EventID) bool {
	var idx []int32
	for _, p := range prev {
		if i, ok := r.idx(p); ok && r.ev(i).causalOK {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return false
	}
	lb := r.limitsIn(r.stateAt(idx).lookup)
	return lb != nil && lb.Bytes > 0
}

// Guard is a summary of the resolved state at the heads that lets a relay
// refuse, before forwarding, events these rules would refuse or hide
// (docs/protocol.md §2, "Validation at every hop"). It is a fresh value
// each time; callers may share it read-only between goroutines.
type Guard struct {
	Creator crdt.UserID
	Members map[crdt.UserID]string // membership of every user with one
	Removed map[crdt.DeviceID]bool // removed devices (encrypted rooms)
	Limit   int64                  // room.limits messages, 0 for none
	Bytes   int64                  // room.limits bytes, 0 for none
	Work    int64                  // room.limits join_work, 0 for none
	Exempt  map[crdt.UserID]bool   // users at or above the level that sets the limits
}

// Membership returns u's membership in the guard's state (the creator is
// joined from the create event on).
func (g *Guard) Membership(u crdt.UserID) string {
	if m, ok := g.Members[u]; ok {
		return m
	}
	if u == g.Creator {
		return Join
	}
	return ""
}

// JoinRefusal reports why the rules would refuse ev, a member event, for
// its join proof of work against the guard's state ("" when they would
// not, or ev is no join or knock). It decodes the body; a malformed one is
// left to the rules.
func (g *Guard) JoinRefusal(ev *crdt.Event) string {
	if g.Work == 0 || ev.Type != TypeMember {
		return ""
	}
	p, err := parseBody(ev.Type, ev.StateKey, ev.Body)
	if err != nil {
		return ""
	}
	return joinWork(ev.Room, ev.User, &LimitsBody{JoinWork: g.Work}, g.Membership(ev.User), p)
}

// Guard summarizes the resolved state at the heads.
func (r *Room) Guard() *Guard {
	if b := r.base; b != nil && b.guard != nil && len(r.evs) == 0 && len(r.mod) == 0 {
		// An overlay that holds nothing of its own yet is at its base's
		// state and has its guard (Freeze computed it): every replica of
		// a preloaded room starts so, and each computed it from the whole
		// membership (O(members) per replica).
		return b.guard
	}
	return r.computeGuard(r.current())
}

// computeGuard is Guard at the state cur.
func (r *Room) computeGuard(cur *snap) *Guard {
	st := r.stateOf(cur)
	g := &Guard{Creator: r.create.User, Members: make(map[crdt.UserID]string, len(st.Members)), Removed: map[crdt.DeviceID]bool{}, Exempt: map[crdt.UserID]bool{}}
	need := st.Levels.EventLevel(TypeLimits, true)
	for _, m := range st.Members {
		g.Members[m.User] = m.Membership
		if m.Power >= need {
			g.Exempt[m.User] = true
		}
	}
	g.Exempt[r.create.User] = true
	if v := cur.lookup(kLimits); v >= 0 && r.ev(v).body.limits != nil {
		g.Limit = r.ev(v).body.limits.Messages
		g.Bytes = r.ev(v).body.limits.Bytes
		g.Work = r.ev(v).body.limits.JoinWork
	}
	cur.each(func(k string, v int32) {
		if strings.HasPrefix(k, TypeDevice+"\x00") && r.isRemoval(v) {
			if d, err := crdt.ParseKey(strings.TrimPrefix(k, TypeDevice+"\x00")); err == nil {
				g.Removed[d] = true
			}
		}
	})
	return shareGuard(cur.root, g)
}

// limitsIn returns the room.limits body in a state (nil for none).
func (r *Room) limitsIn(lookup func(string) int32) *LimitsBody {
	if v := lookup(kLimits); v >= 0 {
		return r.ev(v).body.limits
	}
	return nil
}

// Limits returns the room's limits in the resolved state at the heads (zero
// for none).
func (r *Room) Limits() LimitsBody {
	if lb := r.limitsIn(r.current().lookup); lb != nil {
		return *lb
	}
	return LimitsBody{}
}

// Sent is one earlier event of a device's self chain, as an author or a
// relay knows it: its signed timestamp and its size in bytes.
type Sent struct {
	TS   int64
	Size int
}

// OverBytes applies a bytes limit to an event of timestamp ts whose
// device's self chain before it is chain (in chain order, oldest first, as
// far as known):
// the event is over when the events of the chain whose ts is in
// (ts - LimitWindow, ts] sum to limit bytes or more. As with the message
// limit, the events before count, not the event itself, so one event may
// pass the limit by at most its own size (crdt.MaxSize). A relay that saw
// only part of the chain counts less, never more, than the author, so
// a relay never refuses what an author that applies the same function
// let through. It returns the refusal reason, or "".
func OverBytes(limit, ts int64, chain []Sent) string {
	if limit <= 0 {
		return ""
	}
	var n int64
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].TS <= ts-LimitWindow {
			break
		}
		if n += int64(chain[i].Size); n >= limit {
			return fmt.Sprintf("over the room's limit of %d bytes per minute", limit)
		}
	}
	return ""
}
