package simulations

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// collector gathers what the node tracers report. Times are virtual under
// the bubble.
type collector struct {
	plan  *plan
	users map[crdt.UserID]int
	cpu   *cpuModel // nil: off

	mu        sync.Mutex
	begin     time.Time // setup start
	t0        time.Time // traffic start; zero before
	measuring bool
	msgs      map[crdt.EventID]*msgRec
	order     []*msgRec
	forgedIDs map[crdt.EventID]bool
	forgedAcc int
	orphanIDs map[crdt.EventID]bool
	orphanAcc int
	joinIDs   map[crdt.EventID]bool // join-flood joins published
	joinAcc   int                   // and accepted by honest nodes
	forkIDs   map[crdt.EventID]bool // both sides of every fork
	forkPairs int
	bs        bannedSpamState // the banned-spam adversary (bannedspam.go)
	// filled by the end-of-run audit
	pendingMax, forkVisibleMax int
	nseq                       int
	delivered                  int // honest pairs delivered (honest messages to honest nodes)
	expected                   int // honest pairs expected
	end                        time.Time
	onlineLog                  []onlineChange
	nodes                      []nodeStats
	buckets                    []bucket // per second since begin
	bucketBase                 time.Time
}

type onlineChange struct {
	at time.Duration
	n  int
	on bool
}

type bucket struct{ sent, recv atomic.Int64 }

type msgRec struct {
	id     crdt.EventID
	author int
	pub    time.Duration // since t0
	spam   bool
	at     []time.Duration // per node; -1 = not yet
	got    int             // honest nodes other than the author that have it
}

type nodeStats struct {
	sent, recv, dups, gossipDelivered, rejected, dropped, syncRounds atomic.Int64
}

// floods is each honest message's flood, since t0: from its publication
// (or an earlier delivery: the author's own) to its last delivery, the
// span a netns run splits its daemons' CPU by (floodCPU); mu must be held.
func (c *collector) floods() [][2]time.Duration {
	var out [][2]time.Duration
	for _, m := range c.order {
		if m.spam {
			continue
		}
		lo, hi := m.pub, time.Duration(-1)
		for _, t := range m.at {
			if t >= 0 {
				lo, hi = min(lo, t), max(hi, t)
			}
		}
		if hi >= 0 {
			out = append(out, [2]time.Duration{lo, hi})
		}
	}
	return out
}

func newCollector(p *plan) *collector {
	return &collector{
		plan: p, users: map[crdt.UserID]int{},
		msgs: map[crdt.EventID]*msgRec{}, forgedIDs: map[crdt.EventID]bool{}, orphanIDs: map[crdt.EventID]bool{}, joinIDs: map[crdt.EventID]bool{}, forkIDs: map[crdt.EventID]bool{},
		nodes:   make([]nodeStats, p.total),
		buckets: make([]bucket, 4096),
	}
}

func (c *collector) startMeasuring(t0 time.Time) {
	c.mu.Lock()
	c.t0, c.measuring = t0, true
	c.mu.Unlock()
	c.cpu.startMeasuring(t0)
}

func (c *collector) stopPublishing() {}

func (c *collector) finish(t time.Time) {
	c.mu.Lock()
	c.end = t
	c.mu.Unlock()
}

func (c *collector) seq() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nseq++
	return c.nseq
}

func (c *collector) forged(id crdt.EventID) {
	c.mu.Lock()
	c.forgedIDs[id] = true
	c.mu.Unlock()
}

func (c *collector) orphaned(id crdt.EventID) {
	c.mu.Lock()
	c.orphanIDs[id] = true
	c.mu.Unlock()
}

func (c *collector) floodJoin(id crdt.EventID) {
	c.mu.Lock()
	c.joinIDs[id] = true
	c.mu.Unlock()
}

func (c *collector) forks(a, b crdt.EventID) {
	c.mu.Lock()
	c.forkIDs[a], c.forkIDs[b] = true, true
	c.forkPairs++
	c.mu.Unlock()
}

func (c *collector) setOnline(n int, on bool) {
	c.mu.Lock()
	c.onlineLog = append(c.onlineLog, onlineChange{time.Since(c.t0), n, on})
	c.mu.Unlock()
}

func (c *collector) counts() (pub, exp, del int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.order {
		if !m.spam {
			pub++
		}
	}
	return pub, c.expected, c.delivered
}

func (c *collector) complete() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered == c.expected
}

// accepted is called on each node's engine goroutine for every accepted event.
func (c *collector) accepted(i int, ev *crdt.Event, from peer.ID) {
	if ev.Type != rooms.TypeMessage && ev.Type != rooms.TypeMember {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.joinIDs[ev.ID] {
		if i < c.plan.honest {
			c.joinAcc++
		}
		return
	}
	if c.acceptedBanned(i, ev) || ev.Type != rooms.TypeMessage {
		return
	}
	if c.forgedIDs[ev.ID] {
		c.forgedAcc++
		return
	}
	if c.orphanIDs[ev.ID] {
		c.orphanAcc++
		return
	}
	honest := c.plan.honest
	m := c.msgs[ev.ID]
	if m == nil {
		if from != "" || !c.measuring {
			return
		}
		m = &msgRec{id: ev.ID, author: i, pub: time.Since(c.t0), spam: i >= honest, at: make([]time.Duration, c.plan.total)}
		for k := range m.at {
			m.at[k] = -1
		}
		m.at[i] = m.pub
		c.msgs[ev.ID] = m
		c.order = append(c.order, m)
		if !m.spam {
			c.expected += honest - 1
		}
		return
	}
	if m.at[i] >= 0 {
		return
	}
	m.at[i] = time.Since(c.t0)
	if i < honest && i != m.author {
		m.got++
		if !m.spam {
			c.delivered++
		}
	}
}

func (c *collector) bucket(now time.Time) *bucket {
	k := int(now.Sub(c.begin) / time.Second)
	if k < 0 || k >= len(c.buckets) {
		return nil
	}
	return &c.buckets[k]
}

// nodeTracer is one replica's p2p.Tracer (with the EventTracer and
// PubSubTracer extensions).
type nodeTracer struct {
	i   int
	col *collector
}

var (
	_ p2p.Tracer       = (*nodeTracer)(nil)
	_ p2p.EventTracer  = (*nodeTracer)(nil)
	_ p2p.PubSubTracer = (*nodeTracer)(nil)
)

func (t *nodeTracer) EventsAccepted(crdt.RoomID, int) {}
func (t *nodeTracer) SyncRound(crdt.RoomID, peer.ID) {
	t.col.nodes[t.i].syncRounds.Add(1)
}

// EventAccepted is called on the engine goroutine. With the CPU model on,
// an event from a peer counts as accepted once its apply cost is paid (the
// engine is held meanwhile, as a real one is busy); the node's own event
// is timed first (it was already published) and then paid for.
func (t *nodeTracer) EventAccepted(_ crdt.RoomID, ev *crdt.Event, from peer.ID) {
	if m := t.col.cpu; m != nil {
		if from == "" {
			t.col.accepted(t.i, ev, from)
			m.charge(t.i, m.cfg.Apply.D(), false)
			return
		}
		if len(m.cfg.ApplyMS) > 0 {
			d := drawHop(m.cfg.ApplyMS, m.rngs[t.i].float())
			go func() {
				time.Sleep(d)
				t.col.accepted(t.i, ev, from)
			}()
			return
		}
		m.charge(t.i, m.cfg.Apply.D(), true)
	}
	t.col.accepted(t.i, ev, from)
}
func (t *nodeTracer) PubSubRawTracer() pubsub.RawTracer { return (*rawTracer)(t) }

// rawTracer counts gossipsub RPC bytes, duplicates and rejections.
type rawTracer nodeTracer

// isEvTopic tells a room's event topic (p2p.EventTopic) from the others.
func isEvTopic(m *pubsub.Message) bool { return strings.HasSuffix(m.GetTopic(), "/ev/2") }

func (r *rawTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (r *rawTracer) RemovePeer(peer.ID)                                   {}
func (r *rawTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (r *rawTracer) OnClosedOutboundStream(peer.ID)                       {}
func (r *rawTracer) Join(string)                                          {}
func (r *rawTracer) Leave(string)                                         {}
func (r *rawTracer) Graft(peer.ID, string)                                {}
func (r *rawTracer) Prune(peer.ID, string)                                {}
func (r *rawTracer) ValidateMessage(*pubsub.Message)                      {}
func (r *rawTracer) ThrottlePeer(peer.ID)                                 {}
func (r *rawTracer) UndeliverableMessage(*pubsub.Message)                 {}
func (r *rawTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (r *rawTracer) DeliverMessage(m *pubsub.Message) {
	if isEvTopic(m) {
		r.col.nodes[r.i].gossipDelivered.Add(1)
	}
}
func (r *rawTracer) RejectMessage(m *pubsub.Message, reason string) {
	if isEvTopic(m) {
		r.col.nodes[r.i].rejected.Add(1)
	}
}
func (r *rawTracer) DuplicateMessage(m *pubsub.Message) {
	if isEvTopic(m) {
		r.col.nodes[r.i].dups.Add(1)
	}
}
func (r *rawTracer) RecvRPC(rpc *pubsub.RPC) {
	r.col.recvBanned(r.i, rpc, false)
	n := int64(proto.Size(&rpc.RPC))
	r.col.cpu.background(r.i, int(n))
	r.col.nodes[r.i].recv.Add(n)
	if b := r.col.bucket(time.Now()); b != nil {
		b.recv.Add(n)
	}
}
func (r *rawTracer) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	r.col.recvBanned(r.i, rpc, true)
	n := int64(proto.Size(&rpc.RPC))
	r.col.cpu.background(r.i, int(n))
	r.col.nodes[r.i].sent.Add(n)
	if b := r.col.bucket(time.Now()); b != nil {
		b.sent.Add(n)
	}
}
func (r *rawTracer) DropRPC(*pubsub.RPC, peer.ID) { r.col.nodes[r.i].dropped.Add(1) }
