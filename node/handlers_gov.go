package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"
)

// registerGovernance binds the membership, role, profile, DM, blocking and
// redaction methods.
func (n *Node) registerGovernance(h host.Host) {
	s, e := n.api, n.engine
	Handle(s, MethodRoomInvite, e.Invite)
	Handle(s, MethodInvites, func(ctx context.Context, _ Empty) (InvitesResp, error) { return e.Invites(ctx) })
	Handle(s, MethodInvitesPolicy, e.Policy)
	Handle(s, MethodInvitesDecline, e.Decline)
	Handle(s, MethodRoomLeave, e.Leave)
	Handle(s, MethodRoomKick, e.Kick)
	Handle(s, MethodRoomBan, e.Ban)
	Handle(s, MethodRoomUnban, e.Unban)
	Handle(s, MethodRoomRole, e.Role)
	Handle(s, MethodRoomSet, e.SetRoom)
	Handle(s, MethodRedact, e.Redact)
	Handle(s, MethodProfileSet, e.ProfileSet)
	Handle(s, MethodProfileGet, e.ProfileGet)
	Handle(s, MethodBlock, func(ctx context.Context, req UserReq) (BlockedResp, error) {
		if req.User == "" {
			return BlockedResp{}, errorf(KindInvalid, "name a user to block")
		}
		return e.SetBlocked(ctx, req.User, true)
	})
	Handle(s, MethodUnblock, func(ctx context.Context, req UserReq) (BlockedResp, error) {
		if req.User == "" {
			return BlockedResp{}, errorf(KindInvalid, "name a user to unblock")
		}
		return e.SetBlocked(ctx, req.User, false)
	})
	Handle(s, MethodBlocked, func(ctx context.Context, _ Empty) (BlockedResp, error) { return e.SetBlocked(ctx, "", false) })
	Handle(s, MethodDM, func(ctx context.Context, req UserReq) (RoomResp, error) {
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
