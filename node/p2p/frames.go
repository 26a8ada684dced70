package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/wire"
)

// frames is a libp2p stream of unsigned-varint-length-prefixed canonical
// CBOR messages of type M, with an idle deadline renewed on every frame.
// The sync protocol speaks it. Each frame's length is checked against the
// bound the caller gives before anything is allocated (wire.FrameReader).
type frames[M any] struct {
	st     network.Stream
	r      wire.FrameReader
	w      msgio.WriteCloser
	idle   time.Duration
	decode func([]byte) (*M, error)
}

func newFrames[M any](st network.Stream, idle time.Duration, decode func([]byte) (*M, error)) *frames[M] {
	return &frames[M]{st: st, r: wire.NewFrameReader(st), w: msgio.NewVarintWriter(st), idle: idle, decode: decode}
}

func (f *frames[M]) send(m *M) error {
	b, err := crdt.Marshal(m)
	if err != nil {
		return err
	}
	return f.sendEncoded(b)
}

// sendEncoded sends a frame the caller encoded.
func (f *frames[M]) sendEncoded(b []byte) error {
	f.st.SetWriteDeadline(time.Now().Add(f.idle))
	return f.w.WriteMsg(b)
}

// recv reads and decodes the next frame, of at most limit octets, and
// returns it with its size. What the message holds of the frame's bytes
// (an events page's events: decodeEventsPage) is valid until the next
// recv. Unless keep is set, the reader then drops a large buffer
// (wire.FrameReader.Shrink); with keep, the caller shrinks it when the
// frames that need it are over (a requester between the pages of an
// answer: each would grow a buffer again from 64 KiB).
func (f *frames[M]) recv(limit int, keep bool) (*M, int, error) {
	f.st.SetReadDeadline(time.Now().Add(f.idle))
	b, err := f.r.Next(limit)
	if err != nil {
		return nil, 0, err
	}
	if !keep {
		defer f.r.Shrink()
	}
	m, err := f.decode(b)
	return m, len(b), err
}
