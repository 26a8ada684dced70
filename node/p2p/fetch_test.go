package p2p

import (
	"testing"
	"time"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/peertest"
)

// TestFetchUnansweredGoesToRepair: a get that the peer answers without
// the events (a forwarder passes on events whose parents it lacks
// itself) hands what is still missing to the repair loop, which asks the
// room's other peers with back-off. The log reports a missing event only
// once, so before, nothing asked again until a heads announcement named a
// descendant or the anti-entropy round came (lossy-links seed 2: 7-33 s
// once authors stopped announcing the heads of their own messages;
// simulations/README.md, fifth round).
func TestFetchUnansweredGoesToRepair(t *testing.T) {
	tn := newTestNet(t, 2)
	room := tn.room(0, "fetch")
	tn.room(1, "fetch")
	missing := crdt.IDOf([]byte("an event neither peer holds"))
	s := tn.peers[0].syncer
	wanted := func() bool {
		s.rp.mu.Lock()
		defer s.rp.mu.Unlock()
		st := s.rp.rooms[room]
		return st != nil && st.want[missing]
	}
	if wanted() {
		t.Fatal("repair wants the event before any fetch")
	}
	s.Fetch(room, []crdt.EventID{missing}, tn.peers[1].host.ID())
	peertest.Eventually(t, 30*time.Second, "the unanswered get handed to repair", func() (bool, string) {
		return wanted(), "repair does not want the event"
	})
}
