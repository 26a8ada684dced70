package wire

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// maxLimiters bounds how many peers' rate state a protocol remembers; past
// it the state starts over (a peer gains at most one fresh burst).
const maxLimiters = 4096

// PeerLimits is what a served protocol keeps per peer: open streams, capped
// at maxStreams, and a token bucket of r per second with burst b.
type PeerLimits struct {
	maxStreams int
	limiters   *LimiterSet[peer.ID]

	mu      sync.Mutex
	streams map[peer.ID]int // guarded by mu
}

func NewPeerLimits(maxStreams int, r rate.Limit, b int) *PeerLimits {
	return &PeerLimits{maxStreams: maxStreams, limiters: NewLimiterSet[peer.ID](r, b), streams: map[peer.ID]int{}}
}

// Admit takes a stream slot for p, or reports that p has too many open.
func (l *PeerLimits) Admit(p peer.ID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[p] >= l.maxStreams {
		return false
	}
	l.streams[p]++
	return true
}

// Release gives back a slot taken by admit.
func (l *PeerLimits) Release(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.streams[p]--; l.streams[p] <= 0 {
		delete(l.streams, p)
	}
}

// Streams is how many streams p has open.
func (l *PeerLimits) Streams(p peer.ID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.streams[p]
}

// Limiter returns p's token bucket.
func (l *PeerLimits) Limiter(p peer.ID) *rate.Limiter { return l.limiters.Get(p) }

// AdmitStream admits an inbound stream's peer: it returns the peer and the
// Release to defer, or resets the stream and returns ok false when the peer
// has as many open streams as it may.
func (l *PeerLimits) AdmitStream(st network.Stream) (p peer.ID, release func(), ok bool) {
	p = st.Conn().RemotePeer()
	if !l.Admit(p) {
		st.Reset()
		return p, nil, false
	}
	return p, func() { l.Release(p) }, true
}

// LimiterSet is a token bucket per key, remembering at most maxLimiters
// keys (past it the state starts over: a key gains at most one fresh burst).
type LimiterSet[K comparable] struct {
	r rate.Limit
	b int

	mu sync.Mutex
	m  map[K]*rate.Limiter // guarded by mu
}

func NewLimiterSet[K comparable](r rate.Limit, b int) *LimiterSet[K] {
	return &LimiterSet[K]{r: r, b: b, m: map[K]*rate.Limiter{}}
}

// Get returns k's token bucket.
func (l *LimiterSet[K]) Get(k K) *rate.Limiter {
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

// Allow takes a token from k's bucket.
func (l *LimiterSet[K]) Allow(k K) bool { return l.Get(k).Allow() }
