package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// maxLimiters bounds how many peers' rate state a protocol remembers; past
// it the state starts over (a peer gains at most one fresh burst).
const maxLimiters = 4096

// peerLimits is what a served protocol keeps per peer: open streams, capped
// at maxStreams, and a token bucket of r per second with burst b.
type peerLimits struct {
	maxStreams int
	limiters   *limiterSet[peer.ID]

	mu      sync.Mutex
	streams map[peer.ID]int // guarded by mu
}

func newPeerLimits(maxStreams int, r rate.Limit, b int) *peerLimits {
	return &peerLimits{maxStreams: maxStreams, limiters: newLimiterSet[peer.ID](r, b), streams: map[peer.ID]int{}}
}

// admit takes a stream slot for p, or reports that p has too many open.
func (l *peerLimits) admit(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[p] >= l.maxStreams {
		return false
	}
	l.streams[p]++
	return true
}

// release gives back a slot taken by admit.
func (l *peerLimits) release(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[p]--; l.streams[p] <= 0 {
		delete(l.streams, p)
	}
}

// limiter returns p's token bucket.
func (l *peerLimits) limiter(p peer.ID) *rate.Limiter { return l.limiters.get(p) }

// admitStream admits an inbound stream's peer: it returns the peer and the
// release to defer, or resets the stream and returns ok false when the peer
// has as many open streams as it may.
func (l *peerLimits) admitStream(st network.Stream) (p peer.ID, release func(), ok bool) {
	p = st.Conn().RemotePeer()
	if !l.admit(p) {
		st.Reset()
		return p, nil, false
	}
	return p, func() { l.release(p) }, true
}

// limiterSet is a token bucket per key, remembering at most maxLimiters
// keys (past it the state starts over: a key gains at most one fresh burst).
type limiterSet[K comparable] struct {
	r rate.Limit
	b int

	mu sync.Mutex
	m  map[K]*rate.Limiter // guarded by mu
}

func newLimiterSet[K comparable](r rate.Limit, b int) *limiterSet[K] {
	return &limiterSet[K]{r: r, b: b, m: map[K]*rate.Limiter{}}
}

// get returns k's token bucket.
func (l *limiterSet[K]) get(k K) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.m[k]
	if lim == nil {
		if len(l.m) >= maxLimiters {
			clear(l.m)
		}
		lim = rate.NewLimiter(l.r, l.b)
		l.m[k] = lim
	}
	return lim
}

// allow takes a token from k's bucket.
func (l *limiterSet[K]) allow(k K) bool { return l.get(k).Allow() }
