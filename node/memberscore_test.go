package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// TestMemberScore (issue 15, P5 of the peer score): a node scores the
// device of a member of a room it keeps MemberBonus higher than a stranger
// that only hosts the room, before either has relayed anything, in a
// plaintext public room (the device is known by the events it signed) and
// in an encrypted one (the device is announced); once the member leaves,
// its device is a stranger's, and its score loses the bonus at once.
func TestMemberScore(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "encrypted"}[encrypted], func(t *testing.T) {
			const admin, member, stranger = 0, 1, 2
			tn := newTestNet(t, 3)
			tn.link(admin, member)
			tn.link(admin, stranger)
			ctx := tn.ctx
			enc := encrypted
			resp, err := tn.reps[admin].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true, Encrypted: &enc})
			if err != nil {
				t.Fatal(err)
			}
			room, _ := crdt.ParseID(resp.Room)
			for _, i := range []int{member, stranger} {
				if _, err := tn.reps[i].Engine.TrackRoom(ctx, resp.Room); err != nil {
					t.Fatal(err)
				}
				eventually(t, convergeWithin, "room reaches node", func() (bool, string) {
					ok, _ := tn.reps[i].Engine.HasRoomState(ctx, room)
					return ok, fmt.Sprint("node ", i)
				})
			}
			if _, err := tn.reps[member].Engine.Join(ctx, room); err != nil {
				t.Fatal(err)
			}
			dev := func(i int) crdt.DeviceID {
				d, err := deviceOfPeer(tn.reps[i].host.ID())
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			eng := tn.reps[admin].Engine
			eventually(t, convergeWithin, "the member's join reaches the admin", func() (bool, string) {
				return eng.IsMemberDevice(ctx, dev(member)), ""
			})
			if eng.IsMemberDevice(ctx, dev(stranger)) {
				t.Fatal("the stranger's device is a member device")
			}
			eventually(t, convergeWithin, "the member scores the bonus, the stranger not", func() (bool, string) {
				m, okm := tn.reps[admin].PeerScore(tn.reps[member].host.ID())
				s, oks := tn.reps[admin].PeerScore(tn.reps[stranger].host.ID())
				return okm && oks && m >= p2p.MemberBonus && s < 1, fmt.Sprintf("member %.2f (%v), stranger %.2f (%v)", m, okm, s, oks)
			})

			before, _ := tn.reps[admin].PeerScore(tn.reps[member].host.ID())
			if _, err := tn.reps[member].Engine.Leave(ctx, api.RoomReq{Room: resp.Room}); err != nil {
				t.Fatal(err)
			}
			eventually(t, convergeWithin, "the member's leave makes its device a stranger's", func() (bool, string) {
				return !eng.IsMemberDevice(ctx, dev(member)), ""
			})
			// The leave has the cached answer checked again at once, not
			// after memberTTL (30 s): the bonus goes (the leave's first
			// delivery may add 1 of P2).
			eventually(t, 15*time.Second, "the former member loses the bonus", func() (bool, string) {
				m, _ := tn.reps[admin].PeerScore(tn.reps[member].host.ID())
				return m < before-p2p.MemberBonus+2, fmt.Sprintf("score %.2f, before the leave %.2f", m, before)
			})
		})
	}
}
