package node

import (
	"context"

	"github.com/parley-p2p/parley/api"
)

// registerCalls binds the methods of calls (calls.go): timeline events are
// authored by the engine, signals are sealed by it and published on the
// room's ephemeral topic.
func (n *Node) registerCalls() {
	s, e := n.api, n.engine
	eph := n.replica.Ephemeral()
	Handle(s, api.EpCallStart, e.CallStart)
	Handle(s, api.EpCallJoin, e.CallJoin)
	Handle(s, api.EpCallLeave, e.CallLeave)
	Handle(s, api.EpCalls, e.Calls)
	Handle(s, api.EpCallSignal, func(ctx context.Context, req api.CallSignalReq) (api.Empty, error) {
		return api.Empty{}, publishCallSignal(ctx, e, eph, req)
	})
	Handle(s, api.EpCallDecline, func(ctx context.Context, req api.CallReq) (api.Empty, error) {
		room, data, err := e.CallDecline(ctx, req)
		if err == nil {
			eph.Publish(room, data)
		}
		return api.Empty{}, err
	})
	Handle(s, api.EpCallDial, func(ctx context.Context, req api.CallDialReq) (api.CallResp, error) {
		return api.CallResp{}, errorf(api.KindUnavailable, "the daemon's call peer is not built yet")
	})
	Handle(s, api.EpCallHangup, func(ctx context.Context, req api.RoomReq) (api.Empty, error) {
		return api.Empty{}, errorf(api.KindUnavailable, "the daemon's call peer is not built yet")
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
