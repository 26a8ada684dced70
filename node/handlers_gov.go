package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-p2p/parley/api"
)

// registerGovernance binds the membership, role, profile, DM, blocking and
// redaction methods; registerMedia binds room/set and profile/set, whose
// avatars go into the media store.
func (n *Node) registerGovernance(h host.Host) {
	s, e := n.api, n.engine
	Handle(s, api.EpRoomInvite, e.Invite)
	Handle(s, api.EpInvites, func(ctx context.Context, _ api.Empty) (api.InvitesResp, error) { return e.Invites(ctx) })
	Handle(s, api.EpInvitesPolicy, e.Policy)
	Handle(s, api.EpInvitesDecline, e.Decline)
	Handle(s, api.EpRoomLeave, e.Leave)
	Handle(s, api.EpRoomKick, e.Kick)
	Handle(s, api.EpRoomBan, e.Ban)
	Handle(s, api.EpRoomUnban, e.Unban)
	Handle(s, api.EpRoomRole, e.Role)
	Handle(s, api.EpRoomLimits, e.RoomLimits)
	Handle(s, api.EpRedact, e.Redact)
	Handle(s, api.EpProfileGet, e.ProfileGet)
	Handle(s, api.EpBlock, func(ctx context.Context, req api.UserReq) (api.BlockedResp, error) {
		if req.User == "" {
			return api.BlockedResp{}, errorf(api.KindInvalid, "name a user to block")
		}
		return e.SetBlocked(ctx, req.User, true)
	})
	Handle(s, api.EpUnblock, func(ctx context.Context, req api.UserReq) (api.BlockedResp, error) {
		if req.User == "" {
			return api.BlockedResp{}, errorf(api.KindInvalid, "name a user to unblock")
		}
		return e.SetBlocked(ctx, req.User, false)
	})
	Handle(s, api.EpBlocked, func(ctx context.Context, _ api.Empty) (api.BlockedResp, error) { return e.SetBlocked(ctx, "", false) })
	Handle(s, api.EpDM, func(ctx context.Context, req api.UserReq) (api.RoomResp, error) {
		u, err := parseUser(req.User)
		if err != nil {
			return api.RoomResp{}, err
		}
		room, invited, err := e.DMRoom(ctx, u)
		if err != nil {
			return api.RoomResp{}, err
		}
		switch {
		case room != "" && invited:
			if _, err := n.joinRoom(ctx, h, room, nil); err != nil {
				return api.RoomResp{}, err
			}
			return api.RoomResp{Room: room}, nil
		case room != "":
			return api.RoomResp{Room: room}, nil
		}
		return e.CreateDM(ctx, u)
	})
}
