package p2p

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// Repair-peer selection (docs/protocol.md 2). A message that reveals a gap
// (a heads announcement naming an unknown head, an event whose parents are
// missing) names only the peer that forwarded it, and that peer may be a
// plain gossipsub relay that does not speak the sync protocol: gossipsub
// forwards a message once to the mesh of that moment, so a relay in the
// middle loses what was published before a node grafted into its mesh, and
// a repair aimed at the relay fails for good. A repair therefore goes to
// peers that serve sync for the room, tried in turn, and is retried with
// back-off while the gap stays.

// Repair limits.
const (
	maxRepairPeers    = 8           // sessions per repair attempt
	maxRepairDials    = 3           // of which with peers not connected (each dial may take seconds)
	maxRoomServers    = 16          // remembered servers per room
	maxRepairWant     = 256         // wanted ids remembered per room
	repairBackoff     = time.Second // after the first failed attempt; doubled per attempt
	maxRepairAttempts = 6           // then periodic anti-entropy (every 30 s) takes over
)

// repairs is the Syncer's repair bookkeeping; mu guards all of it.
type repairs struct {
	mu         sync.Mutex
	topicPeers func(crdt.RoomID) []peer.ID // subscribers of the room's event topic
	rooms      map[crdt.RoomID]*repairState
	servers    map[crdt.RoomID][]peer.ID // peers that answered a session for the room, most recent last
	kick       chan struct{}             // capacity 1: a due time was set (serveRepairs)
}

type repairState struct {
	want    map[crdt.EventID]bool // ids the node learnt of and lacks
	via     peer.ID               // the peer the last message came from
	attempt int
	due     time.Time // when the next attempt is due; zero: queued or running
	running bool
	again   bool // asked for again while running
}

func newRepairs() *repairs {
	return &repairs{rooms: map[crdt.RoomID]*repairState{}, servers: map[crdt.RoomID][]peer.ID{}, kick: make(chan struct{}, 1)}
}

// SetTopicPeers tells the syncer how to list a room's gossip peers (those
// subscribed to its event topic); set it before Serve.
func (s *Syncer) SetTopicPeers(fn func(crdt.RoomID) []peer.ID) {
	s.rp.mu.Lock()
	s.rp.topicPeers = fn
	s.rp.mu.Unlock()
}

// notSync reports whether p is known not to serve the sync protocol (its
// protocols are known, from identify, and do not include it). A peer whose
// protocols are not known yet may serve it.
func (s *Syncer) notSync(p peer.ID) bool {
	protos, err := s.host.Peerstore().GetProtocols(p)
	return err == nil && len(protos) > 0 && !slices.Contains(protos, SyncProtocol)
}

// HeadsUnknown handles a heads announcement, forwarded by via, naming
// heads this node lacks: a session with via when it may serve sync, as
// before, else a repair through the peers that do.
func (s *Syncer) HeadsUnknown(room crdt.RoomID, ids []crdt.EventID, via peer.ID) {
	if !s.notSync(via) {
		s.Trigger(room, via)
		return
	}
	s.Repair(room, ids, via)
}

// Repair schedules pulling ids (and closing any gap in room) from the
// peers that serve sync for the room (repairPeers). It never blocks.
func (s *Syncer) Repair(room crdt.RoomID, ids []crdt.EventID, via peer.ID) {
	s.rp.mu.Lock()
	st := s.rp.rooms[room]
	if st == nil {
		st = &repairState{want: map[crdt.EventID]bool{}}
		s.rp.rooms[room] = st
	}
	for _, id := range ids {
		if len(st.want) < maxRepairWant {
			st.want[id] = true
		}
	}
	if via != "" {
		st.via = via
	}
	st.attempt, st.due = 0, time.Time{}
	if st.running {
		st.again = true
		s.rp.mu.Unlock()
		return
	}
	s.rp.mu.Unlock()
	s.enqueue(syncJob{room: room, repair: true})
}

// rememberServer records that p answered a sync session for room.
func (s *Syncer) rememberServer(room crdt.RoomID, p peer.ID) {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	list := slices.DeleteFunc(s.rp.servers[room], func(q peer.ID) bool { return q == p })
	if len(list) >= maxRoomServers {
		list = slices.Delete(list, 0, 1)
	}
	s.rp.servers[room] = append(list, p)
}

// repairPeers lists the peers to try for room, best first: via when it
// serves sync; connected peers that serve sync and subscribe to the room's
// topics or served it before; peers that served the room before and are
// not connected now (a session dials them); then any other connected peer
// that serves sync (a host or a bootstrap peer may keep the room without a
// topic peer knowing).
func (s *Syncer) repairPeers(room crdt.RoomID, via peer.ID) []peer.ID {
	s.rp.mu.Lock()
	topicFn := s.rp.topicPeers
	servers := slices.Clone(s.rp.servers[room])
	s.rp.mu.Unlock()
	slices.Reverse(servers) // most recent first
	var topic []peer.ID
	if topicFn != nil {
		topic = topicFn(room)
	}
	connected := func(p peer.ID) bool { return s.host.Network().Connectedness(p) == network.Connected }
	var out []peer.ID
	seen := map[peer.ID]bool{s.host.ID(): true, "": true}
	add := func(p peer.ID, ok bool) {
		if ok && !seen[p] && len(out) < maxRepairPeers {
			seen[p] = true
			out = append(out, p)
		}
	}
	add(via, !s.notSync(via) && connected(via))
	for _, p := range append(topic, servers...) {
		add(p, connected(p) && !s.notSync(p))
	}
	dials := 0
	for _, p := range servers {
		if !seen[p] && dials < maxRepairDials && !s.notSync(p) {
			dials++
			add(p, true)
		}
	}
	for _, p := range s.host.Network().Peers() {
		add(p, !s.notSync(p))
	}
	return out
}

// SyncPeers counts the connected peers that serve sync for room: they
// subscribe to its topics or answered a session for it before.
func (s *Syncer) SyncPeers(room crdt.RoomID) int {
	s.rp.mu.Lock()
	topicFn := s.rp.topicPeers
	servers := slices.Clone(s.rp.servers[room])
	s.rp.mu.Unlock()
	var topic []peer.ID
	if topicFn != nil {
		topic = topicFn(room)
	}
	n := 0
	seen := map[peer.ID]bool{}
	for _, p := range append(topic, servers...) {
		if seen[p] || p == s.host.ID() || s.host.Network().Connectedness(p) != network.Connected {
			continue
		}
		seen[p] = true
		if protos, _ := s.host.Peerstore().GetProtocols(p); slices.Contains(protos, SyncProtocol) {
			n++
		}
	}
	return n
}

// repair runs one repair attempt for room: a session with each repair peer
// in turn until the wanted ids are held and the room has no gap. If none
// closes it, the next attempt is due after a back-off.
func (s *Syncer) repair(ctx context.Context, room crdt.RoomID) error {
	s.rp.mu.Lock()
	st := s.rp.rooms[room]
	if st == nil || st.running {
		s.rp.mu.Unlock()
		return nil
	}
	st.running = true
	want := make([]crdt.EventID, 0, len(st.want))
	for id := range st.want {
		want = append(want, id)
	}
	via := st.via
	s.rp.mu.Unlock()

	done, err := s.repaired(ctx, room, want)
	if err == nil && !done {
		for _, p := range s.repairPeers(room, via) {
			j := syncJob{room: room, peer: p}
			if !s.begin(j) {
				continue // a session with p runs: this one runs after it (begin)
			}
			err := s.session(ctx, j)
			s.end(j)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				s.log.Debug("repair", "room", room, "peer", p, "err", err)
				continue
			}
			if done, err = s.repaired(ctx, room, want); err != nil || done {
				break
			}
		}
	}

	s.rp.mu.Lock()
	st.running = false
	again := st.again
	st.again = false
	switch {
	case again:
	case done || st.attempt+1 >= maxRepairAttempts || ctx.Err() != nil:
		delete(s.rp.rooms, room)
	default:
		st.due = time.Now().Add(repairBackoff << st.attempt)
		st.attempt++
		select {
		case s.rp.kick <- struct{}{}:
		default:
		}
	}
	s.rp.mu.Unlock()
	if again {
		s.enqueue(syncJob{room: room, repair: true})
	}
	return err
}

// repaired reports whether every id in want is held and room has no gap.
func (s *Syncer) repaired(ctx context.Context, room crdt.RoomID, want []crdt.EventID) (bool, error) {
	known, err := s.engine.Known(ctx, room, want)
	if err != nil {
		return false, err
	}
	if slices.Contains(known, false) {
		return false, nil
	}
	gap, _, err := s.engine.Gap(ctx, room, 0)
	return gap == 0, err
}

// serveRepairs queues repair attempts as they fall due, until ctx is done.
// It sleeps until the earliest due time, or until a new one is set: a node
// with no repair pending does not wake up (it polled 4 times a second).
func (s *Syncer) serveRepairs(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due []crdt.RoomID
		var next time.Time
		now := time.Now()
		s.rp.mu.Lock()
		for room, st := range s.rp.rooms {
			switch {
			case st.due.IsZero():
			case !now.Before(st.due):
				st.due = time.Time{}
				due = append(due, room)
			case next.IsZero() || st.due.Before(next):
				next = st.due
			}
		}
		s.rp.mu.Unlock()
		for _, room := range due {
			s.enqueue(syncJob{room: room, repair: true})
		}
		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.rp.kick:
		case <-fire:
		}
	}
}
