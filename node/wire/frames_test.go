package wire

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
)

// FuzzFrameReader: whatever a stream holds, a frame is read only within
// its limit, and its buffer never runs more than frameChunk ahead of the
// octets that arrived.
func FuzzFrameReader(f *testing.F) {
	f.Add([]byte{0x03, 'a', 'b', 'c'}, 16)
	f.Add(binary.AppendUvarint(nil, 4<<20-1), 1<<10)
	f.Add([]byte{0x80, 0x00}, 16)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 16)
	f.Add(append(binary.AppendUvarint(nil, 100<<10), make([]byte, 70<<10)...), 200<<10)
	f.Fuzz(func(t *testing.T, data []byte, limit int) {
		limit = max(0, min(limit, 1<<20))
		r := NewFrameReader(nullScoped{bytes.NewReader(data)})
		for range 4 {
			b, err := r.Next(limit)
			if err != nil {
				return
			}
			if len(b) > limit {
				t.Fatalf("a frame of %d octets under a limit of %d", len(b), limit)
			}
			if cap(b) > 2*len(data)+frameChunk {
				t.Fatalf("a buffer of %d octets for a stream of %d", cap(b), len(data))
			}
		}
	})
}

type nullScoped struct{ io.Reader }

func (nullScoped) Scope() network.StreamScope { return &network.NullScope{} }
