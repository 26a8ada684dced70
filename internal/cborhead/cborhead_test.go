package cborhead

import (
	"bytes"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// TestAppendMatchesLibrary: the heads Append writes are the ones the CBOR
// library writes for a byte string of that length, at every boundary.
func TestAppendMatchesLibrary(t *testing.T) {
	for _, n := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1 << 20} {
		want, err := cbor.Marshal(make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		got := append(Append(nil, Bytes, n), make([]byte, n)...)
		if !bytes.Equal(got, want) {
			t.Errorf("n=%d: head %x, want %x", n, got[:min(len(got), 9)], want[:min(len(want), 9)])
		}
		m, rest, ok := Read(got, Bytes)
		if !ok || m != n || uint64(len(rest)) != n {
			t.Errorf("n=%d: Read gives %d, %d left, %v", n, m, len(rest), ok)
		}
	}
	for _, n := range []uint64{1 << 32, 1<<64 - 1} {
		if m, _, ok := Read(Append(nil, Uint, n), Uint); !ok || m != n {
			t.Errorf("n=%d: Read gives %d, %v", n, m, ok)
		}
	}
}

// TestReadRefuses: heads that are not in shortest form, of another major
// type, indefinite or cut short are refused.
func TestReadRefuses(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{0x58, 0x17},       // 23 in a one-byte argument
		{0x59, 0x00, 0xff}, // 255 in two bytes
		{0x5a, 0x00, 0x00, 0xff, 0xff},
		{0x5b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		{0x5f},       // indefinite
		{0x59, 0x01}, // cut short
		{0x61, 0x61}, // a text string, not bytes
	} {
		if _, _, ok := Read(b, Bytes); ok {
			t.Errorf("%x accepted", b)
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte{0x58, 0x18}, byte(2))
	f.Fuzz(func(t *testing.T, b []byte, major byte) {
		major &= 7
		n, rest, ok := Read(b, major)
		if !ok {
			return
		}
		if head := Append(nil, major, n); !bytes.Equal(head, b[:len(b)-len(rest)]) {
			t.Fatalf("%x read as %d, written back as %x", b, n, head)
		}
	})
}
