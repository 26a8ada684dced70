package crdt

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestAppendFrameIsCanonical: AppendFrame writes what the canonical CBOR
// encoder writes for a frame, at every length class of envelope and body,
// a purged (nil) body and an empty one included.
func TestAppendFrameIsCanonical(t *testing.T) {
	const seed = 16
	rng := rand.New(rand.NewPCG(seed, seed))
	lens := []int{0, 1, 23, 24, 255, 256, 65535, 65536, 70000}
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for _, le := range lens {
		for _, lb := range append([]int{-1}, lens...) {
			env := fill(le)
			var body []byte
			if lb >= 0 {
				body = fill(lb)
			}
			want, err := encMode.Marshal(frame{Env: env, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("prefix")
			got := AppendFrame(bytes.Clone(prefix), env, body)
			if !bytes.Equal(got[:len(prefix)], prefix) || !bytes.Equal(got[len(prefix):], want) {
				t.Fatalf("seed %d: envelope of %d octets, body of %d (-1: nil): AppendFrame differs from the canonical encoding", seed, le, lb)
			}
		}
	}
}
