package node

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// registerAPI binds every API method to the component that answers it.
func (n *Node) registerAPI(h host.Host) {
	s := n.api
	Handle(s, api.EpID, func(ctx context.Context, _ api.Empty) (api.IDResp, error) {
		resp := api.IDResp{User: n.ident.User.String(), Device: n.ident.Device.Public().String(), PeerID: h.ID().String(), Addrs: []string{}}
		for _, a := range h.Addrs() {
			resp.Addrs = append(resp.Addrs, a.String()+"/p2p/"+h.ID().String())
		}
		return resp, nil
	})
	Handle(s, api.EpPeers, func(ctx context.Context, _ api.Empty) (api.PeersResp, error) {
		resp := api.PeersResp{Peers: []api.PeerInfo{}}
		for _, p := range h.Network().Peers() {
			pi := api.PeerInfo{PeerID: p.String()}
			if cs := h.Network().ConnsToPeer(p); len(cs) > 0 {
				// the connection new streams go on: a direct one over a relayed one
				i := max(0, slices.IndexFunc(cs, func(c network.Conn) bool { return !c.Stat().Limited }))
				pi.Addr = cs[i].RemoteMultiaddr().String()
				for _, c := range cs {
					pi.Conns = append(pi.Conns, c.RemoteMultiaddr().String())
				}
			}
			if sc, ok := n.replica.PeerScore(p); ok {
				pi.Score = &sc
			}
			resp.Peers = append(resp.Peers, pi)
		}
		return resp, nil
	})
	Handle(s, api.EpConnect, func(ctx context.Context, req api.AddrReq) (api.PeerResp, error) {
		pi, err := n.connect(ctx, h, req.Addr)
		if err != nil {
			return api.PeerResp{}, err
		}
		return api.PeerResp{PeerID: pi.ID.String()}, nil
	})
	Handle(s, api.EpDisconnect, func(ctx context.Context, req api.PeerReq) (api.PeerResp, error) {
		p, err := peer.Decode(req.PeerID)
		if err != nil {
			return api.PeerResp{}, errorf(api.KindInvalid, "%q is not a peer ID", req.PeerID)
		}
		if err := n.peers.Forget(p); err != nil {
			return api.PeerResp{}, err
		}
		h.Network().ClosePeer(p)
		return api.PeerResp{PeerID: p.String()}, nil
	})
	Handle(s, api.EpStatus, func(ctx context.Context, _ api.Empty) (api.StatusResp, error) {
		rooms, syncing, err := n.engine.RoomCount(ctx)
		if syncing == nil {
			syncing = []string{}
		}
		resp := api.StatusResp{Peers: len(h.Network().Peers()), Rooms: rooms, Syncing: syncing, StoreBytes: dirSize(filepath.Join(n.cfg.Home, storeDir))}
		resp.Reachability, resp.Addrs, resp.Relays, resp.RelayService = n.reach.status()
		resp.Reachable = n.reach.confirmed()
		return resp, err
	})
	Handle(s, api.EpRoomCreate, n.engine.CreateRoom)
	Handle(s, api.EpRoomList, func(ctx context.Context, _ api.Empty) (api.RoomListResp, error) { return n.engine.Rooms(ctx) })
	Handle(s, api.EpRoomInfo, n.replica.RoomInfo)
	Handle(s, api.EpRoomJoin, func(ctx context.Context, req api.RoomJoinReq) (api.RoomEventResp, error) {
		return n.joinRoom(ctx, h, req.Room, req.Via)
	})
	Handle(s, api.EpRoomHost, func(ctx context.Context, req api.RoomJoinReq) (api.RoomResp, error) {
		return n.keepBlind(ctx, h, req.Room, req.Via)
	})
	Handle(s, api.EpRoomUnhost, n.engine.DropBlind)
	Handle(s, api.EpSend, n.engine.Send)
	Handle(s, api.EpHistory, n.engine.History)
	Handle(s, api.EpResolve, n.engine.Resolve)
	n.registerGovernance(h)
	n.registerContent(h)
	n.registerArchive()
	n.registerMedia(h)
	n.registerDevices(h)
	n.registerCalls(h)
	HandleStream(s, api.EpWatch, func(ctx context.Context, req api.WatchReq, emit func(*api.WatchItem) error) error {
		ch, stop, err := n.engine.Watch(ctx, req.Room)
		if err != nil {
			return err
		}
		defer stop()
		// Registered: say so, so that a client knows that nothing from
		// here on is missed.
		if err := emit(&api.WatchItem{Kind: api.WatchReady, Room: req.Room}); err != nil {
			return nil
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case it, ok := <-ch:
				if !ok {
					return errors.New("watch stream ended (the client fell behind or the daemon is stopping)")
				}
				if it.Event != nil {
					it.Ref, it.Name = n.engine.watchLabels(ctx, it.Room, it.Event)
				}
				if err := emit(&it); err != nil {
					return nil
				}
			}
		}
	})
}

// joinRoom connects to the via peers, starts keeping the room, waits until
// a peer has sent its create event and state, and joins. A join that fails
// leaves no room behind that was not kept before it.
func (n *Node) joinRoom(ctx context.Context, h host.Host, room string, via []string) (api.RoomEventResp, error) {
	for _, a := range via {
		if _, err := n.connect(ctx, h, a); err != nil {
			return api.RoomEventResp{}, err
		}
	}
	id, err := crdt.ParseID(room)
	if err != nil {
		return api.RoomEventResp{}, errorf(api.KindInvalid, "%q is not a room ID", room)
	}
	if len(via) == 0 {
		n.dialInviter(ctx, h, id)
	}
	rdv := n.rdv.Load()
	if rdv != nil && len(via) == 0 {
		n.log.Debug("rendezvous", "room", id, "peers", rdv.Find(ctx, id))
	}
	if rdv != nil {
		defer rdv.ProvideSoon()
	}
	kept, err := n.engine.HasRoom(ctx, id)
	if err != nil {
		return api.RoomEventResp{}, err
	}
	resp, err := n.trackAndJoin(ctx, id)
	if err != nil && !kept {
		// ctx may be done (the client went away): roll back regardless.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if aerr := n.engine.Abandon(actx, id); aerr != nil {
			n.log.Warn("roll back a failed join", "room", id, "err", aerr)
		}
	}
	return resp, err
}

// trackAndJoin starts keeping a room, waits for its state and joins.
func (n *Node) trackAndJoin(ctx context.Context, id crdt.RoomID) (api.RoomEventResp, error) {
	room := id.String()
	if _, err := n.engine.TrackRoom(ctx, room); err != nil {
		return api.RoomEventResp{}, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := n.engine.HasRoomState(ctx, id)
		if err != nil {
			return api.RoomEventResp{}, err
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return api.RoomEventResp{}, codef(api.KindUnavailable, api.CodeRoomUnavailable, "room %s is not available from any connected peer; an invite-only room is served only to invited users", room)
		}
		select {
		case <-ctx.Done():
			return api.RoomEventResp{}, ErrClosed
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
	return n.engine.Join(ctx, id)
}

// keepBlind connects to the via peers and keeps the room without joining
// it (blind hosting), until a peer has sent its create event.
func (n *Node) keepBlind(ctx context.Context, h host.Host, room string, via []string) (api.RoomResp, error) {
	for _, a := range via {
		if _, err := n.connect(ctx, h, a); err != nil {
			return api.RoomResp{}, err
		}
	}
	id, err := n.engine.KeepBlind(ctx, room)
	if err != nil {
		return api.RoomResp{}, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, err := n.engine.HasRoomState(ctx, id)
		if err != nil {
			return api.RoomResp{}, err
		}
		if ok {
			return api.RoomResp{Room: id.String()}, nil
		}
		if time.Now().After(deadline) {
			return api.RoomResp{}, codef(api.KindUnavailable, api.CodeRoomUnavailable, "room %s is not available from any connected peer", room)
		}
		select {
		case <-ctx.Done():
			return api.RoomResp{}, ErrClosed
		case <-time.After(100 * time.Millisecond): // polling interval
		}
	}
}

// connect dials a full multiaddr (ending in /p2p/ID) and remembers it.
func (n *Node) connect(ctx context.Context, h host.Host, addr string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(addr)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q is not a multiaddr: %v", addr, err)
	}
	pi, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, errorf(api.KindInvalid, "%q must end in /p2p/PEER_ID", addr)
	}
	if pi.ID == h.ID() {
		return nil, errorf(api.KindInvalid, "%q is this node", addr)
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	p2p.ClearBackoff(h, pi.ID)
	if err := h.Connect(dctx, *pi); err != nil {
		n.log.Debug("connect", "addr", addr, "err", err)
		if strings.Contains(err.Error(), "peer id mismatch") {
			return nil, errorf(api.KindUnavailable, "%s answered, but as another peer than %s", addr, pi.ID)
		}
		return nil, errorf(api.KindUnavailable, "%s did not answer (no parley daemon listens there, or it is unreachable)", addr)
	}
	if err := n.peers.Add(addr); err != nil {
		return nil, err
	}
	return pi, nil
}

// dirSize adds up the disk space used by the files below dir (badger
// pre-allocates sparse files, so apparent sizes would overstate it).
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += diskUsage(info)
			}
		}
		return nil
	})
	return n
}
