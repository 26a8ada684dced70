package mediasvc

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// randomMediaMsg draws a message with fields of every length class
// (empty, 1, 23, 24, 255, 256, 65535, 65536 octets...).
func randomMediaMsg(r *rand.Rand) *mediaMsg {
	lengths := []int{0, 1, 23, 24, 255, 256, 1000, 65535, 65536, 70000}
	bytesOf := func() []byte {
		n := lengths[r.IntN(len(lengths))]
		if n == 0 {
			return nil
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	text := func() string {
		n := lengths[r.IntN(len(lengths)-3)]
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(r.IntN(26))
		}
		if n > 3 && r.IntN(3) == 0 {
			copy(b, "é€") // multi-octet UTF-8
		}
		return string(b)
	}
	ops := []string{mediaOpGet, mediaOpBlock, mediaOpNotFound, mediaOpError}
	m := &mediaMsg{Op: ops[r.IntN(len(ops))]}
	if r.IntN(2) == 0 {
		m.CID = bytesOf()
	}
	if r.IntN(3) == 0 {
		m.Err = text()
	}
	if r.IntN(2) == 0 {
		m.Data = bytesOf()
	}
	return m
}

// The hand-written codec writes what crdt.Marshal writes and reads it back.
func TestMediaCodecMatchesCanonicalCBOR(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		m := randomMediaMsg(r)
		want, err := crdt.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := encodeMediaMsg(m)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d %+v: encoded %x, crdt.Marshal %x", i, m, got[:min(len(got), 40)], want[:min(len(want), 40)])
		}
		back, err := decodeMediaMsg(got)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(m)) {
			t.Fatalf("message %d: decoded %+v, want %+v", i, back, m)
		}
	}
}

func normalize(m *mediaMsg) mediaMsg {
	c := *m
	if len(c.CID) == 0 {
		c.CID = nil
	}
	if len(c.Data) == 0 {
		c.Data = nil
	}
	return c
}

// agreeWithCanonical checks that decodeMediaMsg accepts b exactly when
// the generic strict decoder does, with the same value.
func agreeWithCanonical(t *testing.T, b []byte) {
	t.Helper()
	var ref mediaMsg
	refErr := crdt.UnmarshalCanonical(b, &ref)
	if refErr == nil {
		switch ref.Op {
		case mediaOpGet, mediaOpBlock, mediaOpNotFound, mediaOpError:
		default:
			refErr = errMediaFrame
		}
	}
	got, err := decodeMediaMsg(b)
	switch {
	case (err == nil) != (refErr == nil):
		t.Fatalf("frame %x: decodeMediaMsg err = %v, crdt.UnmarshalCanonical err = %v", b, err, refErr)
	case err == nil && !reflect.DeepEqual(normalize(got), normalize(&ref)):
		t.Fatalf("frame %x: decoded %+v, generic decoder %+v", b, got, ref)
	}
}

// Mutated frames: both decoders accept and reject the same ones.
func TestMediaCodecRejectsLikeCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	handmade := [][]byte{
		{}, {0xa0}, {0xa1, 0x62, 'o', 'p', 0x63, 'g', 'e', 't'},
		{0xa1, 0x62, 'o', 'p', 0x60},                                                     // empty op
		{0xa1, 0x62, 'o', 'p', 0x78, 0x03, 'g', 'e', 't'},                                // long-form length
		{0xbf, 0x62, 'o', 'p', 0x63, 'g', 'e', 't', 0xff},                                // indefinite map
		{0xa2, 0x62, 'o', 'p', 0x63, 'g', 'e', 't', 0x63, 'c', 'i', 'd', 0x40},           // empty cid
		{0xa2, 0x63, 'c', 'i', 'd', 0x41, 1, 0x62, 'o', 'p', 0x63, 'g', 'e', 't'},        // order
		{0xa1, 0x62, 'o', 'p', 0x63, 'g', 'e', 't', 0x00},                                // trailing
		{0xa1, 0x62, 'o', 'p', 0x63, 0xff, 'e', 't'},                                     // bad UTF-8
		{0xa2, 0x62, 'o', 'p', 0x63, 'g', 'e', 't', 0x63, 'c', 'i', 'd', 0xc2, 0x41, 1},  // tagged cid
		{0xa2, 0x62, 'o', 'p', 0x63, 'g', 'e', 't', 0x62, 'o', 'p', 0x63, 'g', 'e', 't'}, // duplicate
		{0xa2, 0x62, 'o', 'p', 0x63, 'g', 'e', 't', 0x61, 'x', 0x01},                     // unknown key
	}
	for _, b := range handmade {
		agreeWithCanonical(t, b)
	}
	for range 10000 {
		m := randomMediaMsg(r)
		m.CID = m.CID[:min(len(m.CID), 300)]
		m.Err = m.Err[:min(len(m.Err), 300)]
		m.Data = m.Data[:min(len(m.Data), 300)]
		b := encodeMediaMsg(m)
		switch r.IntN(4) {
		case 0: // flip a bit
			i := r.IntN(len(b))
			b[i] ^= 1 << r.IntN(8)
		case 1: // cut
			b = b[:r.IntN(len(b))]
		case 2: // insert an octet
			i := r.IntN(len(b) + 1)
			b = append(b[:i:i], append([]byte{byte(r.Uint32())}, b[i:]...)...)
		case 3: // replace the head octet of the map or of a key
			b[0] = byte(r.Uint32())
		}
		agreeWithCanonical(t, b)
	}
}
