package mediasvc

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/wire"
)

// Pull-through. A node asked for a block it lacks fetches it from its
// other connected peers, stores it and serves it, when the requester's
// device belongs to a user with a membership in a room this node keeps
// (hosted or joined). So a blind host, which never learns a room's CIDs,
// still carries a room's media between members that reach only it. Loops
// and amplification are bounded: the requester is never asked; one
// pull-through per CID at a time: a request for it from its own requester
// (a request come back round a cycle) gets not-found at once, any other
// waits for it at most mediaRelayWait, less than a pull-through may take,
// so that a longer cycle unwinds; mediaRelayMax at once on the node; and
// a rate per requesting peer. What a node
// pulled through is a cache: it is kept for the GC's grace period
// (gc.go) and then collected unless a message this node can read
// refers to it.

// Limits of pull-through.
const (
	mediaRelayMax       = 16               // pull-throughs in flight on a node
	mediaRelayPeerRate  = 64               // blocks per second pulled through for one peer ...
	mediaRelayPeerBurst = 16               // ... with this burst
	mediaRelayTimeout   = 20 * time.Second // one pull-through, all peers asked (under Idle)
	mediaRelayWait      = 5 * time.Second  // a second request waits this long for the first
)

// relayCall is one pull-through in flight.
type relayCall struct {
	done chan struct{}
	from peer.ID // the requester
}

// mediaRelay is the pull-through state of a Service.
type mediaRelay struct {
	may    func(ctx context.Context, p peer.ID) bool // nil: no pull-through
	limits *wire.PeerLimits                          // per requesting peer
	sem    chan struct{}                             // mediaRelayMax slots

	mu    sync.Mutex
	calls map[string]*relayCall // guarded by mu, by CID KeyString

	pulled atomic.Int64 // blocks pulled through (tests)
}

func newMediaRelay() mediaRelay {
	return mediaRelay{
		limits: wire.NewPeerLimits(MaxPeerStreams, mediaRelayPeerRate, mediaRelayPeerBurst),
		sem:    make(chan struct{}, mediaRelayMax),
		calls:  map[string]*relayCall{},
	}
}

// SetRelayPolicy turns pull-through on: may says whether a requesting peer
// shares a room with this node. Call before Serve.
func (m *Service) SetRelayPolicy(may func(ctx context.Context, p peer.ID) bool) {
	m.relay.may = may
}

// pullThrough fetches block id, which this node lacks, for requester p from
// the other connected peers and returns it, or nil when p may not have it
// pulled through, a limit is reached or no other peer holds it.
func (m *Service) pullThrough(p peer.ID, id cid.Cid) []byte {
	r := &m.relay
	if r.may == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), mediaRelayTimeout)
	defer cancel()
	if !r.may(ctx, p) {
		return nil
	}
	key := id.KeyString()
	r.mu.Lock()
	if call := r.calls[key]; call != nil {
		r.mu.Unlock()
		if p == call.from {
			return nil // the request came back round: a loop
		}
		wait := time.NewTimer(mediaRelayWait)
		defer wait.Stop()
		select {
		case <-call.done:
		case <-wait.C: // perhaps a longer loop: let it unwind
			return nil
		}
		data, err := m.store.Get(id)
		if err != nil {
			return nil
		}
		return data
	}
	if !r.limits.Admit(p) {
		r.mu.Unlock()
		return nil
	}
	defer r.limits.Release(p)
	select {
	case r.sem <- struct{}{}:
	default:
		r.mu.Unlock()
		return nil
	}
	defer func() { <-r.sem }()
	var asked []peer.ID
	for _, q := range m.host.Network().Peers() {
		if q != p {
			asked = append(asked, q)
		}
	}
	if len(asked) == 0 {
		r.mu.Unlock()
		return nil
	}
	slices.Sort(asked)
	call := &relayCall{done: make(chan struct{}), from: p}
	r.calls[key] = call
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.calls, key)
		r.mu.Unlock()
		close(call.done)
	}()

	if err := r.limits.Limiter(p).Wait(ctx); err != nil {
		return nil
	}
	if err := m.pull(ctx, id, asked); err != nil {
		m.log.Debug("media: pull-through", "cid", id, "for", p, "err", err)
		return nil
	}
	r.pulled.Add(1)
	data, err := m.store.Get(id)
	if err != nil {
		return nil
	}
	return data
}

// pull fetches block id from peers and stores it (Put verifies it against
// its CID), touched for the GC's grace period.
func (m *Service) pull(ctx context.Context, id cid.Cid, peers []peer.ID) error {
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	s := &fetchSession{m: m, conns: map[peer.ID]*mediaConn{}}
	defer s.close()
	f := &fetchState{bad: map[peer.ID]bool{}, peers: peers}
	if err := m.fetchBlock(ctx, s, f, 0, id); err != nil {
		return err
	}
	m.touch(id)
	return nil
}
