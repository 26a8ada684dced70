package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/parley-p2p/parley/node/mediasvc"
	"github.com/parley-p2p/parley/node/p2p"
)

// What a node spends on peers before they prove anything (docs/protocol.md
// §3, §4, §8 and "Limits"): every protocol reads its frames through
// wire.FrameReader, which checks a frame's length against the bound of what may
// come next before allocating anything, and the libp2p resource manager
// caps streams and frame memory per protocol, per peer and per node.

// Node-wide limits of the resource manager (resourceLimits).
const (
	maxInboundConns = 256       // connections peers opened to this node
	maxNodeMemory   = 512 << 20 // reservations of streams (muxer windows) and frames
	maxSyncMemory   = 64 << 20  // frames buffered by all sync streams
	maxMediaMemory  = 96 << 20  // frames buffered by all media streams
	maxSmallMemory  = 8 << 20   // frames buffered by all invite or link streams
)

// DaemonMemoryLimit is the soft memory limit a daemon sets for the Go
// runtime unless GOMEMLIMIT is set: the collector works harder as the
// heap nears it, so that bursts of short-lived garbage (handshakes and
// streams of many peers at once) do not double the resident set. It is
// not a cap: a daemon that needs more live memory uses more.
const DaemonMemoryLimit = 128 << 20

// protocolLimits are the inbound streams of each protocol node-wide and per
// peer, and the frame memory of all its streams.
var protocolLimits = []struct {
	id               protocol.ID
	streams, perPeer int
	memory           int64
}{
	{p2p.SyncProtocol, 128, 2 * p2p.MaxPeerSessions, maxSyncMemory},
	{mediasvc.Protocol, 128, 2 * mediasvc.MaxPeerStreams, maxMediaMemory},
	{p2p.InviteProtocol, 32, 2, maxSmallMemory},
	{p2p.LinkProtocol, 16, 2, maxSmallMemory},
	{p2p.RoomProofProtocol, 64, 4, maxSmallMemory},
	{TURNProtocol, 32, turnPeerStreams, maxSmallMemory},
	{p2p.PeerRecordsProtocol, 32, 2, maxSmallMemory},
}

// resourceLimits are libp2p's default limits (scaled for 1 GiB) with
// Parley's caps on top.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			ConnsInbound: rcmgr.LimitVal(maxInboundConns),
			Memory:       rcmgr.LimitVal64(maxNodeMemory),
		},
		Protocol:     map[protocol.ID]rcmgr.ResourceLimits{},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{},
	}
	for _, l := range protocolLimits {
		cfg.Protocol[l.id] = rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(l.streams), Memory: rcmgr.LimitVal64(l.memory)}
		cfg.ProtocolPeer[l.id] = rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(l.perPeer)}
	}
	return cfg.Build(scaling.Scale(1<<30, 4096))
}

// resourceManager is the node's libp2p resource manager (resourceLimits).
func resourceManager() (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
}

// hostOptions are the libp2p options every Parley daemon host takes.
func hostOptions() ([]libp2p.Option, error) {
	rm, err := resourceManager()
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return []libp2p.Option{libp2p.ResourceManager(rm)}, nil
}
