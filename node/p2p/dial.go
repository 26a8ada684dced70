package p2p

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// ClearBackoff forgets failed dials to p. The swarm refuses to redial a
// peer for a growing back-off after a failed dial; redial paces itself, and
// an explicit connect is the user's own request, so both dial at once
// (after a partition or an outage heals, the back-off alone kept nodes
// apart for seconds: simulations/README.md, netns backend).
func ClearBackoff(h host.Host, p peer.ID) {
	if sw, ok := h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}
