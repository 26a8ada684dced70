package node

import (
	"context"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// Room limits (docs/limits.md, "Room limits"): a room's admins set them as
// room state (rooms/limits.go), so every node applies the same numbers.

// RoomLimits reads a room's limits, or sets those given (one room.limits
// event; the others stay). Zero lifts a limit.
func (e *Engine) RoomLimits(ctx context.Context, req api.RoomLimitsReq) (api.RoomLimitsResp, error) {
	for _, f := range []struct {
		what string
		v    *int64
		max  int64
	}{{"messages", req.Messages, rooms.MaxLimitMessages}, {"bytes", req.Bytes, rooms.MaxLimitBytes}, {"join work", req.JoinWork, rooms.MaxJoinWork}} {
		if f.v != nil && (*f.v < 0 || *f.v > f.max) {
			return api.RoomLimitsResp{}, errorf(api.KindInvalid, "%s limit %d out of range 0-%d", f.what, *f.v, f.max)
		}
	}
	var resp api.RoomLimitsResp
	err := e.do(ctx, func() error {
		id, rc, err := e.roomOf(req.Room)
		if err != nil {
			return err
		}
		if rc.room == nil {
			return errorf(api.KindUnavailable, "room %s is not synced yet; try again when a peer has sent it", id)
		}
		lb := rc.room.Limits()
		old := lb
		for _, f := range []struct {
			v   *int64
			dst *int64
		}{{req.Messages, &lb.Messages}, {req.Bytes, &lb.Bytes}, {req.JoinWork, &lb.JoinWork}} {
			if f.v != nil {
				*f.dst = *f.v
			}
		}
		resp = api.RoomLimitsResp{Room: id.String(), Messages: lb.Messages, Bytes: lb.Bytes, JoinWork: lb.JoinWork}
		if lb == old {
			return nil // nothing to change (or only a read)
		}
		empty := ""
		ev, err := e.author(id, rc, rooms.TypeLimits, &empty, rooms.Encode(lb))
		if err != nil {
			return err
		}
		resp.Event = ev.ID.String()
		return nil
	})
	return resp, err
}

// joinWork mints the proof of work a join of this user needs in room id
// (rooms/work.go), or returns nil when the room asks for none, this user
// is invited or joined, or the room's state is not here yet. Minting runs
// on the caller's goroutine, not the engine's (it takes about a second at
// the default difficulty), and stops when ctx ends.
func (e *Engine) joinWork(ctx context.Context, id crdt.RoomID) ([]byte, error) {
	var d int64
	var start uint64
	err := e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil || rc.room == nil {
			return nil
		}
		switch rc.room.MembershipOf(e.ident.User) {
		case rooms.Join, rooms.Invite:
			return nil
		}
		d, start = rc.room.Limits().JoinWork, e.kr.jitter.Uint64()
		return nil
	})
	if err != nil || d == 0 {
		return nil, err
	}
	t0 := time.Now()
	w := rooms.MintWork(id, e.ident.User, int(d), start, func() bool { return ctx.Err() != nil })
	if w == nil {
		return nil, ctx.Err()
	}
	e.log.Debug("join proof of work minted", "room", id, "bits", d, "took", time.Since(t0))
	return w, nil
}
