package wire

import (
	"errors"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/network"
)

// ErrFrameTooLarge: a frame's length prefix is above what may come next.
var ErrFrameTooLarge = errors.New("wire: frame too large")

const (
	// frameReserveAbove: a frame larger than this reserves its size in the
	// stream's resource scope (and so in its protocol's, peer's and the
	// node's) before its buffer is allocated.
	frameReserveAbove = 16 << 10
	// frameChunk: a frame's buffer grows by at most this much ahead of
	// the octets that arrived, so a length prefix alone allocates little.
	frameChunk = 64 << 10
)

// FrameReader reads unsigned-varint-length-prefixed frames from a stream.
// It keeps one buffer across frames; what next returns is valid until the
// Next call.
type FrameReader struct {
	st   ScopedReader
	buf  []byte
	held int // octets reserved in st's scope for buf
}

// NewFrameReader reads frames from st.
func NewFrameReader(st ScopedReader) FrameReader { return FrameReader{st: st} }

// ScopedReader is what FrameReader reads: a stream and its resource scope.
type ScopedReader interface {
	io.Reader
	Scope() network.StreamScope
}

// Next reads one frame of at most limit octets. A longer length prefix is
// ErrFrameTooLarge, with nothing read past the prefix: the caller resets
// the stream.
func (r *FrameReader) Next(limit int) ([]byte, error) {
	n, err := readUvarint(r.st)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %d octets, at most %d here", ErrFrameTooLarge, n, limit)
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

// Shrink drops a buffer larger than frameReserveAbove and its reservation,
// so that an idle stream holds little.
func (r *FrameReader) Shrink() {
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
				return 0, errors.New("wire: frame length not minimally encoded")
			}
			return x, nil
		}
	}
	return 0, errors.New("wire: frame length too long")
}
