package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-p2p/parley/api"
)

// registerCalls binds the methods of calls (calls.go): timeline events are
// authored by the engine, signals are sealed by it and published on the
// room's ephemeral topic.
func (n *Node) registerCalls(h host.Host) {
	s, e := n.api, n.engine
	eph := n.replica.Ephemeral()
	cp := &callPeers{e: e, eph: eph, log: n.log, loopback: func() bool {
		as := h.Network().ListenAddresses()
		for _, a := range as {
			if !manet.IsIPLoopback(a) {
				return false
			}
		}
		return len(as) > 0
	}, ice: n.iceServers}
	n.callPeers = cp
	Handle(s, api.EpCallStart, e.CallStart)
	Handle(s, api.EpCallJoin, e.CallJoin)
	Handle(s, api.EpCallLeave, e.CallLeave)
	Handle(s, api.EpCalls, e.Calls)
	Handle(s, api.EpCallSignal, func(ctx context.Context, req api.CallSignalReq) (api.Empty, error) {
		return api.Empty{}, publishCallSignal(ctx, e, eph, req)
	})
	Handle(s, api.EpCallDecline, func(ctx context.Context, req api.CallReq) (api.Empty, error) {
		room, out, err := e.CallDecline(ctx, req)
		for _, data := range out {
			eph.Publish(room, data)
		}
		return api.Empty{}, err
	})
	Handle(s, api.EpCallDial, cp.dial)
	Handle(s, api.EpCallHangup, func(ctx context.Context, req api.RoomReq) (api.Empty, error) {
		room, _, err := e.roomOfChecked(ctx, req.Room)
		if err != nil {
			return api.Empty{}, err
		}
		return api.Empty{}, cp.hangup(ctx, room)
	})
}

// publishCallSignal seals one signalling message and publishes it.
func publishCallSignal(ctx context.Context, e *Engine, eph *Ephemeral, req api.CallSignalReq) error {
	room, data, err := e.CallSignal(ctx, req)
	if err == nil {
		eph.Publish(room, data)
	}
	return err
}
