package p2p

import (
	"net"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
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

// peerScoreParams are the global terms.
func peerScoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{},
		// The sum of positive topic contributions is capped, so that a
		// peer that relays a lot in one busy room cannot bank enough
		// credit to hide misbehaviour elsewhere (negative terms are not
		// capped).
		TopicScoreCap: 50,
		// No application-specific term yet (P5): room membership is
		// already enforced by the room proof and the validator.
		AppSpecificScore:  func(peer.ID) float64 { return 0 },
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
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		// Counters decay every second and reset below 0.01.
		DecayInterval: time.Second,
		DecayToZero:   0.01,
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
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
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
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
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
