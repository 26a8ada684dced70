package simulations

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// The banned-spam adversary (issue 15): a member replica whose node does
// not check its own events against room state (node.ReplicaOptions.
// Unguarded). The creator bans it at the adversary's Start; from then on it
// publishes validly signed messages that continue its device chain on top
// of the heads it holds, at its Rate. Honest nodes must neither store nor
// forward them once they hold the ban.

// BannedSpamReport is what the banned member's flood cost honest nodes.
type BannedSpamReport struct {
	Published int `json:"published"`
	// Acceptances by honest nodes of the spammer's events, before and
	// after the node itself had accepted the ban. After: by pull sync
	// only, from honest nodes that took the event in before they saw the
	// ban (an honest event may have it as a parent, so sync must serve it).
	AcceptedBeforeBanSeen int `json:"accepted_before_ban_seen"`
	AcceptedAfterBanSeen  int `json:"accepted_after_ban_seen"`
	// Bytes of the spammer's events in gossipsub RPCs received by honest
	// nodes, before and after the node had accepted the ban; the mean per
	// honest node after.
	RecvBytesBeforeBanSeen int64   `json:"recv_bytes_before_ban_seen"`
	RecvBytesAfterBanSeen  int64   `json:"recv_bytes_after_ban_seen"`
	RecvBytesAfterPerNode  float64 `json:"recv_bytes_after_ban_seen_per_node"`
	// Bytes of the spammer's events that honest nodes sent (forwarded) in
	// gossipsub RPCs, before and after they had accepted the ban.
	SentBytesBeforeBanSeen int64 `json:"sent_bytes_before_ban_seen"`
	SentBytesAfterBanSeen  int64 `json:"sent_bytes_after_ban_seen"`
	// Events of the room rejected by honest nodes' gossip validators (all
	// reasons; the spammer's are most of them here).
	RejectedGossip int64 `json:"rejected_by_gossip_validation"`
}

// bannedSpamState is the collector's bookkeeping; guarded by collector.mu.
type bannedSpamState struct {
	ids        map[crdt.EventID]bool
	frames     map[[32]byte]bool // sha256 of the spam events' transport frames
	banIDs     map[crdt.EventID]bool
	banSeen    map[int]time.Time // honest node -> when it accepted a ban
	accBefore  int
	accAfter   int
	bytesAfter int64
	bytesBefor int64
	sentAfter  int64
	sentBefore int64
}

func (b *bannedSpamState) init() {
	if b.ids == nil {
		b.ids, b.frames, b.banIDs, b.banSeen = map[crdt.EventID]bool{}, map[[32]byte]bool{}, map[crdt.EventID]bool{}, map[int]time.Time{}
	}
}

// banned records a ban event authored in the run.
func (c *collector) banned(id crdt.EventID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bs.init()
	c.bs.banIDs[id] = true
}

// bannedSpam records a spam event of a banned member.
func (c *collector) bannedSpam(ev *crdt.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bs.init()
	c.bs.ids[ev.ID] = true
	c.bs.frames[sha256.Sum256(ev.Encode())] = true
}

// acceptedBanned notes node i's acceptance of a ban or a banned member's
// event; it reports whether ev was one. Called with c.mu held.
func (c *collector) acceptedBanned(i int, ev *crdt.Event) bool {
	if c.bs.ids == nil || i >= c.plan.honest {
		return false
	}
	if c.bs.banIDs[ev.ID] {
		if _, ok := c.bs.banSeen[i]; !ok {
			c.bs.banSeen[i] = time.Now()
		}
		return true
	}
	if !c.bs.ids[ev.ID] {
		return false
	}
	if _, ok := c.bs.banSeen[i]; ok {
		c.bs.accAfter++
	} else {
		c.bs.accBefore++
	}
	return true
}

// recvBanned counts the bytes of banned spam in an RPC node i received (or
// sent, when sent is set).
func (c *collector) recvBanned(i int, rpc *pubsub.RPC, sent bool) {
	if i >= c.plan.honest {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bs.frames) == 0 {
		return
	}
	for _, m := range rpc.GetPublish() {
		if !strings.HasSuffix(m.GetTopic(), "/ev/2") || !c.bs.frames[sha256.Sum256(m.GetData())] {
			continue
		}
		_, seen := c.bs.banSeen[i]
		n := int64(len(m.GetData()))
		switch {
		case sent && seen:
			c.bs.sentAfter += n
		case sent:
			c.bs.sentBefore += n
		case seen:
			c.bs.bytesAfter += n
		default:
			c.bs.bytesBefor += n
		}
	}
}

func (c *collector) bannedSpamReport() *BannedSpamReport {
	if len(c.bs.ids) == 0 {
		return nil
	}
	r := &BannedSpamReport{Published: len(c.bs.ids), AcceptedBeforeBanSeen: c.bs.accBefore, AcceptedAfterBanSeen: c.bs.accAfter,
		RecvBytesBeforeBanSeen: c.bs.bytesBefor, RecvBytesAfterBanSeen: c.bs.bytesAfter,
		RecvBytesAfterPerNode:  float64(c.bs.bytesAfter) / float64(c.plan.honest),
		SentBytesBeforeBanSeen: c.bs.sentBefore, SentBytesAfterBanSeen: c.bs.sentAfter}
	for n := range c.plan.honest {
		r.RejectedGossip += c.nodes[n].rejected.Load()
	}
	return r
}

// bannedSpam has adversary replica i publish one message that continues
// its device chain on top of the heads it holds.
func (s *sim) bannedSpam(i int) {
	if !s.online[i] {
		return
	}
	last := s.spamLast[i]
	if last == nil {
		dev := s.idents[i].Device.Public()
		s.stores[i].Scan(s.room, 0, func(st crdt.Stored) bool {
			if st.Event.Device == dev && (last == nil || st.Event.Seq > last.Seq) {
				last = st.Event
			}
			return true
		})
		if last == nil {
			return
		}
	}
	heads, _, err := s.reps[i].Engine.Heads(s.ctx, s.room)
	if err != nil {
		return
	}
	prev := []crdt.EventID{last.ID}
	depth, ts := last.Depth, last.TS
	for _, h := range heads {
		if h == last.ID {
			continue
		}
		if st, err := s.stores[i].Get(h); err == nil {
			prev = append(prev, h)
			depth, ts = max(depth, st.Event.Depth), max(ts, st.Event.TS)
		}
	}
	slices.Sort(prev)
	n := s.col.seq()
	text := fmt.Sprintf("banned spam %d from %d ", n, i)
	if k := s.sc.Room.Size - len(text); k > 0 {
		text += strings.Repeat("x", k)
	}
	ev, err := crdt.Sign(s.idents[i], crdt.Draft{Room: s.room, Type: rooms.TypeMessage, Seq: last.Seq + 1, Self: last.ID, Prev: prev,
		Auth: []crdt.EventID{s.room}, Depth: depth + 1, TS: max(ts, time.Now().UnixMilli()), Body: rooms.Encode(rooms.MessageBody{Text: text})})
	if err != nil {
		s.say("banned spam: %v", err)
		return
	}
	s.spamLast[i] = ev
	s.col.bannedSpam(ev)
	s.reps[i].Publish(ev)
}
