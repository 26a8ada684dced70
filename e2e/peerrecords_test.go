package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// Members share where the other members are (signed peer records,
// docs/protocol.md §9.2): B and C joined a room through A and were never
// told of each other, yet B connects to C from the record A passes on.
// Then B and C both move (restart on other ports): each remembers only the
// other's old address and reaches A; they find each other at their new
// addresses the same way.
func TestPeerRecordsFindMovedMember(t *testing.T) {
	a, b, c := startDaemon(t, "A"), startDaemon(t, "B"), startDaemon(t, "C")
	room := publicRoom(t, a, b, c)
	connected := func(what string, check func(addr string) error) {
		t.Helper()
		eventually(t, 60*time.Second, what, func() error {
			var ps api.PeersResp
			if err := b.try(&ps, "peers"); err != nil {
				return err
			}
			for _, p := range ps.Peers {
				if p.PeerID == c.peerID {
					return check(p.Addr)
				}
			}
			return fmt.Errorf("B is not connected to C")
		})
	}
	t0 := time.Now()
	connected("B connects to C from A's record", func(string) error { return nil })
	found := time.Since(t0)

	// Both move: each remembers only the other's old address, and
	// redials A, which it connected to.
	b.stop()
	c.stop()
	for _, d := range []*daemon{b, c} {
		old := d.addr
		l, err := net.Listen("tcp", "127.0.0.1:0") // a port it did not have
		if err != nil {
			t.Fatal(err)
		}
		d.listen = "/ip4/127.0.0.1/tcp/" + strings.TrimPrefix(l.Addr().String(), "127.0.0.1:")
		l.Close()
		d.start()
		if d.addr == old {
			t.Fatalf("%s restarted at its old address %s", d.name, old)
		}
	}
	newPort := strings.Split(strings.TrimPrefix(c.addr, "/ip4/127.0.0.1/tcp/"), "/")[0]
	t1 := time.Now()
	connected("B finds C at its new address", func(addr string) error {
		if !strings.Contains(addr, "/tcp/"+newPort) {
			return fmt.Errorf("B reaches C at %s, not at its new port %s", addr, newPort)
		}
		return nil
	})
	moved := time.Since(t1)
	// A message of C's reaches B (over their connection or through A).
	c.must(nil, "send", room, "moved")
	waitBodies(t, []*daemon{b}, room, "moved")
	t.Logf("peer records: B found C %v after the joins, and again %v after both moved", found.Round(time.Millisecond), moved.Round(time.Millisecond))
}
