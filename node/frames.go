package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"

	"github.com/parley-p2p/parley/crdt"
)

// frames is a libp2p stream of unsigned-varint-length-prefixed canonical
// CBOR messages of type M, with an idle deadline renewed on every frame.
// The sync and media protocols speak it.
type frames[M any] struct {
	st     network.Stream
	r      msgio.ReadCloser
	w      msgio.WriteCloser
	idle   time.Duration
	decode func([]byte) (*M, error)
}

func newFrames[M any](st network.Stream, maxFrame int, idle time.Duration, decode func([]byte) (*M, error)) *frames[M] {
	return &frames[M]{st: st, r: msgio.NewVarintReaderSize(st, maxFrame), w: msgio.NewVarintWriter(st), idle: idle, decode: decode}
}

func (f *frames[M]) send(m *M) error {
	b, err := crdt.Marshal(m)
	if err != nil {
		return err
	}
	f.st.SetWriteDeadline(time.Now().Add(f.idle))
	return f.w.WriteMsg(b)
}

func (f *frames[M]) recv() (*M, error) {
	f.st.SetReadDeadline(time.Now().Add(f.idle))
	b, err := f.r.ReadMsg()
	if err != nil {
		return nil, err
	}
	defer f.r.ReleaseMsg(b)
	return f.decode(b)
}
