package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// ReplicaOptions tune a Replica.
type ReplicaOptions struct {
	Logger *slog.Logger
	Tracer p2p.Tracer
	Seed   uint64 // for jitter and peer choice; simulations fix it
	// PrefsPath is where the engine keeps the user's local preferences
	// (blocked users, invite policy, pending invites, profile); empty keeps
	// them in memory.
	PrefsPath string
	// Keys configure end-to-end encryption (KEM key, local store, rotation
	// policy); the zero value suits tests and simulations.
	Keys KeyOptions
	// Now is the engine's clock (periodic rotation, event timestamps); nil: time.Now.
	Now func() time.Time
	// Unguarded makes the gossip validator check events statelessly only,
	// not against the room state (guard.go): for adversary replicas in
	// tests and simulations, which must be able to publish what honest
	// nodes refuse.
	Unguarded bool
	// PubSubOptions are extra gossipsub options, appended to Parley's: for
	// simulations (the CPU model's validator, simulations/cpu.go), not for
	// daemons.
	PubSubOptions []pubsub.Option
	// FrameDelay holds each inbound pubsub frame, given its size, for the
	// time it returns (p2p.RoomGate.FrameDelay): for simulations, not for
	// daemons.
	FrameDelay func(size int) time.Duration
	// FrameSend is called before each outbound pubsub frame is written,
	// with its size (p2p.RoomGate.FrameSend): for simulations, not for
	// daemons.
	FrameSend func(size int)
	// Bases are frozen room prefixes shared by the replicas of one process
	// (simulations, roombase.go): such a room starts as an overlay of its
	// base. Daemons have none.
	Bases map[crdt.RoomID]*RoomBase
	// Lean leaves out what only a user of the node's API needs, for
	// simulations, which run thousands of replicas and use none of it: the
	// search index (no event is indexed; a search scans), the ephemeral
	// topics (typing, presence and call signals: no room's eph topic is
	// joined, so gossipsub keeps no mesh for it), and the peer scores the
	// API shows (pubsub does not hand them over every second). Gossip,
	// sync, scoring and the rooms work as without it. Daemons leave it off.
	Lean bool
	// crashAfterRotate arms the test-only crash point of crashpoint.go.
	crashAfterRotate bool
}

// Replica is the peer-to-peer side of a node on a given host and store: the
// engine (room logs and state), gossip and pull sync. The daemon runs one on
// its libp2p host and badger store; tests and simulations run many on
// mocknet or simnet hosts with in-memory stores.
type Replica struct {
	host   host.Host
	store  crdt.Store
	ident  *crdt.Identity
	log    *slog.Logger
	opts   ReplicaOptions
	Engine *Engine
	ready  chan struct{}
	syncer *p2p.Syncer
	gossip *p2p.Gossip
	gate   *p2p.RoomGate
	gateP  atomic.Pointer[p2p.RoomGate] // gate, for other goroutines (the relay's ACL)
	eph    *Ephemeral                   // typing and presence (ephemeral.go)
	scores p2p.PeerScores               // gossipsub peer scores (p2p/peerscore.go)
}

// NewReplica loads the rooms held in store. Nothing runs until Serve.
func NewReplica(h host.Host, store crdt.Store, ident *crdt.Identity, opts ReplicaOptions) (*Replica, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Keys.Seed == 0 {
		opts.Keys.Seed = opts.Seed
	}
	eng, err := newEngine(ident, store, opts.PrefsPath, opts.Logger, opts.Keys, opts.Bases, opts.Lean)
	if err != nil {
		return nil, err
	}
	if opts.Now != nil {
		eng.now = opts.Now
	}
	return &Replica{host: h, store: store, ident: ident, log: opts.Logger, opts: opts, Engine: eng, ready: make(chan struct{}), eph: NewEphemeral(eng, opts.Logger)}, nil
}

// Ready is closed once gossip and sync are wired and running.
func (r *Replica) Ready() <-chan struct{} { return r.ready }

// Host returns the replica's libp2p host.
func (r *Replica) Host() host.Host { return r.host }

// SyncNow runs anti-entropy for every room with every connected peer.
func (r *Replica) SyncNow(ctx context.Context) {
	for _, room := range r.Engine.RoomIDs(ctx) {
		for _, p := range r.host.Network().Peers() {
			r.syncer.Trigger(room, p)
		}
	}
}

// Gate is the room gate once Serve started it, else nil.
func (r *Replica) Gate() *p2p.RoomGate { return r.gateP.Load() }

// Serve runs the engine, gossip and sync until ctx is done.
func (r *Replica) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gate := p2p.NewRoomGate(r.host, r.log)
	gate.FrameDelay = r.opts.FrameDelay
	gate.FrameSend = r.opts.FrameSend
	r.gate = gate
	r.gateP.Store(gate)
	// P5 of the peer score: members' devices are preferred in meshes
	// (p2p/peerscore.go).
	members := p2p.NewMemberScores(func(ctx context.Context, p peer.ID) bool {
		dev, err := deviceOfPeer(p)
		return err == nil && r.Engine.IsMemberDevice(ctx, dev)
	})
	var inspect []pubsub.Option
	if !r.opts.Lean {
		inspect = []pubsub.Option{pubsub.WithPeerScoreInspect(r.scores.Set, p2p.ScoreInspectPeriod)}
	}
	ps, err := p2p.NewPubSubScored(ctx, gate.PubSubHost(r.host), members.Score, slices.Concat(gate.PubSubOptions(), tracerPubSubOptions(r.opts.Tracer),
		inspect, r.opts.PubSubOptions)...)
	if err != nil {
		return fmt.Errorf("start pubsub: %w", err)
	}
	r.syncer = p2p.NewSyncer(r.host, r.Engine, gate, r.store, r.ident, r.log, r.opts.Tracer, r.opts.Seed)
	r.gossip = p2p.NewGossip(ps, r.host.ID(), r.Engine, r.syncer, gate, r.log, r.opts.Seed+2)
	r.gossip.Unguarded, r.gossip.Tracer = r.opts.Unguarded, r.opts.Tracer
	r.syncer.SetTopicPeers(func(room crdt.RoomID) []peer.ID { return ps.ListPeers(p2p.EventTopic(room)) })
	inviter := p2p.NewInviter(r.host, r.Engine, r.ident.User, func() []string { return hostAddrs(r.host, p2p.MaxInviteAddrs) }, inviteLimits, r.log)
	eph := r.eph
	eph.ps, eph.self = ps, r.host.ID()
	syncer, gossip, h := r.syncer, r.gossip, r.host
	r.Engine.SetEffects(Effects{
		Publish: func(_ crdt.RoomID, ev *crdt.Event) {
			gossip.Publish(ev)
			if r.opts.crashAfterRotate {
				crashPoint(ev)
			}
		},
		Heads:   func(room crdt.RoomID, heads []crdt.EventID) { gossip.HeadsChanged(room, heads) },
		Missing: func(room crdt.RoomID, ids []crdt.EventID, from peer.ID) { syncer.Fetch(room, ids, from) },
		Refused: func(room crdt.RoomID, from peer.ID) { syncer.Retry(room, from) },
		Track: func(room crdt.RoomID) {
			gate.Track(room)
			gossip.Track(room)
			if !r.opts.Lean {
				eph.Track(room)
			}
			for _, p := range h.Network().Peers() {
				syncer.Trigger(room, p)
			}
		},
		Invited: func(_ crdt.RoomID, target crdt.UserID, create, invite *crdt.Event, name string) {
			inviter.Deliver(target, create, invite, name)
		},
		Ingested: func(room crdt.RoomID, n int) {
			if r.opts.Tracer != nil {
				r.opts.Tracer.EventsAccepted(room, n)
			}
		},
		Accepted: memberStale(members, tracerAccepted(r.opts.Tracer)),
		Rejected: tracerRejected(r.opts.Tracer),
	})
	// Anti-entropy on every new connection. A peer's new connection beside
	// older ones has the older ones checked (p2p.DropStaleConns), and
	// anti-entropy runs again once a dead one is closed: what ran on it
	// meanwhile failed (docs/protocol.md 9).
	var checks sync.WaitGroup
	defer checks.Wait()
	notifee := &network.NotifyBundle{ConnectedF: func(n network.Network, c network.Conn) {
		p := c.RemotePeer()
		syncer.PeerConnected(p)
		if len(n.ConnsToPeer(p)) > 1 {
			checks.Go(func() {
				if p2p.DropStaleConns(ctx, n, c, p2p.StaleConnTimeout) > 0 {
					syncer.PeerConnected(p)
				}
			})
		}
	}}
	h.Network().Notify(notifee)
	defer h.Network().StopNotify(notifee)

	var wg sync.WaitGroup
	loops := map[string]func(context.Context) error{"engine": r.Engine.Serve, "gate": gate.Serve, "gossip": gossip.Serve, "sync": syncer.Serve, "invite": inviter.Serve, "ephemeral": eph.Serve, "expiry": r.Engine.ServeExpiry, "index": r.Engine.ServeIndex, "members": members.Serve}
	errs := make(chan error, len(loops)) // each loop sends at most once: none blocks
	for name, fn := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	close(r.ready)
	wg.Wait()
	close(errs)
	var all []error
	for e := range errs {
		all = append(all, e)
	}
	return errors.Join(all...)
}

// RoomInfo is Engine.Info with the number of connected peers that serve
// sync for the room (SyncInfo.SyncPeers).
func (r *Replica) RoomInfo(ctx context.Context, req api.RoomReq) (api.RoomInfoResp, error) {
	resp, err := r.Engine.Info(ctx, req)
	if err != nil {
		return resp, err
	}
	select {
	case <-r.ready:
		if id, err := crdt.ParseID(resp.Room); err == nil {
			resp.Sync.SyncPeers = r.syncer.SyncPeers(id)
		}
	default: // not serving yet: no peer
	}
	return resp, nil
}

// Ephemeral returns the replica's typing and presence component.
func (r *Replica) Ephemeral() *Ephemeral { return r.eph }

// Publish gossips ev as it is, without checking or storing it. Simulations
// use it to play a misbehaving member (an equivocating device); a node has
// no other use for it.
func (r *Replica) Publish(ev *crdt.Event) { r.gossip.Publish(ev) }

// PeerScore returns a peer's gossipsub score and whether it has one.
func (r *Replica) PeerScore(p peer.ID) (float64, bool) { return r.scores.Get(p) }

// JunkCPU is the CPU time this replica's gossip validators spent on
// messages they did not accept (rejected or ignored: junk), as far as the
// platform measures thread CPU time (p2p/junkcpu.go; 0 elsewhere).
func (r *Replica) JunkCPU() time.Duration { return r.gossip.JunkCPU() }

// GossipRefused counts the gossiped events this replica's validator
// refused against room state (guard.go): rejected and ignored.
func (r *Replica) GossipRefused() (rejected, ignored int64) {
	return r.gossip.Refused()
}

// memberStale wraps the engine's Accepted effect: a member or device event
// has the member scores checked again (p2p.MemberScores.Stale).
func memberStale(m *p2p.MemberScores, next func(crdt.RoomID, []*crdt.Event, peer.ID)) func(crdt.RoomID, []*crdt.Event, peer.ID) {
	return func(room crdt.RoomID, evs []*crdt.Event, from peer.ID) {
		for _, ev := range evs {
			if ev.Type == rooms.TypeMember || ev.Type == rooms.TypeDevice {
				m.Stale()
				break
			}
		}
		if next != nil {
			next(room, evs, from)
		}
	}
}
