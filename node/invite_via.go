package node

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// The node's side of the addresses an invite comes with (the invite
// protocol is node/p2p/invite.go): the engine keeps them with the pending
// invite, and `room join` dials them.

// hostAddrs are h's addresses as an invite carries them: in dialOrder
// (relay addresses first: a home node is mostly reached through them),
// each ending in /p2p/ID, at most n.
func hostAddrs(h host.Host, n int) []string {
	ms := dialOrder(h.Addrs())
	var out []string
	for _, m := range ms[:min(len(ms), n)] {
		out = append(out, m.String()+"/p2p/"+h.ID().String())
	}
	return out
}

// InviteVia returns the addresses a pending invite to room came with.
func (e *Engine) InviteVia(ctx context.Context, room crdt.RoomID) ([]string, error) {
	var via []string
	err := e.do(ctx, func() error {
		if inv := e.inv.byID[room.String()]; inv != nil {
			via = slices.Clone(inv.Via)
		}
		return nil
	})
	return via, err
}

// dialInviter connects to the node that delivered a pending invite to
// room, through the addresses the invite came with, unless connected to it
// already: `room join` without --via of an invited room. Failures are
// logged only: the room may be reachable through other peers.
func (n *Node) dialInviter(ctx context.Context, h host.Host, room crdt.RoomID) {
	via, err := n.engine.InviteVia(ctx, room)
	if err != nil || len(via) == 0 {
		return
	}
	var addrs []ma.Multiaddr
	var p peer.ID
	for _, s := range via {
		if pi, err := peer.AddrInfoFromString(s); err == nil {
			p = pi.ID
			addrs = append(addrs, pi.Addrs...)
		}
	}
	if p == "" || p == h.ID() || h.Network().Connectedness(p) != network.NotConnected {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p2p.ClearBackoff(h, p)
	if err := h.Connect(dctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		n.log.Debug("dial inviter", "room", room, "peer", p, "err", err)
	}
}
