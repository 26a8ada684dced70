package p2p

import (
	"context"
	"errors"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Gossip over limited connections (docs/protocol.md §9.2). A connection
// through a circuit relay is "limited": libp2p opens no stream on it unless
// asked to, and gossipsub never asks, so two members that reach each other
// only through a relay exchanged no gossip, and their first message waited
// for periodic anti-entropy (30 s ± 30 %). Pubsub here sees a peer reached
// only through a relay as connected and opens its stream over the circuit,
// within a byte budget written per connection (the node's
// limitedGossipBytes); past it the stream is
// reset and no new one is opened on that connection, so gossip waits for a
// direct connection (hole punching) or a fresh circuit, and sync, which
// has its own frame limits, carries what gossip missed. A direct
// connection is always preferred: libp2p opens new streams on the best
// connection, and pubsub reopens its stream on the direct one when the
// circuit closes.

// RelayCircuitBytes is the byte budget, each way, of one circuit through
// a Parley relay (the node's relay service, reach.go, unless configured).
const RelayCircuitBytes = 1 << 20

// ErrLimitedBudget: a limited connection's gossip budget is spent.
var ErrLimitedBudget = errors.New("p2p: gossip budget of the relayed connection spent")

// limitedHost is the host pubsub sees: a peer with only limited
// connections counts as connected, and streams may open over them.
type limitedHost struct {
	host.Host
	b *limitBudget
}

// AllowLimited wraps h for pubsub, with a budget of max bytes written per
// limited connection.
func AllowLimited(h host.Host, max int64) host.Host {
	return limitedHost{h, &limitBudget{max: max, spent: map[string]int64{}}}
}

func (h limitedHost) Network() network.Network { return limitedNet{h.Host.Network()} }

func (h limitedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(network.WithAllowLimitedConn(ctx, "gossip"), p, pids...)
	if err != nil || !s.Conn().Stat().Limited {
		return s, err
	}
	if !h.b.open(h.Host.Network(), s.Conn().ID()) {
		s.Reset()
		return nil, ErrLimitedBudget
	}
	return &budgetStream{Stream: s, b: h.b, conn: s.Conn().ID()}, nil
}

// limitedNet reports a peer with only limited connections as connected.
type limitedNet struct{ network.Network }

func (n limitedNet) Connectedness(p peer.ID) network.Connectedness {
	if c := n.Network.Connectedness(p); c != network.Limited {
		return c
	}
	return network.Connected
}

// limitBudget counts the bytes written per limited connection; its map is
// guarded by mu (pubsub writes from one goroutine per peer).
type limitBudget struct {
	max   int64
	mu    sync.Mutex
	spent map[string]int64 // connection ID → bytes written; guarded by mu
}

// open reports whether a stream may open on connection id, and forgets the
// connections that closed.
func (b *limitBudget) open(n network.Network, id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.spent) > 0 {
		live := map[string]bool{}
		for _, c := range n.Conns() {
			live[c.ID()] = true
		}
		for k := range b.spent {
			if !live[k] {
				delete(b.spent, k)
			}
		}
	}
	return b.spent[id] < b.max
}

// take spends n bytes of connection id's budget; false when it is spent.
func (b *limitBudget) take(id string, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spent[id]+int64(n) > b.max {
		b.spent[id] = b.max
		return false
	}
	b.spent[id] += int64(n)
	return true
}

// budgetStream is a stream over a limited connection that stops (reset)
// once the connection's budget is spent.
type budgetStream struct {
	network.Stream
	b    *limitBudget
	conn string
}

func (s *budgetStream) Write(p []byte) (int, error) {
	if !s.b.take(s.conn, len(p)) {
		s.Stream.Reset()
		return 0, ErrLimitedBudget
	}
	return s.Stream.Write(p)
}
