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

// FuzzFrame: decodeFrame's fast path (splitFrame) accepts exactly the
// frames the strict decoder accepts, with the same envelope and body; what
// it refuses goes to the strict decoder.
func FuzzFrame(f *testing.F) {
	f.Add(AppendFrame(nil, []byte("env"), nil))
	f.Add(AppendFrame(nil, []byte("env"), []byte{}))
	f.Add(AppendFrame(nil, bytes.Repeat([]byte{7}, 300), bytes.Repeat([]byte{8}, 70000)))
	f.Add([]byte{0x82, 0x58, 0x01, 0x00, 0xf6}) // a head longer than needed
	f.Add([]byte{0x82, 0x41, 0x00, 0xf7})       // undefined for the body
	f.Add([]byte{0x82, 0x41, 0x00, 0xf6, 0x00}) // trailing bytes
	f.Add([]byte{0x9f, 0x41, 0x00, 0xf6, 0xff}) // indefinite array
	f.Fuzz(func(t *testing.T, b []byte) {
		var ref frame
		refErr := UnmarshalCanonical(b, &ref)
		env, body, fast := splitFrame(b)
		if fast != (refErr == nil) {
			t.Fatalf("%x: fast path %v, strict decoder %v", b, fast, refErr)
		}
		if fast && (!bytes.Equal(env, ref.Env) || (body == nil) != (ref.Body == nil) || !bytes.Equal(body, ref.Body)) {
			t.Fatalf("%x: fast path (%x, %x), strict decoder (%x, %x)", b, env, body, ref.Env, ref.Body)
		}
		denv, dbody, err := decodeFrame(b)
		if (err == nil) != (refErr == nil) || err == nil && (!bytes.Equal(denv, ref.Env) || (dbody == nil) != (ref.Body == nil)) {
			t.Fatalf("%x: decodeFrame (%x, %x, %v), strict decoder %v", b, denv, dbody, err, refErr)
		}
	})
}
