package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"
)

// registerGovernance binds the membership, role, profile, DM, blocking and
// redaction methods; registerMedia binds room/set and profile/set, whose
// avatars go into the media store.
func (n *Node) registerGovernance(h host.Host) {
	s, e := n.api, n.engine
	Handle(s, EpRoomInvite, e.Invite)
	Handle(s, EpInvites, func(ctx context.Context, _ Empty) (InvitesResp, error) { return e.Invites(ctx) })
	Handle(s, EpInvitesPolicy, e.Policy)
	Handle(s, EpInvitesDecline, e.Decline)
	Handle(s, EpRoomLeave, e.Leave)
	Handle(s, EpRoomKick, e.Kick)
	Handle(s, EpRoomBan, e.Ban)
	Handle(s, EpRoomUnban, e.Unban)
	Handle(s, EpRoomRole, e.Role)
	Handle(s, EpRedact, e.Redact)
	Handle(s, EpProfileGet, e.ProfileGet)
	Handle(s, EpBlock, func(ctx context.Context, req UserReq) (BlockedResp, error) {
		if req.User == "" {
			return BlockedResp{}, errorf(KindInvalid, "name a user to block")
		}
		return e.SetBlocked(ctx, req.User, true)
	})
	Handle(s, EpUnblock, func(ctx context.Context, req UserReq) (BlockedResp, error) {
		if req.User == "" {
			return BlockedResp{}, errorf(KindInvalid, "name a user to unblock")
		}
		return e.SetBlocked(ctx, req.User, false)
	})
	Handle(s, EpBlocked, func(ctx context.Context, _ Empty) (BlockedResp, error) { return e.SetBlocked(ctx, "", false) })
	Handle(s, EpDM, func(ctx context.Context, req UserReq) (RoomResp, error) {
		u, err := parseUser(req.User)
		if err != nil {
			return RoomResp{}, err
		}
		room, invited, err := e.DMRoom(ctx, u)
		if err != nil {
			return RoomResp{}, err
		}
		switch {
		case room != "" && invited:
			if _, err := n.joinRoom(ctx, h, room, nil); err != nil {
				return RoomResp{}, err
			}
			return RoomResp{Room: room}, nil
		case room != "":
			return RoomResp{Room: room}, nil
		}
		return e.CreateDM(ctx, u)
	})
}
