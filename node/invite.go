package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/wire"
)

// InviteProtocol delivers invites to the invitee's devices directly, so that
// they learn of a room they do not keep yet (docs/protocol.md).
const InviteProtocol = protocol.ID("/parley/invite/1.0.0")

// inviteMsg is the one frame of an invite stream: the room's create event
// and the invite, in transport form. The answer is one inviteAck frame.
type inviteMsg struct {
	Create []byte `cbor:"create"`
	Invite []byte `cbor:"invite"`
	// Name is the room's name for the invitee's list of pending invites,
	// when the create event does not hold it (an encrypted room's name is
	// sealed). It crosses the (libp2p-encrypted) stream only; receivers
	// that are not the invitee drop it with the invite.
	Name string `cbor:"name,omitempty"`
	// Addrs are the inviting node's current addresses (relay addresses
	// first), each ending in /p2p/ and the sending peer's ID, at most
	// maxInviteAddrs: the invitee joins through them later, when the two
	// may no longer be connected. A receiver drops the addresses that do
	// not parse or name another peer.
	Addrs []string `cbor:"addrs,omitempty"`
}

// Bounds of an invite's addresses.
const (
	maxInviteAddrs   = 8
	maxInviteAddrLen = 512
)

// EncodeInvite is the invite frame of a room's create event, an invite and
// the room's name (docs/protocol.md "Invites").
func EncodeInvite(create, invite *crdt.Event, name string, addrs ...string) ([]byte, error) {
	return crdt.Marshal(inviteMsg{Create: create.Encode(), Invite: invite.Encode(), Name: name, Addrs: addrs})
}

// hostAddrs are h's addresses as an invite carries them: in dialOrder
// (relay addresses first: a home node is mostly reached through them),
// each ending in /p2p/ID, at most n.
func hostAddrs(h host.Host, n int) []string {
	ms := dialOrder(h.Addrs())
	var out []string
	for _, m := range ms[:min(len(ms), n)] {
		out = append(out, m.String()+"/p2p/"+h.ID().String())
	}
	return out
}

// inviteVia keeps the addresses of an invite that parse and end in
// /p2p/from, at most maxInviteAddrs.
func inviteVia(addrs []string, from peer.ID) []string {
	var out []string
	for _, s := range addrs {
		if len(out) == maxInviteAddrs {
			break
		}
		if len(s) > maxInviteAddrLen {
			continue
		}
		if pi, err := peer.AddrInfoFromString(s); err == nil && pi.ID == from && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// InviteVia returns the addresses a pending invite to room came with.
func (e *Engine) InviteVia(ctx context.Context, room crdt.RoomID) ([]string, error) {
	var via []string
	err := e.do(ctx, func() error {
		if inv := e.inv.byID[room.String()]; inv != nil {
			via = slices.Clone(inv.Via)
		}
		return nil
	})
	return via, err
}

type inviteAck struct {
	OK  bool   `cbor:"ok"`
	Err string `cbor:"err,omitempty"`
}

// errInviteRate refuses an invite over a rate limit (invites.go).
var errInviteRate = errors.New("node: too many invites, try later")

// maxInviteTargets bounds how many peers one invite is offered to.
const maxInviteTargets = 64

// maxInviteFrame bounds the one frame of an invite stream: two events of
// at most crdt.MaxEventSize and their envelope (docs/protocol.md §4).
const maxInviteFrame = 2 * (crdt.MaxEventSize + 256)

// Inviter sends and receives invites.
type Inviter struct {
	host   host.Host
	engine *Engine
	log    *slog.Logger
	out    *mailbox[inviteJob]

	// Rate limits on received invites (invites.go).
	frames *wire.LimiterSet[peer.ID]     // every frame, per peer
	peers  *wire.LimiterSet[peer.ID]     // invites for this user, per delivering peer
	users  *wire.LimiterSet[crdt.UserID] // invites for this user, per inviter
}

type inviteJob struct {
	target         crdt.UserID
	create, invite *crdt.Event
	name           string
}

// NewInviter registers the invite protocol's handler on h.
func NewInviter(h host.Host, engine *Engine, log *slog.Logger) *Inviter {
	iv := &Inviter{
		host: h, engine: engine, log: log, out: newMailbox[inviteJob](),
		frames: wire.NewLimiterSet[peer.ID](inviteFrameRate, inviteFrameBurst),
		peers:  wire.NewLimiterSet[peer.ID](invitePeerRate, invitePeerBurst),
		users:  wire.NewLimiterSet[crdt.UserID](inviteUserRate, inviteUserBurst),
	}
	h.SetStreamHandler(InviteProtocol, iv.handle)
	return iv
}

// Deliver queues an invite for delivery. It never blocks.
func (iv *Inviter) Deliver(target crdt.UserID, create, invite *crdt.Event, name string) {
	iv.out.put(inviteJob{target, create, invite, name})
}

// Serve delivers queued invites until ctx is done. The invite is offered to
// every connected peer (at most 64): the invitee's devices take it, others
// refuse it. The invite is also in the room's log, so an invitee that was
// offline sees it once it syncs the room.
func (iv *Inviter) Serve(ctx context.Context) error {
	defer iv.host.RemoveStreamHandler(InviteProtocol)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-iv.out.signal:
			for _, j := range iv.out.take() {
				peers := iv.host.Network().Peers()
				if len(peers) > maxInviteTargets {
					peers = peers[:maxInviteTargets]
				}
				var wg sync.WaitGroup
				for _, p := range peers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := iv.send(ctx, p, j); err != nil {
							iv.log.Debug("invite", "peer", p, "err", err)
						}
					}()
				}
				wg.Wait()
			}
		}
	}
}

func (iv *Inviter) send(ctx context.Context, p peer.ID, j inviteJob) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// An invite is small: it may go over a relayed connection.
	st, err := iv.host.NewStream(network.WithAllowLimitedConn(ctx, "invite"), p, InviteProtocol)
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := EncodeInvite(j.create, j.invite, j.name, hostAddrs(iv.host, maxInviteAddrs)...)
	if err != nil {
		return err
	}
	if err := msgio.NewVarintWriter(st).WriteMsg(b); err != nil {
		return err
	}
	resp, err := msgio.NewVarintReaderSize(st, 1024).ReadMsg()
	if err != nil {
		return err
	}
	var ack inviteAck
	if err := crdt.UnmarshalCanonical(resp, &ack); err != nil {
		return err
	}
	if !ack.OK {
		return errors.New(ack.Err)
	}
	return nil
}

func (iv *Inviter) handle(st network.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	from := st.Conn().RemotePeer()
	r := wire.NewFrameReader(st)
	b, err := r.Next(maxInviteFrame)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			st.Reset()
		}
		return
	}
	if iv.frames.Allow(from) {
		err = iv.receive(b, from)
	} else {
		err = errInviteRate
	}
	r.Shrink()
	ack := inviteAck{OK: err == nil}
	if err != nil {
		ack.Err = err.Error()
	}
	if out, err := crdt.Marshal(ack); err == nil {
		msgio.NewVarintWriter(st).WriteMsg(out)
	}
}

// receive checks one invite frame and hands it to the engine.
func (iv *Inviter) receive(b []byte, from peer.ID) error {
	var m inviteMsg
	if err := crdt.UnmarshalCanonical(b, &m); err != nil {
		return errors.New("malformed invite")
	}
	create, err := crdt.Decode(m.Create)
	if err != nil {
		return errors.New("bad create event")
	}
	invite, err := crdt.Decode(m.Invite)
	if err != nil {
		return errors.New("bad invite event")
	}
	if invite.StateKey == nil || *invite.StateKey != iv.engine.ident.User.String() {
		return errors.New("invite is for another user")
	}
	if !iv.peers.Allow(from) || !iv.users.Allow(invite.User) {
		return errInviteRate
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return iv.engine.ReceiveInvite(ctx, create, invite, m.Name, from, inviteVia(m.Addrs, from))
}

// dialInviter connects to the node that delivered a pending invite to
// room, through the addresses the invite came with, unless connected to it
// already: `room join` without --via of an invited room. Failures are
// logged only: the room may be reachable through other peers.
func (n *Node) dialInviter(ctx context.Context, h host.Host, room crdt.RoomID) {
	via, err := n.engine.InviteVia(ctx, room)
	if err != nil || len(via) == 0 {
		return
	}
	var addrs []ma.Multiaddr
	var p peer.ID
	for _, s := range via {
		if pi, err := peer.AddrInfoFromString(s); err == nil {
			p = pi.ID
			addrs = append(addrs, pi.Addrs...)
		}
	}
	if p == "" || p == h.ID() || h.Network().Connectedness(p) != network.NotConnected {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	clearBackoff(h, p)
	if err := h.Connect(dctx, peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		n.log.Debug("dial inviter", "room", room, "peer", p, "err", err)
	}
}
