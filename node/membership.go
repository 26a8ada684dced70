package node

import (
	"context"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// SetMembership authors a membership event by this user about target (for
// example rooms.Ban or rooms.Leave for a kick). The room's rules decide
// whether this user may; a refusal is returned as the error.
func (e *Engine) SetMembership(ctx context.Context, id crdt.RoomID, target crdt.UserID, membership, reason string) (api.RoomEventResp, error) {
	var resp api.RoomEventResp
	err := e.do(ctx, func() error {
		rc := e.rooms[id]
		if rc == nil {
			return errorf(api.KindNotFound, "unknown room %s", id)
		}
		key := target.String()
		mb := rooms.MemberBody{Membership: membership, Reason: reason}
		var ev *crdt.Event
		var err error
		if rc.room != nil && rc.room.Encrypted() && target != e.ident.User &&
			(membership == rooms.Leave || membership == rooms.Ban) && rc.room.MembershipOf(target) == rooms.Join {
			ev, err = e.removalWithRotation(id, rc, target, mb) // kick or ban: carries the next epoch
		} else {
			ev, err = e.author(id, rc, rooms.TypeMember, &key, rooms.Encode(mb))
		}
		if err != nil {
			return err
		}
		resp = api.RoomEventResp{Room: id.String(), Event: ev.ID.String()}
		return nil
	})
	return resp, err
}
