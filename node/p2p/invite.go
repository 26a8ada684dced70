package p2p

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
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/mailbox"
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
	// MaxInviteAddrs: the invitee joins through them later, when the two
	// may no longer be connected. A receiver drops the addresses that do
	// not parse or name another peer.
	Addrs []string `cbor:"addrs,omitempty"`
}

// Bounds of an invite's addresses.
const (
	MaxInviteAddrs   = 8
	maxInviteAddrLen = 512
)

// EncodeInvite is the invite frame of a room's create event, an invite and
// the room's name (docs/protocol.md "Invites").
func EncodeInvite(create, invite *crdt.Event, name string, addrs ...string) ([]byte, error) {
	return crdt.Marshal(inviteMsg{Create: create.Encode(), Invite: invite.Encode(), Name: name, Addrs: addrs})
}

// inviteVia keeps the addresses of an invite that parse and end in
// /p2p/from, at most MaxInviteAddrs.
func inviteVia(addrs []string, from peer.ID) []string {
	var out []string
	for _, s := range addrs {
		if len(out) == MaxInviteAddrs {
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

type inviteAck struct {
	OK  bool   `cbor:"ok"`
	Err string `cbor:"err,omitempty"`
}

// InviteLimits are an Inviter's rates on received invites, per second
// with a burst: Frame for every invite frame a peer sends (most are for
// other users and refused after a signature check), Peer for invites to
// this user delivered by one peer, User for invites from one user.
type InviteLimits struct {
	Frame, Peer, User                rate.Limit
	FrameBurst, PeerBurst, UserBurst int
}

// errInviteRate refuses an invite over a rate limit. Its text is the
// answer's err on the wire (docs/protocol.md "Invites").
var errInviteRate = errors.New("node: too many invites, try later")

// maxInviteTargets bounds how many peers one invite is offered to.
const maxInviteTargets = 64

// maxInviteFrame bounds the one frame of an invite stream: two events of
// at most crdt.MaxEventSize and their envelope (docs/protocol.md §4).
const maxInviteFrame = 2 * (crdt.MaxEventSize + 256)

// InviteEngine is what the invite protocol needs of the room engine (the
// node's Engine).
type InviteEngine interface {
	// ReceiveInvite takes in an invite to this user, delivered by from,
	// with the addresses via that it came with (checked: each is from's).
	ReceiveInvite(ctx context.Context, create, invite *crdt.Event, name string, from peer.ID, via []string) error
}

// Inviter sends and receives invites.
type Inviter struct {
	host   host.Host
	engine InviteEngine
	user   crdt.UserID     // this node's user: the invites it takes are to it
	addrs  func() []string // this node's addresses, as an invite carries them
	log    *slog.Logger
	out    *mailbox.Mailbox[inviteJob]

	// Rate limits on received invites (InviteLimits).
	frames *wire.LimiterSet[peer.ID]     // every frame, per peer
	peers  *wire.LimiterSet[peer.ID]     // invites for this user, per delivering peer
	users  *wire.LimiterSet[crdt.UserID] // invites for this user, per inviter
}

type inviteJob struct {
	target         crdt.UserID
	create, invite *crdt.Event
	name           string
}

// NewInviter registers the invite protocol's handler on h, for invites to
// user within lim; the invites it sends carry the addresses addrs returns
// (at most MaxInviteAddrs, each ending in /p2p/ and h's ID).
func NewInviter(h host.Host, engine InviteEngine, user crdt.UserID, addrs func() []string, lim InviteLimits, log *slog.Logger) *Inviter {
	iv := &Inviter{
		host: h, engine: engine, user: user, addrs: addrs, log: log, out: mailbox.New[inviteJob](),
		frames: wire.NewLimiterSet[peer.ID](lim.Frame, lim.FrameBurst),
		peers:  wire.NewLimiterSet[peer.ID](lim.Peer, lim.PeerBurst),
		users:  wire.NewLimiterSet[crdt.UserID](lim.User, lim.UserBurst),
	}
	h.SetStreamHandler(InviteProtocol, iv.handle)
	return iv
}

// Deliver queues an invite for delivery. It never blocks.
func (iv *Inviter) Deliver(target crdt.UserID, create, invite *crdt.Event, name string) {
	iv.out.Put(inviteJob{target, create, invite, name})
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
		case <-iv.out.Signal:
			for _, j := range iv.out.Take() {
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
	b, err := EncodeInvite(j.create, j.invite, j.name, iv.addrs()...)
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
		err = iv.Receive(b, from)
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

// Receive checks one invite frame that peer from delivered and hands it
// to the engine; the handler calls it for each frame within the per-frame
// rate.
func (iv *Inviter) Receive(b []byte, from peer.ID) error {
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
	if invite.StateKey == nil || *invite.StateKey != iv.user.String() {
		return errors.New("invite is for another user")
	}
	if !iv.peers.Allow(from) || !iv.users.Allow(invite.User) {
		return errInviteRate
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return iv.engine.ReceiveInvite(ctx, create, invite, m.Name, from, inviteVia(m.Addrs, from))
}
