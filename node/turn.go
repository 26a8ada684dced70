package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/node/wire"
	"github.com/parley-p2p/parley/rooms"
)

// ICE servers for calls (docs/protocol.md 9.3). Every node answers STUN on
// a UDP port (stun.go); a node started with --turn also runs a TURN relay
// on it (turn_relay.go). A member of a room asks the members it is
// connected to for their ICE servers over TURNProtocol: the answer names
// the member's STUN port and, when it relays, TURN credentials that expire
// soon. Only a peer that proved the room (p2p/roomgate.go), whose device
// certificate names a user joined in it, and who is not blocked gets an
// answer; a stranger gets a refusal and nothing else.

// TURNProtocol hands out a member's STUN port and TURN credentials.
const TURNProtocol = protocol.ID("/parley/turn/1.0.0")

// Limits and timing of the protocol.
const (
	maxTURNFrame    = 1 << 10
	maxTURNCert     = 256
	maxTURNString   = 256
	turnIdle        = 10 * time.Second
	turnFetchWait   = 5 * time.Second // call.ice_servers waits this long for each member
	turnPeerStreams = 4
	turnPeerRate    = 2 // requests per second from one peer ...
	turnPeerBurst   = 20
)

// errTURNRefused: a member refused this node's request for credentials.
var errTURNRefused = errors.New("node: turn credentials refused")

// turnReq asks a member for its ICE servers in one room: the room's
// reference (proved on this connection) and the asking device's user and
// device certificate (the device is the peer's key).
type turnReq struct {
	Room []byte `cbor:"room"`
	User []byte `cbor:"user"`
	Cert []byte `cbor:"cert"`
}

// turnResp answers a turnReq: Err alone when refused; otherwise the STUN
// port (0: none), and, when the member relays, its TURN port, the host to
// reach it at ("" means the address this connection reaches it at), and
// TURN REST credentials valid until Expires (Unix seconds).
type turnResp struct {
	Err     string `cbor:"err,omitempty"`
	STUN    uint16 `cbor:"stun,omitempty"`
	TURN    uint16 `cbor:"turn,omitempty"`
	Host    string `cbor:"host,omitempty"`
	User    string `cbor:"user,omitempty"`
	Pass    string `cbor:"pass,omitempty"`
	Expires int64  `cbor:"exp,omitempty"`
}

// decodeTURNReq parses a request strictly.
func decodeTURNReq(b []byte) (*turnReq, error) {
	var m turnReq
	if err := crdt.UnmarshalCanonical(b, &m); err != nil {
		return nil, fmt.Errorf("turn request: %w", err)
	}
	switch {
	case len(m.Room) != len(p2p.RoomRef{}):
		return nil, errors.New("turn request: bad room reference")
	case len(m.User) != len(crdt.UserID{}):
		return nil, errors.New("turn request: bad user")
	case len(m.Cert) == 0 || len(m.Cert) > maxTURNCert:
		return nil, errors.New("turn request: bad certificate")
	}
	return &m, nil
}

// decodeTURNResp parses an answer strictly.
func decodeTURNResp(b []byte) (*turnResp, error) {
	var m turnResp
	if err := crdt.UnmarshalCanonical(b, &m); err != nil {
		return nil, fmt.Errorf("turn answer: %w", err)
	}
	switch {
	case len(m.Err) > maxTURNString || len(m.Host) > maxTURNString || len(m.User) > maxTURNString || len(m.Pass) > maxTURNString:
		return nil, errors.New("turn answer: field too long")
	case m.Err != "" && (m.STUN != 0 || m.TURN != 0 || m.User != "" || m.Pass != ""):
		return nil, errors.New("turn answer: a refusal with servers")
	case m.TURN != 0 && (m.User == "" || m.Pass == "" || m.Expires <= 0):
		return nil, errors.New("turn answer: a relay without credentials")
	}
	return &m, nil
}

// turnService serves TURNProtocol and asks peers over it.
type turnService struct {
	host   host.Host
	gate   func() *p2p.RoomGate
	ident  *crdt.Identity
	member func(ctx context.Context, room crdt.RoomID, user crdt.UserID) bool // a joined, unblocked member of a room this node is joined in
	offer  func(p peer.ID) *turnResp                                          // what a member gets
	limits *wire.PeerLimits
	issued func(ok bool) // counts answers (metrics); may be nil
}

func newTURNService(h host.Host, gate func() *p2p.RoomGate, ident *crdt.Identity,
	member func(context.Context, crdt.RoomID, crdt.UserID) bool, offer func(peer.ID) *turnResp) *turnService {
	s := &turnService{host: h, gate: gate, ident: ident, member: member, offer: offer,
		limits: wire.NewPeerLimits(turnPeerStreams, turnPeerRate, turnPeerBurst)}
	h.SetStreamHandler(TURNProtocol, s.handle)
	return s
}

// handle serves one request.
func (s *turnService) handle(st network.Stream) {
	p, release, ok := s.limits.AdmitStream(st)
	if !ok {
		return
	}
	defer release()
	if !s.limits.Limiter(p).Allow() {
		st.Reset()
		return
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(turnIdle))
	req, err := recvTURN(st, decodeTURNReq)
	if err != nil {
		st.Reset()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), turnIdle)
	defer cancel()
	resp := s.answer(ctx, p, req)
	if s.issued != nil {
		s.issued(resp.Err == "")
	}
	sendTURN(st, resp)
}

// sendTURN writes one frame of the protocol.
func sendTURN(st network.Stream, m any) error {
	b, err := crdt.Marshal(m)
	if err != nil {
		return err
	}
	return msgio.NewVarintWriter(st).WriteMsg(b)
}

// recvTURN reads and decodes one frame of the protocol.
func recvTURN[M any](st network.Stream, decode func([]byte) (*M, error)) (*M, error) {
	r := wire.NewFrameReader(st)
	b, err := r.Next(maxTURNFrame)
	if err != nil {
		return nil, err
	}
	return decode(b)
}

// answer decides a request from p: the offer for a member, a refusal that
// says nothing more for anyone else.
func (s *turnService) answer(ctx context.Context, p peer.ID, req *turnReq) *turnResp {
	refused := &turnResp{Err: "refused"}
	g := s.gate()
	ref, _ := p2p.RefFromBytes(req.Room)
	if g == nil {
		return refused
	}
	room, kept := g.RoomOf(ref)
	if !kept || !g.Proved(p, ref) {
		return refused
	}
	dev, err := deviceOfPeer(p)
	if err != nil {
		return refused
	}
	user, err := crdt.KeyFromBytes(req.User)
	if err != nil || !crdt.CheckDeviceCert(user, dev, req.Cert) || !s.member(ctx, room, user) {
		return refused
	}
	return s.offer(p)
}

// fetch asks member p for its ICE servers in room, proving the room to it
// first if need be.
func (s *turnService) fetch(ctx context.Context, p peer.ID, room crdt.RoomID) (*turnResp, error) {
	g := s.gate()
	if g == nil {
		return nil, p2p.ErrRoomNotProven
	}
	if err := g.Ensure(ctx, p, room); err != nil {
		return nil, err
	}
	st, err := s.host.NewStream(ctx, p, TURNProtocol)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if d, ok := ctx.Deadline(); ok {
		st.SetDeadline(d)
	}
	ref := p2p.RefOf(room)
	if err := sendTURN(st, &turnReq{Room: ref[:], User: s.ident.User[:], Cert: s.ident.Cert}); err != nil {
		st.Reset()
		return nil, err
	}
	resp, err := recvTURN(st, decodeTURNResp)
	if err != nil {
		st.Reset()
		return nil, err
	}
	if resp.Err != "" {
		return nil, errTURNRefused
	}
	return resp, nil
}

// callMember reports whether this node's user and user are both joined in
// room, and user is not blocked here: whom this node relays calls for.
func (e *Engine) callMember(ctx context.Context, room crdt.RoomID, user crdt.UserID) bool {
	ok := false
	e.do(ctx, func() error {
		rc := e.rooms[room]
		ok = rc != nil && rc.room != nil && rc.room.MembershipOf(e.ident.User) == rooms.Join &&
			rc.room.MembershipOf(user) == rooms.Join && !e.prefs.blocked(user)
		return nil
	})
	return ok
}

// joinedRoom parses a room this node's user is joined in.
func (e *Engine) joinedRoom(ctx context.Context, s string) (crdt.RoomID, error) {
	var id crdt.RoomID
	err := e.do(ctx, func() error {
		room, rc, err := e.roomOf(s)
		if err != nil {
			return err
		}
		if rc.room == nil || rc.room.MembershipOf(e.ident.User) != rooms.Join {
			return errorf(api.KindPermission, "you are not a member of room %s", room)
		}
		id = room
		return nil
	})
	return id, err
}
