package p2p

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-varint"
	"google.golang.org/protobuf/proto"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/mailbox"
	"github.com/parley-p2p/parley/node/wire"
)

// Rooms on the wire (docs/protocol.md 2.1). A room is named on the wire only
// by its reference, a domain-separated hash of its id, so that topic names
// and sync requests reveal nothing about the id. The id stays the
// capability: a peer is served a room's log, gossip and signals only after it
// has proved that it knows the id, by a MAC keyed with a hash of the id over
// fresh nonces of both sides and both peer ids (the room-proof exchange).
// The RoomGate keeps who proved what, answers and runs the exchange, and
// filters pubsub so that unproven peers neither join a room's topics nor
// receive its messages.

// RoomProofProtocol is the room-proof exchange.
const RoomProofProtocol = protocol.ID("/parley/room-proof/1.0.0")

// Labels of the derivations; each is followed by a zero byte.
const (
	roomRefLabel   = "parley/room-ref/1"
	roomKeyLabel   = "parley/room-key/1"
	roomProofLabel = "parley/room-proof/1"
)

// roomTopicPrefix starts every room topic name.
const roomTopicPrefix = "/parley/room/"

// Limits and timing of the room-proof exchange.
const (
	maxProofRefs     = 64
	maxProofFrame    = 8 << 10
	proofNonceSize   = 32
	proofIdle        = 10 * time.Second
	proofRetry       = 10 * time.Second // a failed proof is not retried sooner, unless the peer subscribes
	proofRetryForced = time.Second      // nor sooner than this when it does
	maxPendingSubs   = 1024             // held-back room-topic subscriptions kept per peer
)

// Proof roles, MACed so that a responder's MAC is never an initiator's.
const (
	roleResponder = 'R'
	roleInitiator = 'I'
)

// ErrRoomNotProven: the peer and this node have not proved the room to each other.
var ErrRoomNotProven = errors.New("p2p: room not proven with this peer")

// RoomRef is a room's reference on the wire: SHA-256 of roomRefLabel, a zero
// byte and the room id's bytes.
type RoomRef [32]byte

// RefOf derives a room's reference.
func RefOf(room crdt.RoomID) RoomRef { return RoomRef(labelled(roomRefLabel, []byte(room))) }

// refEncoding is RFC 4648 base32, lower case, without padding.
var refEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// String is the reference in topic names: base32, lower case, no padding.
func (r RoomRef) String() string { return refEncoding.EncodeToString(r[:]) }

func RefFromBytes(b []byte) (RoomRef, bool) {
	if len(b) != len(RoomRef{}) {
		return RoomRef{}, false
	}
	return RoomRef(b), true
}

func labelled(label string, b []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(label))
	h.Write([]byte{0})
	h.Write(b)
	return [32]byte(h.Sum(nil))
}

// roomTopic is the name of one of a room's topics (kind ev, heads or eph).
func roomTopic(room crdt.RoomID, kind string) string {
	return roomTopicPrefix + RefOf(room).String() + "/" + kind + "/2"
}

// topicsOf lists a room's topic names.
func topicsOf(room crdt.RoomID) []string {
	return []string{eventTopic(room), headsTopic(room), EphemeralTopic(room)}
}

// proofMAC is what a party of the exchange proves with: HMAC-SHA-256 keyed
// with the room key over the proof label, a zero byte, the role, both nonces,
// both peer ids (length-prefixed) and the room reference.
func proofMAC(room crdt.RoomID, role byte, nonceI, nonceR []byte, initiator, responder peer.ID) []byte {
	key := labelled(roomKeyLabel, []byte(room))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(roomProofLabel))
	m.Write([]byte{0, role})
	m.Write(nonceI)
	m.Write(nonceR)
	m.Write(binary.AppendUvarint(nil, uint64(len(initiator))))
	m.Write([]byte(initiator))
	m.Write(binary.AppendUvarint(nil, uint64(len(responder))))
	m.Write([]byte(responder))
	ref := RefOf(room)
	m.Write(ref[:])
	return m.Sum(nil)
}

// proofMsg is every frame of the room-proof exchange.
type proofMsg struct {
	Nonce []byte   `cbor:"nonce,omitempty"`
	Refs  [][]byte `cbor:"refs,omitempty"`
	MACs  [][]byte `cbor:"macs,omitempty"`
}

// decodeProofMsg parses one frame strictly.
func decodeProofMsg(b []byte) (*proofMsg, error) {
	var m proofMsg
	if err := crdt.UnmarshalCanonical(b, &m); err != nil {
		return nil, fmt.Errorf("room proof frame: %w", err)
	}
	switch {
	case len(m.Nonce) != 0 && len(m.Nonce) != proofNonceSize:
		return nil, errors.New("room proof frame: bad nonce")
	case len(m.Refs) > maxProofRefs:
		return nil, errors.New("room proof frame: too many rooms")
	case len(m.MACs) != 0 && len(m.MACs) != len(m.Refs):
		return nil, errors.New("room proof frame: one mac per room")
	}
	for _, r := range m.Refs {
		if len(r) != len(RoomRef{}) {
			return nil, errors.New("room proof frame: bad room reference")
		}
	}
	for _, x := range m.MACs {
		if len(x) != sha256.Size {
			return nil, errors.New("room proof frame: bad mac")
		}
	}
	return &m, nil
}

// RoomGate keeps which peers proved which rooms, serves and runs the
// room-proof exchange and gates pubsub (subscription and peer filters, and
// the replay of subscriptions held back until a proof). Its state is guarded
// by mu; exchanges with one peer run one at a time.
type RoomGate struct {
	host host.Host
	log  *slog.Logger
	*wire.PeerLimits

	mu     sync.Mutex
	rooms  map[RoomRef]crdt.RoomID // rooms this node keeps; guarded by mu
	topics map[string]RoomRef      // their topic names; guarded by mu
	peers  map[peer.ID]*gatePeer   // guarded by mu

	jobs *mailbox.Mailbox[proofJob]

	// FrameDelay, when set, is called with the size in bytes of each
	// frame a peer's pubsub stream brings, in order, on the stream's
	// reader; the frame then waits the time it returns before pubsub reads
	// it (the call may also block: a simulated CPU charging the frame's
	// work). Simulations give their replicas the transport time and work
	// of each gossip copy that a netns run measured (simulations/cpu.go,
	// hop_ms and per_kb_path). Daemons leave it nil. Set before pubsub
	// starts.
	FrameDelay func(size int) time.Duration
	// FrameSend, when set, is called with the size in bytes of each frame
	// pubsub writes to a peer, before the write, on pubsub's writer for
	// that peer; it may block (a simulated CPU charging the frame's work,
	// simulations/cpu.go per_kb_path). Daemons leave it nil. Set before
	// pubsub starts.
	FrameSend func(size int)
}

// gatePeer is what the gate knows of one connected peer.
type gatePeer struct {
	theirs  map[RoomRef]bool           // rooms the peer proved it knows
	ours    map[RoomRef]bool           // rooms the peer accepted our proof of
	failed  map[RoomRef]time.Time      // last failed exchange
	pending map[string]*pb.RPC_SubOpts // room-topic subscriptions held back
	subs    map[string]*pb.RPC_SubOpts // subscriptions given to pubsub on the current inbound stream
	stream  *gatedStream               // its current inbound pubsub stream
	writer  bool                       // pubsub opened a stream to the peer
	lock    chan struct{}              // capacity 1: our exchange with the peer
}

type proofJob struct {
	peer peer.ID
	ref  RoomRef
}

// NewRoomGate registers the room-proof handler on h.
func NewRoomGate(h host.Host, log *slog.Logger) *RoomGate {
	g := &RoomGate{
		host: h, log: log,
		PeerLimits: wire.NewPeerLimits(4, 200, 400),
		rooms:      map[RoomRef]crdt.RoomID{},
		topics:     map[string]RoomRef{},
		peers:      map[peer.ID]*gatePeer{},
		jobs:       mailbox.New[proofJob](),
	}
	h.SetStreamHandler(RoomProofProtocol, g.handle)
	return g
}

// peer returns p's record, creating it; mu must be held.
func (g *RoomGate) peer(p peer.ID) *gatePeer {
	gp := g.peers[p]
	if gp == nil {
		gp = &gatePeer{theirs: map[RoomRef]bool{}, ours: map[RoomRef]bool{}, failed: map[RoomRef]time.Time{}, pending: map[string]*pb.RPC_SubOpts{}, subs: map[string]*pb.RPC_SubOpts{}, lock: make(chan struct{}, 1)}
		g.peers[p] = gp
	}
	return gp
}

// Track adds a room this node keeps: it answers proofs of it, and proves it
// to peers whose subscriptions to its topics were held back. It never blocks
// for long.
func (g *RoomGate) Track(room crdt.RoomID) {
	ref := RefOf(room)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rooms[ref] = room
	for _, t := range topicsOf(room) {
		g.topics[t] = ref
	}
	for p, gp := range g.peers {
		for t := range gp.pending {
			if g.topics[t] == ref {
				g.jobs.Put(proofJob{p, ref})
				break
			}
		}
	}
}

// RoomOf finds a kept room by reference.
func (g *RoomGate) RoomOf(ref RoomRef) (crdt.RoomID, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	room, ok := g.rooms[ref]
	return room, ok
}

// Proved reports whether p proved that it knows the room.
func (g *RoomGate) Proved(p peer.ID, ref RoomRef) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	gp := g.peers[p]
	return gp != nil && gp.theirs[ref]
}

// ProvedPeers lists the connected peers that proved the room.
func (g *RoomGate) ProvedPeers(ref RoomRef) []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []peer.ID
	for p, gp := range g.peers {
		if gp.theirs[ref] {
			out = append(out, p)
		}
	}
	return out
}

func (g *RoomGate) mutual(p peer.ID, ref RoomRef) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	gp := g.peers[p]
	return gp != nil && gp.theirs[ref] && gp.ours[ref]
}

// ProvedAny reports whether p proved any room this node keeps.
func (g *RoomGate) ProvedAny(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	gp := g.peers[p]
	if gp == nil {
		return false
	}
	for ref, ok := range gp.theirs {
		if _, kept := g.rooms[ref]; ok && kept {
			return true
		}
	}
	return false
}

// Forget drops what the gate knows of p (it disconnected).
func (g *RoomGate) Forget(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.peers, p)
}

// Ensure runs the room-proof exchange with p unless p and this node proved
// the room to each other already; a failed exchange is not retried for
// proofRetry.
func (g *RoomGate) Ensure(ctx context.Context, p peer.ID, room crdt.RoomID) error {
	return g.ensure(ctx, p, room, false)
}

func (g *RoomGate) ensure(ctx context.Context, p peer.ID, room crdt.RoomID, force bool) error {
	ref := RefOf(room)
	if g.mutual(p, ref) {
		return nil
	}
	g.mu.Lock()
	gp := g.peer(p)
	g.mu.Unlock()
	select {
	case gp.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-gp.lock }()
	if g.mutual(p, ref) {
		return nil
	}
	// One exchange proves the room asked for and every other kept room not
	// yet proven with p (a new connection needs one exchange, not one per
	// room); rooms p failed to prove lately are left out.
	now := time.Now()
	rooms := []crdt.RoomID{room}
	g.mu.Lock()
	last, failed := gp.failed[ref]
	for r, id := range g.rooms {
		if len(rooms) == maxProofRefs {
			break
		}
		if t, f := gp.failed[r]; r != ref && !(gp.theirs[r] && gp.ours[r]) && (!f || now.Sub(t) >= proofRetry) {
			rooms = append(rooms, id)
		}
	}
	g.mu.Unlock()
	if failed && (now.Sub(last) < proofRetryForced || !force && now.Sub(last) < proofRetry) {
		return ErrRoomNotProven
	}
	err := g.prove(ctx, p, rooms)
	g.mu.Lock()
	for _, r := range rooms {
		if rr := RefOf(r); err != nil || !(gp.theirs[rr] && gp.ours[rr]) {
			g.peer(p).failed[rr] = now
		}
	}
	g.mu.Unlock()
	if err == nil && !g.mutual(p, ref) {
		err = ErrRoomNotProven
	}
	return err
}

// prove runs the initiator's side of the exchange for rooms (at most
// maxProofRefs).
func (g *RoomGate) prove(ctx context.Context, p peer.ID, rooms []crdt.RoomID) error {
	ctx, cancel := context.WithTimeout(ctx, proofIdle)
	defer cancel()
	st, err := g.host.NewStream(network.WithAllowLimitedConn(ctx, "room-proof"), p, RoomProofProtocol)
	if err != nil {
		return err
	}
	defer st.Close()
	defer context.AfterFunc(ctx, func() { st.Reset() })() // a peer that stalls
	f := newFrames(st, proofIdle, decodeProofMsg)
	asked := map[RoomRef]crdt.RoomID{}
	hello := &proofMsg{Nonce: make([]byte, proofNonceSize)}
	rand.Read(hello.Nonce)
	for _, room := range rooms {
		ref := RefOf(room)
		if asked[ref] == "" {
			asked[ref] = room
			hello.Refs = append(hello.Refs, ref[:])
		}
	}
	if err := f.send(hello); err != nil {
		return err
	}
	challenge, _, err := f.recv(maxProofFrame, false)
	if err != nil {
		return err
	}
	if len(challenge.Nonce) != proofNonceSize || len(challenge.MACs) != len(challenge.Refs) {
		return errors.New("bad room proof challenge")
	}
	self := g.host.ID()
	var proved []RoomRef
	answer := &proofMsg{}
	for i, b := range challenge.Refs {
		ref, _ := RefFromBytes(b)
		room := asked[ref]
		if room != "" && hmac.Equal(challenge.MACs[i], proofMAC(room, roleResponder, hello.Nonce, challenge.Nonce, self, p)) {
			delete(asked, ref)
			proved = append(proved, ref)
			answer.Refs = append(answer.Refs, ref[:])
			answer.MACs = append(answer.MACs, proofMAC(room, roleInitiator, hello.Nonce, challenge.Nonce, self, p))
		}
	}
	if err := f.send(answer); err != nil {
		return err
	}
	g.accepted(p, proved) // the responder proved it knows these rooms
	if len(proved) == 0 {
		return nil
	}
	ack, _, err := f.recv(maxProofFrame, false)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range ack.Refs {
		if ref, _ := RefFromBytes(b); slices.Contains(proved, ref) {
			g.peer(p).ours[ref] = true
		}
	}
	return nil
}

// handle serves the responder's side of the exchange.
func (g *RoomGate) handle(st network.Stream) {
	p, release, ok := g.AdmitStream(st)
	if !ok {
		return
	}
	defer release()
	if !g.Limiter(p).Allow() {
		st.Reset()
		return
	}
	defer st.Close()
	f := newFrames(st, proofIdle, decodeProofMsg)
	hello, _, err := f.recv(maxProofFrame, false)
	if err != nil || len(hello.Nonce) != proofNonceSize || len(hello.MACs) != 0 {
		st.Reset()
		return
	}
	self := g.host.ID()
	nonceR := make([]byte, proofNonceSize)
	rand.Read(nonceR)
	challenge := &proofMsg{Nonce: nonceR}
	known := map[RoomRef]crdt.RoomID{}
	g.mu.Lock()
	for _, b := range hello.Refs {
		ref, _ := RefFromBytes(b)
		if room, ok := g.rooms[ref]; ok && known[ref] == "" {
			known[ref] = room
			challenge.Refs = append(challenge.Refs, ref[:])
			challenge.MACs = append(challenge.MACs, proofMAC(room, roleResponder, hello.Nonce, nonceR, p, self))
		}
	}
	g.mu.Unlock()
	if err := f.send(challenge); err != nil {
		return
	}
	answer, _, err := f.recv(maxProofFrame, false)
	if err != nil || len(answer.MACs) != len(answer.Refs) {
		st.Reset()
		return
	}
	var proved []RoomRef
	ack := &proofMsg{}
	for i, b := range answer.Refs {
		ref, _ := RefFromBytes(b)
		room := known[ref]
		if room != "" && hmac.Equal(answer.MACs[i], proofMAC(room, roleInitiator, hello.Nonce, nonceR, p, self)) {
			delete(known, ref)
			proved = append(proved, ref)
			ack.Refs = append(ack.Refs, ref[:])
		}
	}
	// The initiator answers only for rooms whose proof of ours it checked.
	g.mu.Lock()
	for _, ref := range proved {
		g.peer(p).ours[ref] = true
	}
	g.mu.Unlock()
	g.accepted(p, proved)
	f.send(ack)
}

// accepted records that p proved refs, and replays to pubsub the
// subscriptions of p to their topics that the filter held back.
func (g *RoomGate) accepted(p peer.ID, refs []RoomRef) {
	if len(refs) == 0 {
		return
	}
	g.mu.Lock()
	gp := g.peer(p)
	var subs []*pb.RPC_SubOpts
	for _, ref := range refs {
		gp.theirs[ref] = true
		delete(gp.failed, ref)
		for t, s := range gp.pending {
			if r, ok := g.topics[t]; ok && r == ref {
				subs = append(subs, s)
				delete(gp.pending, t)
			}
		}
	}
	st := gp.stream
	g.mu.Unlock()
	g.replay(p, st, subs)
}

// replay puts p's subscriptions subs into its inbound stream st, as if p
// had sent them (nothing when there is no stream or nothing to replay).
func (g *RoomGate) replay(p peer.ID, st *gatedStream, subs []*pb.RPC_SubOpts) {
	if len(subs) == 0 || st == nil {
		return
	}
	b, err := proto.Marshal(&pb.RPC{Subscriptions: subs})
	if err != nil {
		return
	}
	if !st.inject(append(binary.AppendUvarint(nil, uint64(len(b))), b...)) {
		g.log.Debug("room gate: subscriptions not replayed", "peer", p)
	}
}

// Serve runs the proofs that the filters ask for until ctx is done.
func (g *RoomGate) Serve(ctx context.Context) error {
	defer g.host.RemoveStreamHandler(RoomProofProtocol)
	notifee := &network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		if n.Connectedness(c.RemotePeer()) != network.Connected {
			g.Forget(c.RemotePeer())
		}
	}}
	g.host.Network().Notify(notifee)
	defer g.host.Network().StopNotify(notifee)
	// At most one goroutine per peer runs the proofs asked for it; what
	// is asked meanwhile waits for it to finish.
	running := map[peer.ID]bool{}
	waiting := map[peer.ID]map[RoomRef]bool{}
	done := make(chan peer.ID)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := func(p peer.ID, refs map[RoomRef]bool) {
		running[p] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range refs {
				if room, ok := g.RoomOf(ref); ok {
					if err := g.ensure(ctx, p, room, true); err != nil && ctx.Err() == nil {
						g.log.Debug("room proof", "peer", p, "err", err)
					}
				}
			}
			select {
			case done <- p:
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-done:
			delete(running, p)
			if refs := waiting[p]; refs != nil {
				delete(waiting, p)
				start(p, refs)
			}
		case <-g.jobs.Signal:
			fresh := map[peer.ID]map[RoomRef]bool{}
			for _, j := range g.jobs.Take() {
				m := fresh
				if running[j.peer] {
					m = waiting
				}
				if m[j.peer] == nil {
					m[j.peer] = map[RoomRef]bool{}
				}
				m[j.peer][j.ref] = true
			}
			for p, refs := range fresh {
				start(p, refs)
			}
		}
	}
}

// isRoomTopic tells room topics from any other.
func isRoomTopic(t string) bool { return strings.HasPrefix(t, roomTopicPrefix) }

// CanSubscribe lets this node join any topic (pubsub.SubscriptionFilter).
func (g *RoomGate) CanSubscribe(string) bool { return true }

// FilterIncomingSubscriptions keeps a peer's subscriptions to a room's
// topics only once the peer proved the room; until then they are held back
// (and replayed by accepted) and a proof is started if this node keeps the
// room (pubsub.SubscriptionFilter). Other topics pass.
func (g *RoomGate) FilterIncomingSubscriptions(p peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	out := make([]*pb.RPC_SubOpts, 0, len(subs))
	g.mu.Lock()
	defer g.mu.Unlock()
	gp := g.peer(p)
	pass := func(s *pb.RPC_SubOpts) {
		out = append(out, s)
		if t := s.GetTopicid(); !s.GetSubscribe() {
			delete(gp.subs, t)
		} else if len(gp.subs) < maxPendingSubs {
			gp.subs[t] = s
		}
	}
	for _, s := range subs {
		t := s.GetTopicid()
		if !isRoomTopic(t) {
			pass(s)
			continue
		}
		if !s.GetSubscribe() {
			delete(gp.pending, t)
			pass(s)
			continue
		}
		ref, kept := g.topics[t]
		if kept && gp.theirs[ref] {
			pass(s)
			continue
		}
		if len(gp.pending) < maxPendingSubs {
			gp.pending[t] = s
		}
		if kept {
			g.jobs.Put(proofJob{p, ref})
		}
	}
	return out, nil
}

// allowPeer is the pubsub peer filter: a room's topics only with peers that
// proved the room (mesh, gossip, grafts and IWANT answers).
func (g *RoomGate) allowPeer(p peer.ID, topic string) bool {
	if !isRoomTopic(topic) {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ref, kept := g.topics[topic]
	gp := g.peers[p]
	return kept && gp != nil && gp.theirs[ref]
}

// PubSubOptions are the pubsub options that install the gate's filters.
func (g *RoomGate) PubSubOptions() []pubsub.Option {
	return []pubsub.Option{pubsub.WithSubscriptionFilter(g), pubsub.WithPeerFilter(g.allowPeer)}
}

// PubSubHost wraps h for pubsub so that the gate sees pubsub's inbound
// streams and can replay held-back subscriptions into them.
func (g *RoomGate) PubSubHost(h host.Host) host.Host { return gatedHost{h, g} }

type gatedHost struct {
	host.Host
	g *RoomGate
}

func (h gatedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.g.gateStreams(handler))
}

func (h gatedHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, h.g.gateStreams(handler))
}

// NewStream is pubsub's outbound stream to p. Pubsub opens a second one
// to a connected peer only after it found the first dead, and then it has
// dropped the peer's subscriptions, which came on the inbound stream: that
// stream lives on, and the peer sends them only once per stream, so
// pubsub would send the peer nothing more of those topics until one of
// them is closed (after a peer's restart over QUIC, the new connection
// from the peer, whose inbound stream arrived before this node's old
// writer died). The gate replays them into the inbound stream: pubsub
// handles the death (forgetting them) before it opens the new stream.
func (h gatedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return s, err
	}
	h.g.rewriter(p)
	if h.g.FrameSend != nil {
		return sendHeldStream{s, h.g.FrameSend}, nil
	}
	return s, nil
}

// sendHeldStream is pubsub's outbound stream with RoomGate.FrameSend called
// before each write (pubsub writes a frame, varint length and RPC, in one).
type sendHeldStream struct {
	network.Stream
	send func(int)
}

func (s sendHeldStream) Write(p []byte) (int, error) {
	s.send(len(p))
	return s.Stream.Write(p)
}

// rewriter notes that pubsub opened a stream to p, and replays p's
// subscriptions when it is not the first (NewStream).
func (g *RoomGate) rewriter(p peer.ID) {
	g.mu.Lock()
	gp := g.peer(p)
	again := gp.writer
	gp.writer = true
	if !again {
		g.mu.Unlock()
		return
	}
	subs := slices.Collect(maps.Values(gp.subs))
	st := gp.stream
	g.mu.Unlock()
	g.replay(p, st, subs)
}

func (g *RoomGate) gateStreams(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		gs := newGatedStream(s, maxPubSubMessage, g.FrameDelay)
		p := s.Conn().RemotePeer()
		g.mu.Lock()
		gp := g.peer(p)
		gp.stream = gs
		clear(gp.subs) // pubsub forgets those of the stream this one replaces; a hello follows
		g.mu.Unlock()
		handler(gs)
	}
}

// gatedStream is an inbound pubsub stream whose frames (unsigned-varint
// length-prefixed RPCs) are read by a pump goroutine, so that replayed
// subscription RPCs can be put between two frames.
type gatedStream struct {
	network.Stream
	frames chan []byte // closed at the end of the wire, after err is set
	extra  chan []byte
	err    error
	cur    []byte
	done   chan struct{}
	once   sync.Once
}

func newGatedStream(s network.Stream, maxFrame int, delay func(int) time.Duration) *gatedStream {
	gs := &gatedStream{Stream: s, frames: make(chan []byte), extra: make(chan []byte, 64), done: make(chan struct{})}
	if delay == nil {
		go gs.pump(maxFrame, gs.frames)
		return gs
	}
	read := make(chan []byte, 256)
	go gs.pump(maxFrame, read)
	go gs.hold(read, delay)
	return gs
}

// pump reads the wire's frames into out, and closes it at the end of the
// wire (s.err set first).
func (s *gatedStream) pump(maxFrame int, out chan<- []byte) {
	br := bufio.NewReader(s.Stream)
	for {
		f, err := readFrame(br, maxFrame)
		if err != nil {
			s.err = err
			close(out)
			return
		}
		select {
		case out <- f:
		case <-s.done:
			return
		}
	}
}

// hold passes the frames of in on to s.frames, each once a delay drawn
// when it was read has passed, in order (RoomGate.FrameDelay: a later
// frame waits for an earlier one, as on a stream, but the delays do not
// add up).
func (s *gatedStream) hold(in <-chan []byte, delay func(int) time.Duration) {
	type held struct {
		f   []byte
		due time.Time
	}
	q := make(chan held, cap(in))
	go func() {
		defer close(q)
		for {
			var f []byte
			var ok bool
			select {
			case f, ok = <-in:
				if !ok {
					return
				}
			case <-s.done:
				return
			}
			d := delay(len(f)) // may block: the frame's simulated work
			select {
			case q <- held{f, time.Now().Add(d)}:
			case <-s.done:
				return
			}
		}
	}()
	for h := range q {
		if w := time.Until(h.due); w > 0 {
			t := time.NewTimer(w)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
		}
		select {
		case s.frames <- h.f:
		case <-s.done:
			return
		}
	}
	close(s.frames)
}

// readFrame reads one varint-prefixed frame and returns it with its prefix.
func readFrame(br *bufio.Reader, maxFrame int) ([]byte, error) {
	n, err := varint.ReadUvarint(br) // minimal encodings only, as pubsub reads
	if err != nil {
		return nil, err
	}
	if n > uint64(maxFrame) {
		return nil, errors.New("pubsub frame too large")
	}
	f := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+int(n)), n)
	k := len(f)
	f = f[:k+int(n)]
	if _, err := io.ReadFull(br, f[k:]); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return f, nil
}

func (s *gatedStream) Read(p []byte) (int, error) {
	if len(s.cur) == 0 {
		select {
		case f, ok := <-s.frames:
			if !ok {
				return 0, s.err
			}
			s.cur = f
		case f := <-s.extra:
			s.cur = f
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// inject queues a whole frame to be read between two frames of the wire.
func (s *gatedStream) inject(f []byte) bool {
	select {
	case <-s.done:
		return false
	case s.extra <- f:
		return true
	default:
		return false
	}
}

func (s *gatedStream) stop() { s.once.Do(func() { close(s.done) }) }

func (s *gatedStream) Close() error { s.stop(); return s.Stream.Close() }
func (s *gatedStream) Reset() error { s.stop(); return s.Stream.Reset() }
