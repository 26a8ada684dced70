package node

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/crdt"
)

// sessionKey names the client sessions that must not overlap: one room
// with one peer.
type sessionKey struct {
	room crdt.RoomID
	peer peer.ID
}

// sessionRuns coalesces client sessions. Two sessions of one room with one
// peer at once (a connect trigger, a heads announcement and a repair can
// all start one) would both ask `since` from the same heads and receive
// every page twice: a node resuming a large catch-up fetched each missing
// event twice (TestKillMidCatchUp). A session asked for while one runs is
// run once more when it ends instead, from the heads it left. Sessions
// with different peers still run side by side, so a slow peer cannot hold
// a room's sync back.
type sessionRuns struct {
	mu    sync.Mutex
	again map[sessionKey]bool // running sessions: whether one more was asked for
}

// session runs one client session of room with p (sessionOnce), unless one
// is running: then that one runs again when it ends, and session returns nil.
func (s *Syncer) session(ctx context.Context, room crdt.RoomID, p peer.ID) error {
	r, key := &s.runs, sessionKey{room, p}
	r.mu.Lock()
	if _, busy := r.again[key]; busy {
		r.again[key] = true
		r.mu.Unlock()
		return nil
	}
	if r.again == nil {
		r.again = map[sessionKey]bool{}
	}
	r.again[key] = false
	r.mu.Unlock()
	for {
		err := s.sessionOnce(ctx, room, p)
		r.mu.Lock()
		again := r.again[key] && err == nil && ctx.Err() == nil
		if !again {
			delete(r.again, key)
			r.mu.Unlock()
			return err
		}
		r.again[key] = false
		r.mu.Unlock()
	}
}
