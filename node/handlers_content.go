package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/parley-p2p/parley/api"
)

// registerContent binds the methods of message content and receipts
// (content.go) and of typing and presence (ephemeral.go).
func (n *Node) registerContent(h host.Host) {
	s, e := n.api, n.engine
	Handle(s, api.EpEdit, e.Edit)
	Handle(s, api.EpReact, e.React)
	Handle(s, api.EpUnreact, e.Unreact)
	Handle(s, api.EpRead, e.MarkRead)
	Handle(s, api.EpSearch, e.Search)
	Handle(s, api.EpSendFile, n.sendFile)
	eph := n.replica.Ephemeral()
	Handle(s, api.EpTyping, func(ctx context.Context, req api.TypingReq) (api.Empty, error) {
		room, data, err := e.Typing(ctx, req)
		if err == nil {
			eph.Publish(room, data)
		}
		return api.Empty{}, err
	})
	Handle(s, api.EpPresence, func(ctx context.Context, req api.PresenceReq) (api.PresenceResp, error) {
		resp, out, err := e.SetPresence(ctx, req)
		for room, data := range out {
			eph.Publish(room, data)
		}
		return resp, err
	})
	Handle(s, api.EpPresenceGet, e.Presence)
	Handle(s, api.EpSettings, e.Settings)
}
