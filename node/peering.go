package node

import (
	"errors"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// The engine's side of the peer protocols (docs/design.md §1.1): pull sync
// and gossip (node/p2p) reach the engine only through p2p.SyncEngine and
// p2p.GossipEngine.
var (
	_ p2p.SyncEngine   = (*Engine)(nil)
	_ p2p.GossipEngine = (*Engine)(nil)
)

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
