package node

import (
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// What a node spends on peers before they prove anything (docs/protocol.md
// §3, §4, §8 and "Limits"): every protocol reads its frames through
// frameReader, which checks a frame's length against the bound of what may
// come next before allocating anything, and the libp2p resource manager
// caps streams and frame memory per protocol, per peer and per node.

// errFrameTooLarge: a frame's length prefix is above what may come next.
var errFrameTooLarge = errors.New("node: frame too large")

const (
	// frameReserveAbove: a frame larger than this reserves its size in the
	// stream's resource scope (and so in its protocol's, peer's and the
	// node's) before its buffer is allocated.
	frameReserveAbove = 16 << 10
	// frameChunk: a frame's buffer grows by at most this much ahead of
	// the octets that arrived, so a length prefix alone allocates little.
	frameChunk = 64 << 10
)

// frameReader reads unsigned-varint-length-prefixed frames from a stream.
// It keeps one buffer across frames; what next returns is valid until the
// next call.
type frameReader struct {
	st   scopedReader
	buf  []byte
	held int // octets reserved in st's scope for buf
}

// scopedReader is what frameReader reads: a stream and its resource scope.
type scopedReader interface {
	io.Reader
	Scope() network.StreamScope
}

// next reads one frame of at most limit octets. A longer length prefix is
// errFrameTooLarge, with nothing read past the prefix: the caller resets
// the stream.
func (r *frameReader) next(limit int) ([]byte, error) {
	n, err := readUvarint(r.st)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %d octets, at most %d here", errFrameTooLarge, n, limit)
	}
	size := int(n)
	if size > cap(r.buf) && size > frameReserveAbove {
		if need := size - r.held; need > 0 {
			if err := r.st.Scope().ReserveMemory(need, network.ReservationPriorityAlways); err != nil {
				return nil, fmt.Errorf("frame of %d octets: %w", size, err)
			}
			r.held += need
		}
	}
	b := r.buf[:0]
	for len(b) < size {
		step := min(size-len(b), frameChunk)
		if cap(b)-len(b) < step {
			nb := make([]byte, len(b), min(size, max(2*cap(b), len(b)+step)))
			copy(nb, b)
			b = nb
		}
		k, err := io.ReadFull(r.st, b[len(b):len(b)+step])
		b = b[:len(b)+k]
		if err != nil {
			r.buf = b[:0]
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	r.buf = b
	return b, nil
}

// shrink drops a buffer larger than frameReserveAbove and its reservation,
// so that an idle stream holds little.
func (r *frameReader) shrink() {
	if cap(r.buf) > frameReserveAbove {
		r.buf = nil
	}
	if r.held > 0 && r.buf == nil {
		r.st.Scope().ReleaseMemory(r.held)
		r.held = 0
	}
}

// readUvarint reads an unsigned varint of at most 9 octets (lengths
// beyond 2^63 are nonsense anyway) one octet at a time, so that nothing of
// the frame body is consumed.
func readUvarint(rd io.Reader) (uint64, error) {
	var x uint64
	var b [1]byte
	for i := range 9 {
		if _, err := io.ReadFull(rd, b[:]); err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		x |= uint64(b[0]&0x7f) << (7 * i)
		if b[0] < 0x80 {
			if i > 0 && b[0] == 0 {
				return 0, errors.New("node: frame length not minimally encoded")
			}
			return x, nil
		}
	}
	return 0, errors.New("node: frame length too long")
}

// Node-wide limits of the resource manager (resourceLimits).
const (
	maxInboundConns = 256       // connections peers opened to this node
	maxNodeMemory   = 512 << 20 // reservations of streams (muxer windows) and frames
	maxSyncMemory   = 64 << 20  // frames buffered by all sync streams
	maxMediaMemory  = 96 << 20  // frames buffered by all media streams
	maxSmallMemory  = 8 << 20   // frames buffered by all invite or link streams
)

// DaemonMemoryLimit is the soft memory limit a daemon sets for the Go
// runtime unless GOMEMLIMIT is set: the collector works harder as the
// heap nears it, so that bursts of short-lived garbage (handshakes and
// streams of many peers at once) do not double the resident set. It is
// not a cap: a daemon that needs more live memory uses more.
const DaemonMemoryLimit = 128 << 20

// protocolLimits are the inbound streams of each protocol node-wide and per
// peer, and the frame memory of all its streams.
var protocolLimits = []struct {
	id               protocol.ID
	streams, perPeer int
	memory           int64
}{
	{SyncProtocol, 128, 2 * maxPeerSessions, maxSyncMemory},
	{MediaProtocol, 128, 2 * mediaMaxPeerStreams, maxMediaMemory},
	{InviteProtocol, 32, 2, maxSmallMemory},
	{LinkProtocol, 16, 2, maxSmallMemory},
	{RoomProofProtocol, 64, 4, maxSmallMemory},
	{TURNProtocol, 32, turnPeerStreams, maxSmallMemory},
	{PeerRecordsProtocol, 32, 2, maxSmallMemory},
}

// resourceLimits are libp2p's default limits (scaled for 1 GiB) with
// Parley's caps on top.
func resourceLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	cfg := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			ConnsInbound: rcmgr.LimitVal(maxInboundConns),
			Memory:       rcmgr.LimitVal64(maxNodeMemory),
		},
		Protocol:     map[protocol.ID]rcmgr.ResourceLimits{},
		ProtocolPeer: map[protocol.ID]rcmgr.ResourceLimits{},
	}
	for _, l := range protocolLimits {
		cfg.Protocol[l.id] = rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(l.streams), Memory: rcmgr.LimitVal64(l.memory)}
		cfg.ProtocolPeer[l.id] = rcmgr.ResourceLimits{StreamsInbound: rcmgr.LimitVal(l.perPeer)}
	}
	return cfg.Build(scaling.Scale(1<<30, 4096))
}

// resourceManager is the node's libp2p resource manager (resourceLimits).
func resourceManager() (network.ResourceManager, error) {
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits()))
}

// hostOptions are the libp2p options every Parley daemon host takes.
func hostOptions() ([]libp2p.Option, error) {
	rm, err := resourceManager()
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return []libp2p.Option{libp2p.ResourceManager(rm)}, nil
}
