package node

import (
	"context"
	"errors"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// The engine's side of the peer protocols (docs/design.md §1.1): pull sync
// and gossip (node/p2p) reach the engine only through p2p.SyncEngine and
// p2p.GossipEngine, invites through p2p.InviteEngine, device linking
// through p2p.LinkEngine.
var (
	_ p2p.SyncEngine   = (*Engine)(nil)
	_ p2p.GossipEngine = (*Engine)(nil)
	_ p2p.InviteEngine = (*Engine)(nil)
	_ p2p.LinkEngine   = (*Engine)(nil)
)

// JoinedRooms lists the rooms this user is joined in: a device linked to
// the user follows them (p2p.LinkEngine).
func (e *Engine) JoinedRooms(ctx context.Context) ([]crdt.RoomID, error) {
	var rooms []crdt.RoomID
	err := e.do(ctx, func() error { rooms = e.joinedRooms(); return nil })
	return rooms, err
}

// KEMSignedBy reports whether kem is a KEM record signed by the device key
// device (p2p.LinkEngine): the record a device to link sends.
func (e *Engine) KEMSignedBy(kem, device []byte) bool {
	rec, err := e2ee.DecodeKEMRecord(kem)
	return err == nil && string(rec.Device[:]) == string(device)
}

// GossipJudge returns the judge of one room topic's gossip validator
// (judgeGossip, guard.go), with a rate limiter of its own that keeps the
// self chains that topic's messages showed. The judge runs on pubsub's
// goroutines and never waits for the engine.
func (e *Engine) GossipJudge() func(*crdt.Event) p2p.Verdict {
	lim := newChainLimiter()
	return func(ev *crdt.Event) p2p.Verdict {
		v := e.judgeGossip(ev, lim)
		return p2p.Verdict{Result: v.res, Reason: v.reason}
	}
}

// IngestFailure tells gossip what an error of Ingest means: stop when the
// engine is closed, quiet when the disk guard refused the commit (it warned
// once already; diskguard.go).
func (e *Engine) IngestFailure(err error) (stop, quiet bool) {
	return errors.Is(err, ErrClosed), errors.Is(err, ErrDiskFull)
}
