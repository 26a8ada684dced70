package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// craftAfter signs n messages by node i's user that continue its device
// chain on top of the heads of node at (so that at holds every parent of
// the first), the kind of event an adversary whose own node does not check
// it can publish: valid signatures, a valid chain, refused by the rules.
func craftAfter(t *testing.T, tn *testNet, i, at int, room crdt.RoomID, n int, tag string) []*crdt.Event {
	t.Helper()
	id := tn.ids[i]
	dev := id.Device.Public()
	var last *crdt.Event
	if err := tn.stores[i].Scan(room, 0, func(s crdt.Stored) bool {
		if s.Event.Device == dev && (last == nil || s.Event.Seq > last.Seq) {
			last = s.Event
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if last == nil {
		t.Fatalf("node %d has no event in the room", i)
	}
	heads, _, err := tn.reps[at].Engine.Heads(tn.ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	var out []*crdt.Event
	for k := range n {
		prev := append([]crdt.EventID{}, heads...)
		if !slices.Contains(prev, last.ID) {
			prev = append(prev, last.ID)
		}
		var depth uint64
		var ts int64
		for _, p := range prev {
			s, err := tn.stores[at].Get(p)
			if err != nil {
				for _, o := range out {
					if o.ID == p {
						s.Event = o
					}
				}
			}
			depth, ts = max(depth, s.Event.Depth), max(ts, s.Event.TS)
		}
		ev, err := crdt.Sign(id, crdt.Draft{Room: room, Type: rooms.TypeMessage, Seq: last.Seq + 1, Self: last.ID, Prev: slices.Sorted(slices.Values(prev)),
			Auth: []crdt.EventID{room}, Depth: depth + 1, TS: max(ts, time.Now().UnixMilli()),
			Body: rooms.Encode(rooms.MessageBody{Text: fmt.Sprintf("%s %d", tag, k)})})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
		last, heads = ev, []crdt.EventID{ev.ID}
	}
	return out
}

// TestBannedSpammerRejectedAtRelay (issue 15, validation at every hop): a
// line admin(0) - relay(1) - observer(2), and a spammer(3) linked to the
// relay only, whose node publishes without checking. Before the ban the
// spammer's events reach the observer through the relay; once the relay
// holds the ban, it rejects the spammer's events (pubsub Reject), stores
// none and forwards none, so the observer never sees them. The relay is a
// member in one case and only hosts the room in the other.
func TestBannedSpammerRejectedAtRelay(t *testing.T) {
	for _, hostOnly := range []bool{false, true} {
		t.Run(map[bool]string{false: "member", true: "host"}[hostOnly], func(t *testing.T) {
			const admin, relay, observer, spammer = 0, 1, 2, 3
			tn := newTestNetUnguarded(t, 4, spammer)
			tn.link(admin, relay)
			tn.link(relay, observer)
			tn.link(relay, spammer)
			ctx := tn.ctx
			resp, err := tn.reps[admin].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true})
			if err != nil {
				t.Fatal(err)
			}
			room, _ := crdt.ParseID(resp.Room)
			for _, i := range []int{relay, observer, spammer} {
				if _, err := tn.reps[i].Engine.TrackRoom(ctx, resp.Room); err != nil {
					t.Fatal(err)
				}
				eventually(t, convergeWithin, "room reaches node", func() (bool, string) {
					ok, _ := tn.reps[i].Engine.HasRoomState(ctx, room)
					return ok, fmt.Sprint("node ", i)
				})
				if i == relay && hostOnly {
					continue
				}
				if _, err := tn.reps[i].Engine.Join(ctx, room); err != nil {
					t.Fatal(err)
				}
			}
			members := 3
			if !hostOnly {
				members = 4
			}
			tn.converged(resp.Room, members, convergeWithin, admin, relay, observer, spammer)

			// Before the ban: a crafted event of the member passes the relay.
			pre := craftAfter(t, tn, spammer, relay, room, 1, "before")
			tn.reps[spammer].Publish(pre[0])
			eventually(t, convergeWithin, "the spammer's event before the ban reaches the observer", func() (bool, string) {
				ok, _ := tn.stores[observer].Has(pre[0].ID)
				return ok, ""
			})

			if _, err := tn.reps[admin].Engine.Ban(ctx, api.RoomUserReq{Room: resp.Room, User: tn.ids[spammer].User.String()}); err != nil {
				t.Fatal(err)
			}
			for _, i := range []int{relay, observer, spammer} {
				eventually(t, convergeWithin, "the ban reaches node", func() (bool, string) {
					info, err := tn.reps[i].Engine.Info(ctx, api.RoomReq{Room: resp.Room})
					if err != nil {
						return false, err.Error()
					}
					for _, m := range info.Members {
						if m.User == tn.ids[spammer].User.String() {
							return m.Membership == rooms.Ban, fmt.Sprintf("node %d: %s", i, m.Membership)
						}
					}
					return false, fmt.Sprintf("node %d: no member entry", i)
				})
			}
			rej0, ign0 := tn.reps[relay].GossipRefused()
			const flood = 50
			spam := craftAfter(t, tn, spammer, relay, room, flood, "spam")
			for _, ev := range spam {
				tn.reps[spammer].Publish(ev)
			}
			// The first is rejected (the relay holds its whole past); the
			// others are rejected as links of a chain written on a rejected
			// event, or ignored when validated before their parent was
			// (pubsub validates concurrently): ignored, they are neither
			// stored nor forwarded either. Three rejections put the
			// spammer's peer below the graylist threshold, and the relay
			// drops the rest of its RPCs unread.
			// The relay either takes each event in or refuses it, until
			// it graylists the spammer; wait for that, then check.
			eventually(t, convergeWithin, "the relay handles the flood", func() (bool, string) {
				rej, ign := tn.reps[relay].GossipRefused()
				n := rej - rej0 + ign - ign0
				for _, ev := range spam {
					if ok, _ := tn.stores[relay].Has(ev.ID); ok {
						n++
					}
				}
				sc, _ := tn.reps[relay].PeerScore(tn.reps[spammer].host.ID())
				return n >= flood || sc < p2p.PeerScoreThresholds().GraylistThreshold, fmt.Sprintf("rejected %d, ignored %d, score %.1f", rej-rej0, ign-ign0, sc)
			})
			for _, ev := range spam {
				for _, i := range []int{admin, relay, observer} {
					if ok, _ := tn.stores[i].Has(ev.ID); ok {
						t.Fatalf("node %d stored the banned spammer's event %s", i, ev.ID)
					}
				}
			}
			if rej, _ := tn.reps[relay].GossipRefused(); rej == rej0 {
				t.Fatal("the relay rejected none of the flood")
			}
			// P4: the spammer's peer pays for the events the relay rejected.
			eventually(t, convergeWithin, "the spammer's score falls", func() (bool, string) {
				sc, ok := tn.reps[relay].PeerScore(tn.reps[spammer].host.ID())
				return ok && sc < 0, fmt.Sprint(sc, ok)
			})
			// An honest message after the flood reaches the observer: what
			// the relay forwarded by then has arrived.
			send(t, tn, admin, resp.Room, 1, "honest after")
			eventually(t, convergeWithin, "the honest message reaches the observer", func() (bool, string) {
				b := tn.bodies(observer, resp.Room)
				for _, x := range b {
					if x == "honest after 0" {
						return true, ""
					}
				}
				return false, fmt.Sprint(b)
			})
			if rej, ign := tn.reps[observer].GossipRefused(); rej+ign != 0 {
				t.Fatalf("the relay forwarded %d of the banned spammer's events to the observer", rej+ign)
			}
		})
	}
}

// newTestNetUnguarded is newTestNet with the listed replicas' gossip
// validators stateless only (adversaries).
func newTestNetUnguarded(t *testing.T, n int, adversaries ...int) *testNet {
	t.Helper()
	un := map[int]bool{}
	for _, a := range adversaries {
		un[a] = true
	}
	return buildTestNetOpts(t, n, nil, func(_ int, s crdt.Store) crdt.Store { return s }, un)
}

// TestChainLimiter: a relay's view of a device's self chain refuses
// exactly what rooms' rate-limit rule refuses (rooms/testdata/limits.txt
// has the same timestamps): with 3 per minute, the join, one and two pass,
// three to five are over, six (a minute after four) passes; a chain seen
// out of order starts again; a repeat is not counted twice.
func TestChainLimiter(t *testing.T) {
	l := newChainLimiter()
	var dev crdt.DeviceID
	dev[0] = 1
	var prev crdt.EventID
	mk := func(seq uint64, ts int64) *crdt.Event {
		ev := &crdt.Event{ID: crdt.IDOf([]byte(fmt.Sprint("ev", seq, ts))), Device: dev, Seq: seq, Self: prev, TS: ts}
		prev = ev.ID
		return ev
	}
	steps := []struct {
		ts   int64
		over bool
	}{{1000, false}, {2000, false}, {3000, false}, {4000, true}, {5000, true}, {61001, true}, {66000, false}}
	for i, s := range steps {
		ev := mk(uint64(i), s.ts)
		if got := l.over(ev, 3, 0) != ""; got != s.over {
			t.Fatalf("event %d (ts %d): over = %v, want %v", i, s.ts, got, s.over)
		}
		if i == 1 && l.over(ev, 3, 0) != "" {
			t.Fatal("a repeated event was counted again")
		}
	}
	// A gap in the chain (an event whose self is unseen) starts a new run.
	prev = crdt.IDOf([]byte("unseen"))
	if l.over(mk(100, 66001), 1, 0) != "" {
		t.Fatal("an event after an unseen one was judged on a chain it does not continue")
	}
}

// TestChainLimiterBytes: the relay's bytes limit counts the signed sizes
// of the device's events in the window before an event (rooms.OverBytes),
// not the event itself, purged bodies included, and forgets what leaves
// the window.
func TestChainLimiterBytes(t *testing.T) {
	l := newChainLimiter()
	var dev crdt.DeviceID
	dev[0] = 2
	var prev crdt.EventID
	mk := func(seq uint64, ts int64, size int) *crdt.Event {
		ev := &crdt.Event{ID: crdt.IDOf([]byte(fmt.Sprint("b", seq, ts))), Device: dev, Seq: seq, Self: prev, TS: ts, Body: make([]byte, size),
			BodyLen: uint64(size), HasBodyLen: true} // counted as signed (SignedSize), as the rules count
		if seq == 1 {
			ev.Body = nil // purged: counts all the same
		}
		prev = ev.ID
		return ev
	}
	steps := []struct {
		ts   int64
		size int
		why  string
	}{
		{1000, 600, ""},
		{2000, 300, ""},  // 600 before: under 1000
		{3000, 5000, ""}, // 900 before: still under, though this one is large
		{4000, 10, "over the room's limit of 1000 bytes per minute"},
		{62000, 10, "over the room's limit of 1000 bytes per minute"}, // 2000 and 3000 still in the window
		{63001, 10, ""}, // only 4000 and 62000: 20 bytes
	}
	for i, s := range steps {
		if got := l.over(mk(uint64(i), s.ts, s.size), 0, 1000); got != s.why {
			t.Fatalf("event %d (ts %d): %q, want %q", i, s.ts, got, s.why)
		}
	}
}
