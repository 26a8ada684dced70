package simulations

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// Sybils that relay badly (drop, delay), eclipse attempts (Target) and
// join floods of fresh identities (issue 15; scenario.go documents the
// kinds).

// forgerSpec returns the adversary group bare adversary i belongs to.
func (s *sim) forgerSpec(i int) *Adversary {
	f := s.plan.honest + s.plan.spammers
	for k := range s.sc.Adversaries {
		a := &s.sc.Adversaries[k]
		if adversaryKinds[a.Kind] {
			continue
		}
		if i < f+a.Count {
			return a
		}
		f += a.Count
	}
	return nil
}

// relayAdversaryPubSub gives a drop or delay adversary (nil, nil for
// others) the pubsub of an honest node: with a room gate that proves the
// room (a public room's ID is no secret to a Sybil), so that honest nodes
// let it into their meshes.
func (s *sim) relayAdversaryPubSub(i int) (*pubsub.PubSub, error) {
	a := s.forgerSpec(i)
	if a == nil || (a.Kind != "drop" && a.Kind != "delay") {
		return nil, nil
	}
	gate := p2p.NewRoomGate(s.hosts[i], slog.New(slog.DiscardHandler))
	gate.Track(s.room)
	// Like the bare adversaries' pubsub, it stops when the run's context
	// ends (after the replicas stopped), not with them: not in s.wg.
	go gate.Serve(s.ctx)
	return p2p.NewPubSub(s.ctx, gate.PubSubHost(s.hosts[i]), gate.PubSubOptions()...)
}

// startRelayAdversary makes a drop or delay adversary subscribe to the
// room's event topic, so that it takes mesh slots and receives what
// honest nodes forward: a drop adversary's validator ignores every message
// (it forwards nothing), a delay adversary's accepts each one Delay late
// (it forwards late). Other bare adversaries only publish.
func (s *sim) startRelayAdversary(ps *pubsub.PubSub, t *pubsub.Topic, i int) error {
	a := s.forgerSpec(i)
	if a == nil || (a.Kind != "drop" && a.Kind != "delay") {
		return nil
	}
	delay := a.Delay.D()
	v := func(ctx context.Context, _ peer.ID, _ *pubsub.Message) pubsub.ValidationResult {
		if a.Kind == "drop" {
			return pubsub.ValidationIgnore
		}
		select {
		case <-time.After(delay):
			return pubsub.ValidationAccept
		case <-ctx.Done():
			return pubsub.ValidationIgnore
		}
	}
	if err := ps.RegisterTopicValidator(t.String(), v); err != nil {
		return err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return err
	}
	go func() { // ends with the run's context, as the gate above
		defer sub.Cancel()
		for {
			if _, err := sub.Next(s.ctx); err != nil {
				return
			}
		}
	}()
	return nil
}

// joinFlood publishes the join of a fresh identity (new keys, drawn from a
// stream seeded by the scenario's seed and the adversary) on top of the
// create event, without proof of work: in a room that asks for work, the
// first honest hop rejects it; in one that does not, every node takes in
// one more member.
func (s *sim) joinFlood(i int) {
	t := s.forgers[i]
	if t == nil {
		return
	}
	n := s.col.seq()
	seed := seed32(s.sc.Seed ^ uint64(i)<<32 ^ uint64(n))
	keys := rand.NewChaCha8(seed)
	master, err := crdt.GenerateKey(keys)
	if err != nil {
		return
	}
	id, err := crdt.NewIdentity(master, keys)
	if err != nil {
		return
	}
	me := id.User.String()
	ev, err := crdt.Sign(id, crdt.Draft{Room: s.room, Type: rooms.TypeMember, StateKey: &me, Prev: []crdt.EventID{s.room}, Auth: []crdt.EventID{s.room},
		Depth: 1, TS: time.Now().UnixMilli(), Body: rooms.Encode(rooms.MemberBody{Membership: rooms.Join})})
	if err != nil {
		s.say("join flood: %v", err)
		return
	}
	s.col.floodJoin(ev.ID)
	t.Publish(s.ctx, ev.Encode())
}

// setJoinWork has the creator set the room's join proof of work when the
// scenario asks for it (room.join_work), after the members are in.
func (s *sim) setJoinWork() error {
	if s.sc.Room.JoinWork == 0 {
		return nil
	}
	w := s.sc.Room.JoinWork
	if _, err := s.reps[0].Engine.RoomLimits(s.ctx, api.RoomLimitsReq{Room: s.room.String(), JoinWork: &w}); err != nil {
		return fmt.Errorf("set join work: %w", err)
	}
	return nil
}

// junkCPU is the CPU time honest nodes' gossip validators spent on
// messages they did not accept (node.Replica.JunkCPU), per honest node
// online at the end, in milliseconds.
func (s *sim) junkCPU() *JunkCPU {
	var xs []float64
	var sum float64
	for i := range s.plan.honest {
		if s.reps[i] == nil || !s.online[i] {
			continue
		}
		v := float64(s.reps[i].JunkCPU()) / 1e6
		xs = append(xs, v)
		sum += v
	}
	if len(xs) == 0 {
		return nil
	}
	q := quantiles(xs)
	return &JunkCPU{MeanMS: sum / float64(len(xs)), P50MS: q.P50, MaxMS: q.Max,
		Scope: "thread CPU of gossip validations that rejected or ignored (stateless checks and the room-state guard), per honest node, whole run; the router's own RPC decoding is not counted"}
}

// JunkCPU is what honest nodes spent validating junk.
type JunkCPU struct {
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	MaxMS  float64 `json:"max_ms"`
	Scope  string  `json:"scope"`
}
