package node

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-p2p/parley/crdt"
)

// Path stages of parley_gossip_path_seconds: how long a gossiped event
// takes through this node, on the way every peer's copy of it takes.
const (
	// PathValidate runs from gossipsub taking the message for validation
	// to its delivery: decoded, signature checked, the room's guard
	// passed. Gossipsub forwards it to the mesh at that moment, so this
	// is the node's part of each hop.
	PathValidate = "validate"
	// PathApply runs from that delivery until the engine has taken the
	// event into its room (log, state, store commit), just before the
	// watchers are told.
	PathApply = "apply"
)

// pathMarksMax bounds the messages timed at once; more are not timed.
const pathMarksMax = 8192

// pathMarksTTL is how long a mark may wait for its next stage (an event
// held as an orphan, or refused by the engine, never reaches apply).
const pathMarksTTL = time.Minute

// gossipPath times gossiped events between the stages above, by gossip
// message ID (the event ID's digest). Gossipsub's tracer and the engine's
// Accepted effect call it from their own goroutines.
type gossipPath struct {
	hist *prometheus.HistogramVec

	mu    sync.Mutex
	marks map[string]pathMark
	swept time.Time // last sweep of marks past pathMarksTTL

	traceMu sync.Mutex
	trace   io.WriteCloser // Config.GossipTrace; nil = none
	self    peer.ID        // this node: its own messages come "from" it
}

type pathMark struct{ in, valid time.Time }

func newGossipPath() *gossipPath {
	return &gossipPath{
		hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_gossip_path_seconds",
			Help: "A gossiped event's time through this node, by stage: validate (taken for validation to delivered and forwarded), apply (delivered to taken into the room).",
			// 20 µs to 2 s, 1.3x apart: fine enough for quantiles of a
			// path of a fraction of a millisecond.
			Buckets: prometheus.ExponentialBucketsRange(20e-6, 2, 45),
		}, []string{"stage"}),
		marks: make(map[string]pathMark),
	}
}

// taken marks a peer's message that gossipsub takes for validation.
func (g *gossipPath) taken(msg *pubsub.Message) {
	if msg.Local || !isEventTopic(msg) {
		return
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.marks) >= pathMarksMax {
		// At most one sweep a second: a full map of young marks (a burst
		// of more than pathMarksMax a minute) would otherwise cost a scan
		// per message on pubsub's event loop.
		if now.Sub(g.swept) < time.Second {
			return
		}
		g.swept = now
		for id, m := range g.marks {
			if now.Sub(m.in) > pathMarksTTL {
				delete(g.marks, id)
			}
		}
		if len(g.marks) >= pathMarksMax {
			return
		}
	}
	g.marks[msg.ID] = pathMark{in: now}
}

// delivered ends a message's validate stage.
func (g *gossipPath) delivered(msg *pubsub.Message) {
	if msg.Local {
		return
	}
	now := time.Now()
	g.mu.Lock()
	m, ok := g.marks[msg.ID]
	if ok {
		m.valid = now
		g.marks[msg.ID] = m
	}
	g.mu.Unlock()
	if ok {
		g.hist.WithLabelValues(PathValidate).Observe(now.Sub(m.in).Seconds())
		g.traceLine(msg.ID, msg.ReceivedFrom, m.in, now)
	}
}

// duplicate traces a copy of a peer's event that gossipsub dropped as
// already seen.
func (g *gossipPath) duplicate(msg *pubsub.Message) {
	if isEventTopic(msg) {
		g.traceLine(msg.ID, msg.ReceivedFrom, time.Now(), time.Time{})
	}
}

// published traces an event this node published, when gossipsub has
// validated it and queued it to go out.
func (g *gossipPath) published(ev *crdt.Event) {
	now := time.Now()
	g.traceLine(string(ev.ID.Digest()), "", now, now)
}

// appliedMark stands for the peer in a trace line that marks when a
// peer's event was taken into its room.
const appliedMark = "applied"

// traceLine writes a trace line (docs/operators.md, "Gossip path
// trace"): the message ID in hex, the peer it came from ("": this node,
// for its own), when it was taken for validation (or dropped as a
// duplicate) and when it was delivered and forwarded ("-" for a
// duplicate: zero valid), in Unix nanoseconds. A failed write ends the
// trace.
func (g *gossipPath) traceLine(id string, from peer.ID, in, valid time.Time) {
	g.traceMu.Lock()
	defer g.traceMu.Unlock()
	if g.trace == nil {
		return
	}
	who := appliedMark
	switch from {
	case "":
		who = g.self.String()
	case appliedMark:
	default:
		who = from.String()
	}
	v := "-"
	if !valid.IsZero() {
		v = strconv.FormatInt(valid.UnixNano(), 10)
	}
	if _, err := fmt.Fprintf(g.trace, "%s %s %d %s\n", hex.EncodeToString([]byte(id)), who, in.UnixNano(), v); err != nil {
		g.trace.Close()
		g.trace = nil
	}
}

// traceTo starts the trace of node self into w.
func (g *gossipPath) traceTo(w io.WriteCloser, self peer.ID) {
	g.traceMu.Lock()
	defer g.traceMu.Unlock()
	g.trace, g.self = w, self
}

// close ends the trace.
func (g *gossipPath) close() {
	g.traceMu.Lock()
	defer g.traceMu.Unlock()
	if g.trace != nil {
		g.trace.Close()
		g.trace = nil
	}
}

// dropped forgets a message gossipsub refused.
func (g *gossipPath) dropped(msg *pubsub.Message) {
	g.mu.Lock()
	delete(g.marks, msg.ID)
	g.mu.Unlock()
}

// accepted ends an event's apply stage, if it came by gossip, and traces
// when a peer's event was taken into its room (by gossip or by sync).
func (g *gossipPath) accepted(ev *crdt.Event) {
	id := string(ev.ID.Digest())
	now := time.Now()
	g.traceLine(id, appliedMark, now, now)
	g.mu.Lock()
	m, ok := g.marks[id]
	if ok {
		delete(g.marks, id)
	}
	g.mu.Unlock()
	if ok && !m.valid.IsZero() {
		g.hist.WithLabelValues(PathApply).Observe(now.Sub(m.valid).Seconds())
	}
}
