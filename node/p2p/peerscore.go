package p2p

import (
	"context"
	"net"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/internal/mailbox"
)

// Peer scoring (gossipsub v1.1; docs/protocol.md §2, "Peer scoring"). A
// peer's score is the sum of its topic scores (capped) and the global
// terms; below the thresholds a peer loses, in turn, our gossip, our
// publishes and then every RPC of it is ignored (graylisting). Parley's
// event topics are per room and named by a hashed reference, so the topic
// parameters are set on each room's event topic when gossip joins it
// (Topic.SetScoreParams); heads and ephemeral topics carry no score terms
// of their own, but invalid messages there still count through P7 when
// pubsub sees protocol misbehaviour.

// peerScoreParams are the global terms; app is P5 (nil: 0 for every peer).
func peerScoreParams(app func(peer.ID) float64) *pubsub.PeerScoreParams {
	if app == nil {
		app = func(peer.ID) float64 { return 0 }
	}
	return &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{},
		// The sum of positive topic contributions is capped, so that a
		// peer that relays a lot in one busy room cannot bank enough
		// credit to hide misbehaviour elsewhere (negative terms are not
		// capped).
		TopicScoreCap: 50,
		// P5, application-specific: MemberBonus for a peer whose key is
		// the device key of a member of a room this node keeps
		// (MemberScores), 0 for every other peer. Room state names the
		// devices of its members, so a node knows them before any message
		// has flowed; mesh retention (the Dscore best peers are kept when
		// a mesh is pruned) and opportunistic grafting then prefer
		// members to strangers from the first heartbeat, where P2 needs
		// traffic first. Strangers are not penalised: a node that only
		// hosts or relays a room is one.
		AppSpecificScore:  app,
		AppSpecificWeight: 1,
		// P6, IP colocation: more than 8 peers behind one IP address pay
		// (n-8)^2 * 5 each. Cheap Sybils on one host are the common case;
		// NAT'd households and offices rarely hold more than a few
		// devices. Loopback is exempt (tests and several local daemons).
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 8,
		IPColocationFactorWhitelist: loopbackNets(),
		// P7, behaviour penalty: broken promises (IHAVE without the
		// IWANT answer), GRAFT during backoff. Above 6 events the excess
		// squared costs 10 each; it halves in about 10 minutes' worth of
		// decay, so a flaky but honest link recovers.
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     scoreDecay(10 * time.Minute),
		// Counters decay every scoreDecayInterval and reset below 0.01.
		DecayInterval: scoreDecayInterval,
		DecayToZero:   scoreDecayToZero,
		// A peer's score is kept 10 minutes after it disconnects, so a
		// reconnect does not launder a bad score.
		RetainScore: 10 * time.Minute,
	}
}

// eventTopicScoreParams are the terms of a room's event topic.
func eventTopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight: 1,
		// P1, time in mesh: 0.01 per second in our mesh, at most 3 after 5
		// minutes: stable neighbours win ties against newcomers, the sybil
		// mesh takeover the gossipsub v1.1 evaluation describes.
		TimeInMeshWeight:  0.01,
		TimeInMeshQuantum: time.Second,
		TimeInMeshCap:     300,
		// P2, first deliveries: 1 per event first received from the peer,
		// at most 50, decaying over about an hour. The main positive term:
		// peers that bring us new events are worth keeping.
		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  scoreDecay(time.Hour),
		FirstMessageDeliveriesCap:    50,
		// P3 and P3b, mesh delivery deficit: off. A chat room is quiet
		// for hours; a minimum delivery rate would punish every honest
		// mesh peer of a quiet room and prune the mesh when it is needed.
		// (Ethereum's attestation topics have a known steady rate; ours
		// do not.)
		MeshMessageDeliveriesWeight: 0,
		MeshFailurePenaltyWeight:    0,
		// P4, invalid messages: events the validator rejected (a bad
		// signature, a broken body hash, or what the room state refuses:
		// node/guard.go). The counter is squared: 1 reject costs 10 (the
		// gossip threshold), 3 cost 90 (graylisted). It decays over about
		// an hour. State-based rejects are exact when the relay holds the
		// event's past, so an honest forwarder is rarely charged.
		InvalidMessageDeliveriesWeight: -10,
		InvalidMessageDeliveriesDecay:  scoreDecay(time.Hour),
	}
}

// The score counters decay every 5 s, by the factor that brings them to
// scoreDecayToZero over their decay time (scoreDecay): the same curves as
// gossipsub's default 1 s, sampled every 5 s. Decay times are ten
// minutes and more, so nothing is lost by the coarser steps, and pubsub's
// pass over every peer's counters (refreshScores, which also advances P1's
// time in mesh) runs a fifth as often: it was 3-9 % of a simulation's CPU
// (simulations/README.md, "Measurements").
const (
	scoreDecayInterval = 5 * time.Second
	scoreDecayToZero   = 0.01
)

// scoreDecay is the per-interval factor of a counter that decays over d.
func scoreDecay(d time.Duration) float64 {
	return pubsub.ScoreParameterDecayWithBase(d, scoreDecayInterval, scoreDecayToZero)
}

// PeerScoreThresholds decide what a low score costs.
func PeerScoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		// Below -10 (one invalid event) we stop gossiping IHAVE to the peer
		// and ignore its IHAVE.
		GossipThreshold: -10,
		// Below -50 our own events are not flood-published to it.
		PublishThreshold: -50,
		// Below -80 (three invalid events) every RPC of the peer is ignored.
		GraylistThreshold: -80,
		// Peer exchange is taken only from peers with a clearly good
		// record (P2 credit from real deliveries).
		AcceptPXThreshold: 10,
		// Opportunistic grafting, when the mesh's median score falls
		// below 1, brings in better peers.
		OpportunisticGraftThreshold: 1,
	}
}

// MemberBonus is P5 for a member's device: above what a stranger can
// earn without delivering (P1 is at most 3) and above the opportunistic
// grafting threshold, so that a mesh whose median peer is a stranger
// grafts members; below AcceptPXThreshold, so that peer exchange still
// asks for first deliveries.
const MemberBonus = 5

// Member lookups are cached for memberTTL (a member) or strangerTTL (a
// stranger), and checked again after every membership or device event
// (Stale); the TTLs bound what state resolution changes otherwise.
// Entries unused for memberForget are dropped.
const (
	memberTTL    = 30 * time.Second
	strangerTTL  = 5 * time.Second
	memberForget = 10 * time.Minute
)

// MemberScores is P5 (peerScoreParams): whether a peer is a member's
// device, from the node's room state. Pubsub asks for scores under its
// own lock, from its event loop, many times a heartbeat, so Score only
// reads a cache; a miss or a stale entry is queued for Serve, which asks
// the node (isMember may wait on the engine) and fills the cache.
type MemberScores struct {
	isMember func(context.Context, peer.ID) bool
	queue    *mailbox.Mailbox[peer.ID]

	mu sync.Mutex
	m  map[peer.ID]*memberEntry // guarded by mu
}

type memberEntry struct {
	member  bool
	checked time.Time // zero: never checked
	used    time.Time
	queued  bool
}

// NewMemberScores makes the cache; isMember answers for one peer.
func NewMemberScores(isMember func(context.Context, peer.ID) bool) *MemberScores {
	return &MemberScores{isMember: isMember, queue: mailbox.New[peer.ID](), m: map[peer.ID]*memberEntry{}}
}

// Score is P5 of p: MemberBonus if p is known to be a member's device.
// It never blocks on the node.
func (s *MemberScores) Score(p peer.ID) float64 {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[p]
	if e == nil {
		e = &memberEntry{}
		s.m[p] = e
	}
	e.used = now
	ttl := strangerTTL
	if e.member {
		ttl = memberTTL
	}
	if !e.queued && (e.checked.IsZero() || now.Sub(e.checked) > ttl) {
		e.queued = true
		s.queue.Put(p)
	}
	if e.member {
		return MemberBonus
	}
	return 0
}

// Stale has every cached answer checked again when pubsub next asks, as
// after an event that changes who is a member (a join, a leave, a ban, a
// device removed): a banned member loses its bonus at once, not after
// memberTTL. It never blocks on the node.
func (s *MemberScores) Stale() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.m {
		e.checked = time.Time{}
	}
}

// Serve answers queued lookups until ctx is done.
func (s *MemberScores) Serve(ctx context.Context) error {
	sweep := time.NewTicker(memberForget)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-sweep.C:
			s.mu.Lock()
			for p, e := range s.m {
				if !e.queued && now.Sub(e.used) > memberForget {
					delete(s.m, p)
				}
			}
			s.mu.Unlock()
		case <-s.queue.Signal:
			for _, p := range s.queue.Take() {
				member := s.isMember(ctx, p)
				if ctx.Err() != nil {
					return nil
				}
				s.mu.Lock()
				if e := s.m[p]; e != nil {
					e.member, e.checked, e.queued = member, time.Now(), false
				}
				s.mu.Unlock()
			}
		}
	}
}

func loopbackNets() []*net.IPNet {
	var out []*net.IPNet
	for _, s := range []string{"127.0.0.0/8", "::1/128"} {
		_, n, _ := net.ParseCIDR(s)
		out = append(out, n)
	}
	return out
}

// PeerScores keeps the latest scores pubsub reported (WithPeerScoreInspect).
type PeerScores struct {
	mu sync.Mutex
	m  map[peer.ID]float64
}

// Set keeps m, the scores pubsub reported last.
func (s *PeerScores) Set(m map[peer.ID]float64) {
	s.mu.Lock()
	s.m = m
	s.mu.Unlock()
}

// Get returns a peer's score and whether pubsub scored it.
func (s *PeerScores) Get(p peer.ID) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[p]
	return v, ok
}

// ScoreInspectPeriod is how often the scores are refreshed for the API.
const ScoreInspectPeriod = time.Second
