package mediasvc

import (
	"encoding/binary"
	"errors"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/parley-p2p/parley/node/wire"
)

// The media protocol's frames are canonical CBOR maps (mediaMsg, as
// crdt.Marshal writes them: keys "op", "cid", "err", "data" in that
// length-first order, empty optional fields left out). A block frame is a
// megabyte; this hand-written codec reads and writes exactly that encoding
// without the generic codec's copies (decode, re-encode, compare): the
// decoder accepts precisely what crdt.UnmarshalCanonical accepts into a
// mediaMsg (codec_test.go checks both directions).

// mediaKeys are the map keys in canonical order.
var mediaKeys = [...]string{"op", "cid", "err", "data"}

const (
	cborBytes = 2
	cborText  = 3
	cborMap   = 5
)

// appendCBORHead appends a major type and argument in shortest form.
func appendCBORHead(b []byte, major byte, n uint64) []byte {
	mt := major << 5
	switch {
	case n < 24:
		return append(b, mt|byte(n))
	case n <= 0xff:
		return append(b, mt|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, mt|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, mt|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, mt|27), n)
}

func cborHeadLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= 0xff:
		return 2
	case n <= 0xffff:
		return 3
	case n <= 0xffffffff:
		return 5
	}
	return 9
}

// mediaMsgHead appends the encoding of m up to, not including, the octets
// of m.Data (which come last), and returns it with the full encoded size.
func mediaMsgHead(b []byte, m *mediaMsg) ([]byte, int) {
	start := len(b)
	pairs := 1
	for _, present := range []bool{len(m.CID) > 0, len(m.Err) > 0, len(m.Data) > 0} {
		if present {
			pairs++
		}
	}
	b = appendCBORHead(b, cborMap, uint64(pairs))
	str := func(b []byte, major byte, s string) []byte {
		return append(appendCBORHead(b, major, uint64(len(s))), s...)
	}
	b = str(b, cborText, mediaKeys[0])
	b = str(b, cborText, m.Op)
	if len(m.CID) > 0 {
		b = str(b, cborText, mediaKeys[1])
		b = append(appendCBORHead(b, cborBytes, uint64(len(m.CID))), m.CID...)
	}
	if len(m.Err) > 0 {
		b = str(b, cborText, mediaKeys[2])
		b = str(b, cborText, m.Err)
	}
	if len(m.Data) > 0 {
		b = str(b, cborText, mediaKeys[3])
		b = appendCBORHead(b, cborBytes, uint64(len(m.Data)))
	}
	return b, len(b) - start + len(m.Data)
}

// encodeMediaMsg returns the canonical encoding of m.
func encodeMediaMsg(m *mediaMsg) []byte {
	b, size := mediaMsgHead(nil, m)
	b = append(make([]byte, 0, size), b...)
	return append(b, m.Data...)
}

// cborIn reads CBOR items from a byte slice.
type cborIn struct{ b []byte }

var errCBOR = errors.New("not canonical CBOR of a media message")

// head reads an item head with a definite, shortest-form argument.
func (d *cborIn) head() (major byte, n uint64, err error) {
	if len(d.b) == 0 {
		return 0, 0, errCBOR
	}
	major, ai := d.b[0]>>5, d.b[0]&31
	d.b = d.b[1:]
	var k int
	var min uint64
	switch {
	case ai < 24:
		return major, uint64(ai), nil
	case ai == 24:
		k, min = 1, 24
	case ai == 25:
		k, min = 2, 1<<8
	case ai == 26:
		k, min = 4, 1<<16
	case ai == 27:
		k, min = 8, 1<<32
	default:
		return 0, 0, errCBOR // indefinite length or reserved
	}
	if len(d.b) < k {
		return 0, 0, errCBOR
	}
	for _, c := range d.b[:k] {
		n = n<<8 | uint64(c)
	}
	d.b = d.b[k:]
	if n < min {
		return 0, 0, errCBOR
	}
	return major, n, nil
}

// str reads a byte or text string of the given major type.
func (d *cborIn) str(major byte) ([]byte, error) {
	mt, n, err := d.head()
	if err != nil || mt != major || n > uint64(len(d.b)) {
		return nil, errCBOR
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	if major == cborText && !utf8.Valid(s) {
		return nil, errCBOR
	}
	return s, nil
}

// parseMediaMsg decodes the canonical encoding of a mediaMsg. CID and Data
// alias b.
func parseMediaMsg(b []byte) (*mediaMsg, error) {
	d := cborIn{b: b}
	mt, pairs, err := d.head()
	if err != nil || mt != cborMap || pairs < 1 || pairs > uint64(len(mediaKeys)) {
		return nil, errCBOR
	}
	var m mediaMsg
	last := -1
	for range pairs {
		k, err := d.str(cborText)
		if err != nil {
			return nil, err
		}
		idx := -1
		for i, name := range mediaKeys {
			if string(k) == name {
				idx = i
			}
		}
		// Canonical order, no duplicates, no unknown keys, "op" first and
		// always present.
		if idx <= last || (last == -1 && idx != 0) {
			return nil, errCBOR
		}
		last = idx
		switch idx {
		case 0:
			s, err := d.str(cborText)
			if err != nil {
				return nil, err
			}
			m.Op = string(s)
		case 1:
			if m.CID, err = d.str(cborBytes); err != nil || len(m.CID) == 0 {
				return nil, errCBOR
			}
		case 2:
			s, err := d.str(cborText)
			if err != nil || len(s) == 0 {
				return nil, errCBOR
			}
			m.Err = string(s)
		case 3:
			if m.Data, err = d.str(cborBytes); err != nil || len(m.Data) == 0 {
				return nil, errCBOR
			}
		}
	}
	if len(d.b) != 0 {
		return nil, errCBOR
	}
	return &m, nil
}

// mediaConn is one open media stream: varint-length-prefixed frames, each
// one mediaMsg, with an idle deadline renewed on every frame. It keeps its
// buffers across frames and writes a block from the caller's slice; what
// recv returns aliases the read buffer and is valid until the next recv.
// It reads frames of at most limit octets: mediaMaxFrame for a fetching
// node's answers, mediaMaxRequest on a served stream.
type mediaConn struct {
	st     network.Stream
	r      wire.FrameReader
	limit  int
	wbuf   []byte
	frames int // received
}

func newMediaConn(st network.Stream) *mediaConn {
	return &mediaConn{st: st, r: wire.NewFrameReader(st), limit: mediaMaxFrame}
}

// mediaInlineData: smaller payloads are copied into the frame buffer and
// sent in one write.
const mediaInlineData = 16 << 10

func (c *mediaConn) send(m *mediaMsg) error {
	body, size := mediaMsgHead(nil, m)
	c.wbuf = binary.AppendUvarint(c.wbuf[:0], uint64(size))
	c.wbuf = append(c.wbuf, body...)
	data := m.Data
	if len(data) <= mediaInlineData {
		c.wbuf, data = append(c.wbuf, data...), nil
	}
	c.st.SetWriteDeadline(time.Now().Add(Idle))
	if _, err := c.st.Write(c.wbuf); err != nil {
		return err
	}
	if len(data) > 0 {
		_, err := c.st.Write(data)
		return err
	}
	return nil
}

func (c *mediaConn) recv() (*mediaMsg, error) {
	c.st.SetReadDeadline(time.Now().Add(Idle))
	b, err := c.r.Next(c.limit)
	if err != nil {
		return nil, err
	}
	c.frames++
	return decodeMediaMsg(b)
}
