package p2p

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/mailbox"
)

// Topic names, derived from the room id so that they do not reveal it
// (docs/protocol.md 2.1).
func eventTopic(room crdt.RoomID) string { return roomTopic(room, "ev") }
func headsTopic(room crdt.RoomID) string { return roomTopic(room, "heads") }

// EventTopic is the name of a room's event topic.
func EventTopic(room crdt.RoomID) string { return eventTopic(room) }

// HeadsTopic is the name of a room's heads topic.
func HeadsTopic(room crdt.RoomID) string { return headsTopic(room) }

// EphemeralTopic is the name of a room's typing and presence topic.
func EphemeralTopic(room crdt.RoomID) string { return roomTopic(room, "eph") }

// maxPubSubMessage bounds a pubsub RPC: an event frame and the RPC around it.
const maxPubSubMessage = crdt.MaxKeyEventSize + 64<<10

// Gossip timing.
const (
	headsDebounce = 250 * time.Millisecond
	headsPeriod   = 30 * time.Second
	subBuffer     = 4096
)

// NewPubSub makes the gossipsub router with Parley's options: no pubsub
// signatures or authors (events carry their own), message IDs from content,
// and queues sized so that bursts are not silently dropped. Pubsub also
// runs over limited (relayed) connections, within a budget (limited.go).
func NewPubSub(ctx context.Context, h host.Host, extra ...pubsub.Option) (*pubsub.PubSub, error) {
	return NewPubSubScored(ctx, h, nil, extra...)
}

// NewPubSubScored is NewPubSub with app as the application-specific score
// (P5, peerscore.go; nil: 0), such as MemberScores.Score.
func NewPubSubScored(ctx context.Context, h host.Host, app func(peer.ID) float64, extra ...pubsub.Option) (*pubsub.PubSub, error) {
	opts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMaxMessageSize(maxPubSubMessage),
		pubsub.WithSeenMessagesTTL(10 * time.Minute),
		pubsub.WithValidateQueueSize(4096),
		pubsub.WithPeerOutboundQueueSize(1024),
		// Send our own events to every subscribed peer, not only to the
		// mesh: a mesh takes up to a heartbeat (1 s) to form after a
		// peer joins, and v0.19 drops a publish with an empty mesh.
		pubsub.WithFloodPublish(true),
		// Peer scoring, tuned for Parley's topics (peerscore.go).
		pubsub.WithPeerScore(peerScoreParams(app), PeerScoreThresholds()),
		pubsub.WithGossipSubParams(GossipSubParams()),
	}
	return pubsub.NewGossipSub(ctx, AllowLimited(h, limitedGossipBytes), append(opts, extra...)...)
}

// GossipSubParams are gossipsub's defaults but for opportunistic grafting,
// which runs every 2 heartbeats instead of 60. Mesh delivery scoring (P3)
// is off (peerscore.go), so opportunistic grafting is what replaces mesh
// peers that deliver nothing, such as Sybils that take mesh slots and
// drop or delay what they should forward: when the median score of the
// mesh falls below the threshold (PeerScoreThresholds), it grafts two
// peers scoring above the median, which honest peers earn by first
// deliveries (P2). Where no peer scores above the median (a quiet room,
// where every score is about 0) it grafts nobody, so a quiet mesh does
// not churn. At 60 heartbeats a mesh taken over at start stays so for a
// minute. In the sybil-flood scenario at 300 honest nodes and 1,200 Sybils
// the whole run's p99 went from 1.7 s (60) to 0.72 s (5) and 0.51 s (2);
// once the meshes settled, 140-160 ms (simulations/README.md). The first
// seconds, before P2 has anything to count, are covered by P5: members'
// devices score above the threshold from the start (peerscore.go).
//
// Simulations that vary one of these parameters start from them.
func GossipSubParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.OpportunisticGraftTicks = 2
	return p
}

// limitedGossipBytes is what pubsub may write on one limited connection:
// a quarter of the circuit budget of Parley's relays (RelayCircuitBytes),
// so that sync and media keep the rest, and about 400 messages of 1 KiB
// before a direct connection or a new circuit takes over.
const limitedGossipBytes = RelayCircuitBytes / 4

// messageID is the sha256 of the event envelope for event frames (so gossip
// de-duplication equals content identity) and of the data otherwise.
func messageID(m *pb.Message) string {
	if env, ok := FrameEnvelope(m.Data); ok {
		sum := sha256.Sum256(env)
		return string(sum[:])
	}
	sum := sha256.Sum256(m.Data)
	return string(sum[:])
}

// FrameEnvelope finds the envelope bytes in an event frame without decoding it.
func FrameEnvelope(b []byte) ([]byte, bool) {
	if len(b) < 3 || b[0] != 0x82 {
		return nil, false
	}
	var n, off int
	switch h := b[1]; {
	case h >= 0x40 && h <= 0x57:
		n, off = int(h-0x40), 2
	case h == 0x58:
		n, off = int(b[2]), 3
	case h == 0x59 && len(b) >= 4:
		n, off = int(b[2])<<8|int(b[3]), 4
	default:
		return nil, false
	}
	if off+n > len(b) {
		return nil, false
	}
	return b[off : off+n], true
}

// Gossip runs the pubsub side of every room: an event topic and a heads
// topic per room. Its state (the topics) is owned by the Serve goroutine.
type Gossip struct {
	ps     *pubsub.PubSub
	self   peer.ID
	engine GossipEngine
	sync   *Syncer
	gate   *RoomGate
	log    *slog.Logger
	rng    *rand.Rand

	gossiped gossiped // events gossiped lately, received or published (HeadsChanged)

	track   *mailbox.Mailbox[crdt.RoomID]
	publish *mailbox.Mailbox[*crdt.Event]
	heads   *mailbox.Mailbox[crdt.RoomID]

	Unguarded         bool         // stateless checks only (the node's ReplicaOptions.Unguarded); set before Serve
	Tracer            Tracer       // told of each event published (PublishTracer), if it listens; set before Serve
	rejected, ignored atomic.Int64 // events refused against room state (the engine's judge: node/guard.go)
	junkCPU           atomic.Int64 // thread CPU ns of validations that did not accept (junkcpu.go)

	wg sync.WaitGroup
}

// NewGossip wires gossip to the engine and the syncer.
func NewGossip(ps *pubsub.PubSub, self peer.ID, engine GossipEngine, syncer *Syncer, gate *RoomGate, log *slog.Logger, seed uint64) *Gossip {
	return &Gossip{
		ps: ps, self: self, engine: engine, sync: syncer, gate: gate, log: log,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		track:    mailbox.New[crdt.RoomID](),
		publish:  mailbox.New[*crdt.Event](),
		heads:    mailbox.New[crdt.RoomID](),
		gossiped: gossiped{set: map[crdt.EventID]struct{}{}},
	}
}

// gossipedSize is how many of the events last received by gossip are
// remembered (HeadsChanged): far more than a room's heads.
const gossipedSize = 1024

// gossiped remembers the last gossipedSize events gossiped (received or published).
// It grows as they arrive (a simulation holds thousands of nodes that see
// a few events each: 70 KB per node preallocated was 0.35 GB at 5,000).
type gossiped struct {
	mu   sync.Mutex
	set  map[crdt.EventID]struct{} // guarded by mu
	ring []crdt.EventID            // guarded by mu; the set in arrival order, at most gossipedSize
	next int                       // guarded by mu; once ring is full, its oldest slot
}

func (s *gossiped) add(evs []*crdt.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		if _, ok := s.set[ev.ID]; ok {
			continue
		}
		if len(s.ring) < gossipedSize {
			s.ring = append(s.ring, ev.ID)
			s.set[ev.ID] = struct{}{}
			continue
		}
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = ev.ID
		s.set[ev.ID] = struct{}{}
		s.next = (s.next + 1) % len(s.ring)
	}
}

// forget drops events that the engine did not take after all.
func (s *gossiped) forget(evs []*crdt.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		delete(s.set, ev.ID) // its ring slot is reused in turn
	}
}

// all reports whether every id arrived by gossip lately.
func (s *gossiped) all(ids []crdt.EventID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.set[id]; !ok {
			return false
		}
	}
	return len(ids) > 0
}

// JunkCPU is the thread CPU time the validators spent on messages they
// did not accept (junkcpu.go; 0 where the platform does not measure it).
func (g *Gossip) JunkCPU() time.Duration { return time.Duration(g.junkCPU.Load()) }

// Refused counts the events the validators refused against room state:
// rejected and ignored.
func (g *Gossip) Refused() (rejected, ignored int64) { return g.rejected.Load(), g.ignored.Load() }

// EventPeers lists the peers of a room's event topic.
func (g *Gossip) EventPeers(room crdt.RoomID) []peer.ID { return g.ps.ListPeers(eventTopic(room)) }

// Track asks gossip to join a room's topics. It never blocks.
func (g *Gossip) Track(room crdt.RoomID) { g.track.Put(room) }

// Publish queues a locally authored, already committed event. It never
// blocks. The event counts as gossiped from now on (HeadsChanged): its
// flood tells every holder of it what its heads announcement would, and
// the post-publish sync session offers it to every room peer
// (docs/protocol.md 2). Serve takes that back if it cannot publish it.
func (g *Gossip) Publish(ev *crdt.Event) {
	g.gossiped.add([]*crdt.Event{ev})
	g.publish.Put(ev)
}

// HeadsChanged schedules a (debounced) announcement of a room's new heads,
// unless every one of them was gossiped lately, arrived or published by
// this node: such heads are not announced on change nor periodically
// (announce), so that in the clean case no heads flood follows a message
// (it was a second flood of the event's reach, every message). A node
// that missed the event gets it by gossipsub's IHAVE/IWANT, from the next
// message's parents, from the author's post-publish sync session or at
// anti-entropy. Heads this node pulled by sync are announced, so that its
// peers learn of them from it (docs/protocol.md 2). It never blocks.
func (g *Gossip) HeadsChanged(room crdt.RoomID, heads []crdt.EventID) {
	if g.gossiped.all(heads) {
		return
	}
	g.heads.Put(room)
}

type roomTopics struct {
	ev, heads  *pubsub.Topic
	dirty      bool
	push       bool // this node authored events since the last debounce
	nextPeriod time.Time
}

// Serve runs until ctx is done.
func (g *Gossip) Serve(ctx context.Context) error {
	topics := map[crdt.RoomID]*roomTopics{}
	defer func() {
		g.wg.Wait()
		for room, t := range topics {
			g.ps.UnregisterTopicValidator(eventTopic(room))
			g.ps.UnregisterTopicValidator(headsTopic(room))
			t.ev.Close()
			t.heads.Close()
		}
	}()
	debounce := time.NewTimer(time.Hour)
	defer debounce.Stop()
	// period wakes Serve when the earliest room's periodic announcement
	// and anti-entropy round is due (every room's nextPeriod), not every
	// second: a quiet node does nothing between rounds.
	period := time.NewTimer(time.Hour)
	defer period.Stop()
	var due time.Time // when period fires; zero: stopped
	schedule := func() {
		var next time.Time
		for _, t := range topics {
			if next.IsZero() || t.nextPeriod.Before(next) {
				next = t.nextPeriod
			}
		}
		if !next.IsZero() && !next.Equal(due) {
			due = next
			period.Reset(time.Until(next))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.track.Signal:
			for _, room := range g.track.Take() {
				if topics[room] != nil {
					continue
				}
				t, err := g.join(ctx, room)
				if err != nil {
					g.log.Warn("join room topics", "room", room, "err", err)
					continue
				}
				t.nextPeriod = g.nextRound(time.Now())
				topics[room] = t
			}
			schedule()
		case <-g.publish.Signal:
			for _, ev := range g.publish.Take() {
				t := topics[ev.Room]
				if t == nil {
					g.gossiped.forget([]*crdt.Event{ev}) // not gossiped: announced as new heads are
					continue
				}
				t.push = true
				debounce.Reset(headsDebounce)
				if err := t.ev.Publish(ctx, ev.Encode()); err != nil && ctx.Err() == nil {
					g.log.Debug("publish", "room", ev.Room, "err", err)
					g.gossiped.forget([]*crdt.Event{ev})
					t.dirty = true
				} else if pt, ok := g.Tracer.(PublishTracer); ok && err == nil {
					pt.Published(ev)
				}
			}
		case <-g.heads.Signal:
			for _, room := range g.heads.Take() {
				if t := topics[room]; t != nil {
					t.dirty = true
				}
			}
			debounce.Reset(headsDebounce)
		case <-debounce.C:
			for room, t := range topics {
				if t.dirty {
					t.dirty = false
					g.announce(ctx, room, t)
				}
				if t.push {
					// Offer heads that include this node's own new events
					// to every room peer directly: a sync session costs one
					// round trip when the peer is up to date, and it does
					// not depend on the gossip mesh (docs/protocol.md 2).
					t.push = false
					for _, p := range g.pushPeers(room, t) {
						g.sync.Trigger(room, p)
					}
				}
			}
		case now := <-period.C:
			due = time.Time{}
			for room, t := range topics {
				if !now.Before(t.nextPeriod) {
					t.nextPeriod = g.nextRound(now)
					g.announce(ctx, room, t)
					// The peers that proved the room: the topic's peers, and
					// any whose subscription pubsub did not take back.
					g.sync.AntiEntropy(room, g.gate.ProvedPeers(RefOf(room)))
				}
			}
			schedule()
		}
	}
}

// pushPeers are the peers offered this node's new heads: the event
// topic's peers and every connected peer that proved the room. Pubsub's
// view of a peer's subscriptions can lag or be lost while the room gate's
// is current: after a restart over a connection the peer kept, the peer's
// pubsub went on writing to the stream the stopped node had read, so the
// restarted node never saw the peer's subscriptions, or found that stream
// dead and dropped the restarted node's subscriptions, which it had seen
// already; either way a publish reached no peer and the message waited
// for anti-entropy (docs/protocol.md 2).
func (g *Gossip) pushPeers(room crdt.RoomID, t *roomTopics) []peer.ID {
	peers := t.ev.ListPeers()
	for _, p := range g.gate.ProvedPeers(RefOf(room)) {
		if !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	return peers
}

// nextRound is when a room's next periodic round is due: headsPeriod ±
// 30 % from now, rounded up to a whole second, as when a 1 s tick looked
// for due rounds. In a simulation's virtual time every distinct instant
// at which a timer fires is a step of the whole bubble; rounds on whole
// seconds share their steps (unrounded, a 2,000-node simulation took 305
// and 341 CPU-s, rounded 265 and 283: simulations/README.md).
func (g *Gossip) nextRound(now time.Time) time.Time {
	next := now.Add(g.jitter(headsPeriod))
	if r := next.Truncate(time.Second); r.Before(next) {
		next = r.Add(time.Second)
	}
	return next
}

// jitter returns d ± 30 %.
func (g *Gossip) jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.7 + 0.6*g.rng.Float64()))
}

func (g *Gossip) join(ctx context.Context, room crdt.RoomID) (*roomTopics, error) {
	if err := g.ps.RegisterTopicValidator(eventTopic(room), g.validator(room), pubsub.WithValidatorTimeout(2*time.Second)); err != nil {
		return nil, err
	}
	ev, err := g.ps.Join(eventTopic(room))
	if err != nil {
		return nil, err
	}
	if err := ev.SetScoreParams(eventTopicScoreParams()); err != nil {
		ev.Close()
		return nil, err
	}
	if err := g.ps.RegisterTopicValidator(headsTopic(room), g.headsValidator(room), pubsub.WithValidatorTimeout(2*time.Second)); err != nil {
		ev.Close()
		return nil, err
	}
	heads, err := g.ps.Join(headsTopic(room))
	if err != nil {
		ev.Close()
		return nil, err
	}
	evSub, err := ev.Subscribe(pubsub.WithBufferSize(subBuffer))
	if err != nil {
		return nil, err
	}
	headsSub, err := heads.Subscribe(pubsub.WithBufferSize(256))
	if err != nil {
		return nil, err
	}
	g.wg.Add(2)
	go func() { defer g.wg.Done(); defer evSub.Cancel(); g.readEvents(ctx, evSub) }()
	go func() { defer g.wg.Done(); defer headsSub.Cancel(); g.readHeads(ctx, headsSub) }()
	return &roomTopics{ev: ev, heads: heads}, nil
}

// validator checks an event statelessly (R1, the room), then against the
// room state this node holds (the engine's GossipJudge, node/guard.go):
// Reject what is provably invalid or refused, Ignore what it cannot judge
// yet, Accept the rest.
//
// A message from this node itself is accepted at once: pubsub hands the
// validator the messages Serve publishes (from is then the local peer,
// which no remote peer can be, connections being authenticated), and Serve
// publishes only events given to Publish, which this node authored and
// committed. Judging them again read every parent from the store
// (docs/design.md, "Own gossip").
func (g *Gossip) validator(room crdt.RoomID) pubsub.ValidatorEx {
	judge := g.engine.GossipJudge()
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) (res pubsub.ValidationResult) {
		if from == g.self {
			return pubsub.ValidationAccept
		}
		defer g.junkTime(threadCPU(), &res)
		ev, err := crdt.Decode(m.Data)
		if err != nil || ev.Room != room {
			g.engine.InvalidInFlight(m.Data, err)
			return pubsub.ValidationReject
		}
		if !g.Unguarded {
			switch v := judge(ev); v.Result {
			case pubsub.ValidationReject:
				g.rejected.Add(1)
				g.log.Debug("gossip rejected", "room", room, "event", ev.ID, "from", from, "why", v.Reason)
				return v.Result
			case pubsub.ValidationIgnore:
				g.ignored.Add(1)
				g.log.Debug("gossip ignored", "room", room, "event", ev.ID, "from", from, "why", v.Reason)
				return v.Result
			}
		}
		m.ValidatorData = ev
		return pubsub.ValidationAccept
	}
}

// readEvents drains a subscription into the engine in batches.
func (g *Gossip) readEvents(ctx context.Context, sub *pubsub.Subscription) {
	type item struct {
		ev   *crdt.Event
		from peer.ID
	}
	// The subscription itself buffers subBuffer messages; this channel
	// only lets the loop below take what is waiting without blocking.
	ch := make(chan item, 256)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(ch)
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if m.ReceivedFrom == g.self {
				continue
			}
			ev, ok := m.ValidatorData.(*crdt.Event)
			if !ok {
				continue
			}
			select {
			case ch <- item{ev, m.ReceivedFrom}:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	// A batch holds consecutive events from one peer, so that each is
	// charged to the peer that sent it (orphan budgets are per peer).
	var next *item
	for {
		var first item
		if next != nil {
			first, next = *next, nil
		} else if it, ok := <-ch; ok {
			first = it
		} else {
			return
		}
		batch := []*crdt.Event{first.ev}
	drain:
		for len(batch) < 1000 {
			select {
			case it, ok := <-ch:
				if !ok {
					break drain
				}
				if it.from != first.from {
					next = &it
					break drain
				}
				batch = append(batch, it.ev)
			default:
				break drain
			}
		}
		g.gossiped.add(batch)
		if err := g.engine.Ingest(ctx, first.from, batch); err != nil {
			g.gossiped.forget(batch)
			stop, quiet := g.engine.IngestFailure(err)
			if ctx.Err() != nil || stop {
				return
			}
			// The engine took nothing of the batch (a refused commit is
			// reverted); keep reading: a later event or a sync brings
			// these again.
			if quiet {
				g.log.Debug("ingest gossip", "err", err) // the disk guard warned once
			} else {
				g.log.Error("ingest gossip", "err", err)
			}
		}
	}
}

// headsMsg is a heads announcement. It has no sender and no time, so equal
// announcements from different nodes are one pubsub message. Room is the
// room's reference (RoomRef), not its id.
type headsMsg struct {
	Room  []byte   `cbor:"room"`
	Heads [][]byte `cbor:"heads"`
}

const maxAnnouncedHeads = 32

// announce publishes the room's heads, unless every one of them was
// gossiped lately (HeadsChanged): on change and periodically alike.
func (g *Gossip) announce(ctx context.Context, room crdt.RoomID, t *roomTopics) {
	heads, ok, err := g.engine.Heads(ctx, room)
	if err != nil || !ok || len(heads) == 0 || g.gossiped.all(heads) {
		return
	}
	if len(heads) > maxAnnouncedHeads {
		heads = heads[:maxAnnouncedHeads]
	}
	ref := RefOf(room)
	msg := headsMsg{Room: ref[:]}
	for _, h := range heads {
		msg.Heads = append(msg.Heads, []byte(h))
	}
	b, err := crdt.Marshal(msg)
	if err != nil {
		return
	}
	if err := t.heads.Publish(ctx, b); err != nil && ctx.Err() == nil {
		g.log.Debug("announce heads", "room", room, "err", err)
	}
}

// headsValidator passes a heads announcement on only when this node holds
// every head it names (docs/protocol.md 2). Identical announcements from
// different nodes are one pubsub message: a node that forwarded heads it
// lacked would send the next hop to ask it too early, and its own
// announcement of the same heads, once it held them, would be a message the
// next hop had seen already, so the next hop would not hear of them until
// anti-entropy (issue 16: a 30 s stall on the second hop). An announcement
// naming heads this node lacks is ignored, which leaves it not delivered,
// so that this node's own announcement of it validates again and goes out,
// and starts a sync with the sender when the sender proved the room.
func (g *Gossip) headsValidator(room crdt.RoomID) pubsub.ValidatorEx {
	ref := RefOf(room)
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if from == g.self {
			return pubsub.ValidationAccept // this node's own heads
		}
		var msg headsMsg
		if crdt.UnmarshalCanonical(m.Data, &msg) != nil || string(msg.Room) != string(ref[:]) || len(msg.Heads) > maxAnnouncedHeads {
			return pubsub.ValidationReject
		}
		ids := make([]crdt.EventID, 0, len(msg.Heads))
		for _, h := range msg.Heads {
			id, err := crdt.IDFromBytes(h)
			if err != nil {
				return pubsub.ValidationReject
			}
			ids = append(ids, id)
		}
		known, err := g.engine.Known(ctx, room, ids)
		if err != nil {
			return pubsub.ValidationIgnore
		}
		var unknown []crdt.EventID
		for i, k := range known {
			if !k {
				unknown = append(unknown, ids[i])
			}
		}
		if len(unknown) == 0 {
			return pubsub.ValidationAccept
		}
		if g.gate.Proved(from, ref) { // an unproven peer would only be asked in vain
			g.sync.HeadsUnknown(room, unknown, from)
		}
		return pubsub.ValidationIgnore
	}
}

// readHeads drains a heads subscription: what it delivers is held already
// (headsValidator acted on the rest).
func (g *Gossip) readHeads(ctx context.Context, sub *pubsub.Subscription) {
	for {
		if _, err := sub.Next(ctx); err != nil {
			return
		}
	}
}
