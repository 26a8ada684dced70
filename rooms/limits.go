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

// LimitsBody is the body of a room.limits event. Zero means no limit.
type LimitsBody struct {
	Messages int64 `cbor:"messages,omitempty"` // events per device per LimitWindow
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
	return &lb, nil
}

// overLimit applies the rate limit in force in the state before the event
// (R3, after the permission checks). An event E of device D is refused when
// the limit allows N events per window, E's sender is below the level that
// may change the limits, and D's self chain before E holds N events whose
// ts is within (E.ts - LimitWindow, E.ts]. Every event on the chain counts,
// refused ones too, so a device that keeps writing past its limit stays
// refused until it pauses; ts never decreases along a self chain (R2).
// It returns the refusal reason, or "".
func (r *Room) overLimit(info *evInfo, in *authInput) string {
	v := info.before.lookup(kLimits)
	if v < 0 {
		return ""
	}
	lb := r.evs[v].body.limits
	e := info.ev
	if lb == nil || lb.Messages == 0 || e.Seq == 0 {
		return ""
	}
	if in.power(e.User) >= in.levels.EventLevel(TypeLimits, true) {
		return "" // those who may change the limits are not held by them
	}
	n := int64(0)
	for cur := e; cur.Seq > 0; {
		si, ok := r.ids[cur.Self]
		if !ok {
			break
		}
		cur = r.evs[si].ev
		if cur.TS <= e.TS-LimitWindow {
			break
		}
		if n++; n >= lb.Messages {
			return fmt.Sprintf("over the room's limit of %d events per minute", lb.Messages)
		}
	}
	return ""
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

// Guard summarizes the resolved state at the heads.
func (r *Room) Guard() *Guard {
	cur := r.current()
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
	if v := cur.lookup(kLimits); v >= 0 && r.evs[v].body.limits != nil {
		g.Limit = r.evs[v].body.limits.Messages
	}
	cur.each(func(k string, v int32) {
		if strings.HasPrefix(k, TypeDevice+"\x00") && r.isRemoval(v) {
			if d, err := crdt.ParseKey(strings.TrimPrefix(k, TypeDevice+"\x00")); err == nil {
				g.Removed[d] = true
			}
		}
	})
	return g
}
