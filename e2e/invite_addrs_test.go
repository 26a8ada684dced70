package e2e

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// An invite carries the inviting node's addresses (docs/protocol.md
// "Invites"), and `room join` of the invited room without --via dials
// them: B, invited while connected to A, then disconnected from A and
// restarted (so neither its peer book nor a connection leads to A; the
// two share no room, so its address book holds nothing of A either),
// joins the private room by its id alone.
func TestInviteCarriesAddresses(t *testing.T) {
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	b.must(nil, "connect", a.addr)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", "by invite")
	a.must(nil, "room", "invite", rr.Room, b.user)
	waitInvite(t, b, rr.Room)

	b.must(nil, "disconnect", a.peerID)
	b.stop()
	b.start()
	eventually(t, convergeTimeout, "B holds no connection to A", func() error {
		var ps api.PeersResp
		if err := b.try(&ps, "peers"); err != nil {
			return err
		}
		if slices.ContainsFunc(ps.Peers, func(p api.PeerInfo) bool { return p.PeerID == a.peerID }) {
			return fmt.Errorf("B is connected to A")
		}
		return nil
	})
	b.must(nil, "room", "join", rr.Room)
	waitMembership(t, []*daemon{a, b}, rr.Room, b.user, "join")
}
