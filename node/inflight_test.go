package node

import (
	"errors"
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// TestInFlightChildrenRejected (issue 15): every link of a chain written on
// an event the relay rejected in flight is rejected, so each costs its
// forwarder the invalid-message penalty (P4), not only the first child.
// A line admin(0) - relay(1) and a spammer(2) linked to the relay whose node
// publishes without checking, one network per case:
//
//   - "bad-signature": a message whose parent is an event with a bad
//     signature (rejected by the stateless checks, so never stored) is
//     rejected (before: accepted and forwarded, to wait for its parent);
//   - "banned-chain": after its ban the spammer writes a chain of three
//     messages, sent one at a time: the first is refused against the
//     relay's state, the second as the child of a refused event of the
//     same device, and the third, whose parent the relay never stored, as
//     the child of an event it rejected (before: ignored, no penalty).
//     Three rejections put the spammer's peer below the graylist
//     threshold (-80): the relay drops what it sends from then on.
func TestInFlightChildrenRejected(t *testing.T) {
	t.Run("bad-signature", func(t *testing.T) {
		tn, room, handled := inFlightNet(t)
		const relay, spammer = 1, 2
		// The spammer's own gossip would not publish the broken frame (the
		// stateless checks run on publish too), so the relay's validator is
		// handed it as it would be.
		base := craftAfter(t, tn, spammer, relay, room, 1, "base")[0]
		broken := append([]byte(nil), base.Envelope...)
		broken[len(broken)-1] ^= 1
		frame := (&crdt.Event{Envelope: broken, Body: base.Body}).Encode()
		if _, err := crdt.Decode(frame); !errors.Is(err, crdt.ErrSignature) {
			t.Fatalf("broken frame: %v", err)
		} else {
			tn.reps[relay].Engine.InvalidInFlight(frame, err)
		}
		brokenID := crdt.IDOf(broken)
		child, err := crdt.Sign(tn.ids[spammer], crdt.Draft{Room: room, Type: rooms.TypeMessage, Seq: base.Seq + 1, Self: brokenID,
			Prev: []crdt.EventID{brokenID}, Auth: []crdt.EventID{room}, Depth: base.Depth + 1, TS: base.TS,
			Body: rooms.Encode(rooms.MessageBody{Text: "child of a bad signature"})})
		if err != nil {
			t.Fatal(err)
		}
		if rej, ign := handled(child); rej != 1 || ign != 0 {
			t.Fatalf("child of a bad signature: rejected %d, ignored %d; want rejected", rej, ign)
		}
	})
	t.Run("banned-chain", func(t *testing.T) {
		tn, room, handled := inFlightNet(t)
		const admin, relay, spammer = 0, 1, 2
		if _, err := tn.reps[admin].Engine.Ban(tn.ctx, api.RoomUserReq{Room: room.String(), User: tn.ids[spammer].User.String()}); err != nil {
			t.Fatal(err)
		}
		membershipAt(t, tn, room, spammer, rooms.Ban, relay, spammer)
		for k, ev := range craftAfter(t, tn, spammer, relay, room, 3, "spam") {
			if rej, ign := handled(ev); rej != 1 || ign != 0 {
				t.Fatalf("link %d of the banned spammer's chain: rejected %d, ignored %d; want rejected", k, rej, ign)
			}
			if ok, _ := tn.stores[relay].Has(ev.ID); ok {
				t.Fatalf("the relay stored link %d", k)
			}
		}
		// P4 is -10 per squared count of invalid messages: three cost 90
		// (less a little decay); two, as before, 40.
		eventually(t, convergeWithin, "the spammer's peer is graylisted", func() (bool, string) {
			sc, ok := tn.reps[relay].PeerScore(tn.reps[spammer].host.ID())
			return ok && sc < p2p.PeerScoreThresholds().GraylistThreshold, fmt.Sprintf("score %.1f", sc)
		})
	})
}

// inFlightNet builds the line of TestInFlightChildrenRejected with a
// public room all three joined, and the spammer's gossip known to reach
// the relay. handled publishes one event from the spammer and waits until
// the relay took it in or refused it, so that the relay judges a chain in
// order.
func inFlightNet(t *testing.T) (*testNet, crdt.RoomID, func(*crdt.Event) (rejected, ignored int64)) {
	const admin, relay, spammer = 0, 1, 2
	tn := newTestNetUnguarded(t, 3, spammer)
	tn.link(admin, relay)
	tn.link(relay, spammer)
	ctx := tn.ctx
	resp, err := tn.reps[admin].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	room, _ := crdt.ParseID(resp.Room)
	for _, i := range []int{relay, spammer} {
		joinRoom(t, tn, room, i)
	}
	tn.converged(resp.Room, 3, convergeWithin, admin, relay, spammer)
	// The spammer's gossip reaches the relay (its room proof is done)
	// before it misbehaves; the event comes back to its own store by sync.
	pre := craftAfter(t, tn, spammer, relay, room, 1, "before")[0]
	tn.reps[spammer].Publish(pre)
	eventually(t, convergeWithin, "the spammer's gossip reaches the relay and its event returns", func() (bool, string) {
		a, _ := tn.stores[relay].Has(pre.ID)
		b, _ := tn.stores[spammer].Has(pre.ID)
		return a && b, fmt.Sprint(a, b)
	})
	handled := func(ev *crdt.Event) (rejected, ignored int64) {
		t.Helper()
		rej0, ign0 := tn.reps[relay].GossipRefused()
		tn.reps[spammer].Publish(ev)
		eventually(t, convergeWithin, "the relay handles the event", func() (bool, string) {
			rej, ign := tn.reps[relay].GossipRefused()
			has, _ := tn.stores[relay].Has(ev.ID)
			return has || rej+ign > rej0+ign0, fmt.Sprint(rej-rej0, ign-ign0, has)
		})
		rej, ign := tn.reps[relay].GossipRefused()
		return rej - rej0, ign - ign0
	}
	return tn, room, handled
}
