package mimi

import (
	"bytes"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to
// the same bytes, decodes again to the same encoding and has an ID when it
// names its URIs.
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.cbor)
	}
	f.Add([]byte{0x87})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Encode(c)
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
		c2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		third, _ := Encode(c2)
		if !bytes.Equal(third, b) {
			t.Fatal("decode-encode not stable")
		}
		_ = Fallback(c, c2)
		_ = c.MediaParts()
		if plain, md := c.Text(); md != "" {
			_ = RenderMarkdown(md)
			_ = plain
		}
	})
}
