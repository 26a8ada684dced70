package node

import (
	"context"

	"github.com/libp2p/go-libp2p/core/host"
)

// registerContent binds the methods of message content and receipts
// (content.go) and of typing and presence (ephemeral.go).
func (n *Node) registerContent(h host.Host) {
	s, e := n.api, n.engine
	Handle(s, EpEdit, e.Edit)
	Handle(s, EpReact, e.React)
	Handle(s, EpUnreact, e.Unreact)
	Handle(s, EpRead, e.Read)
	Handle(s, EpSendFile, n.sendFile)
	eph := n.replica.Ephemeral()
	Handle(s, EpTyping, func(ctx context.Context, req TypingReq) (Empty, error) {
		room, data, err := e.Typing(ctx, req)
		if err == nil {
			eph.Publish(room, data)
		}
		return Empty{}, err
	})
	Handle(s, EpPresence, func(ctx context.Context, req PresenceReq) (PresenceResp, error) {
		resp, out, err := e.SetPresence(ctx, req)
		for room, data := range out {
			eph.Publish(room, data)
		}
		return resp, err
	})
	Handle(s, EpPresenceGet, e.Presence)
	Handle(s, EpSettings, e.Settings)
}
