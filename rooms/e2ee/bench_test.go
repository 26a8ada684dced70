package e2ee

import (
	"crypto/rand"
	"testing"
)

// BenchmarkRotate: a rotation for a room of 100 member devices (with a
// back-link to the previous epoch), as the issue asks: ms/op to create and
// the bytes it puts on the wire. Goals: < 50 ms, < 150 KB.
func BenchmarkRotate(b *testing.B) {
	r := seeded(70)
	ds := devices(b, r, 100)
	_, prev := rotate(b, r, ds[0], ReasonCreate, ds[:1])
	p := RotateParams{Room: testRoom, Sender: ds[0].ID(), Reason: ReasonKick, Recipients: records(ds...), Supersedes: []*EpochKey{prev}}
	var size int
	b.ReportAllocs()
	for b.Loop() {
		rot, _, err := Rotate(rand.Reader, p)
		if err != nil {
			b.Fatal(err)
		}
		enc, err := rot.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		size = len(enc)
	}
	b.ReportMetric(float64(b.Elapsed())/1e6/float64(b.N), "ms/op")
	b.ReportMetric(float64(size), "wire-bytes")
}

// BenchmarkOpenRotation: one recipient's cost to decode a 100-device
// rotation and unwrap its secret.
func BenchmarkOpenRotation(b *testing.B) {
	r := seeded(71)
	ds := devices(b, r, 100)
	rot, _ := rotate(b, r, ds[0], ReasonKick, ds)
	enc, _ := rot.Marshal()
	me := ds[57].KEM()
	for b.Loop() {
		got, err := DecodeRotation(testRoom, ds[0].ID(), enc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := got.Open(me); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkMessage(b *testing.B, size int, open bool) {
	c := newChat(b)
	h := mustHeader(b, c)
	msg := make([]byte, size)
	body, _ := c.key.Seal(rand.Reader, h, msg)
	b.SetBytes(int64(size))
	for b.Loop() {
		var err error
		if open {
			_, err = c.key.Open(h, body)
		} else {
			_, err = c.key.Seal(rand.Reader, h, msg)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal1K(b *testing.B) { benchmarkMessage(b, 1000, false) }
func BenchmarkOpen1K(b *testing.B) { benchmarkMessage(b, 1000, true) }

func BenchmarkSafetyNumber(b *testing.B) {
	r := seeded(72)
	x, y := newDevice(b, r, nil), newDevice(b, r, nil)
	for b.Loop() {
		SafetyNumber(x.id.User, y.id.User)
	}
}
