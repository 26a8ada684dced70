package timeline

import (
	"fmt"
	"testing"
)

// BenchmarkRebuild measures the cost of Messages after one new item in a
// room of 5000 items (a quarter of them edits and reactions).
func BenchmarkRebuild(b *testing.B) {
	w := newWorld()
	for i := 0; i < 5000; i++ {
		switch {
		case i%4 == 3:
			w.do(b, fmt.Sprintf("bob react e%d 👍", i-2), false)
		default:
			w.do(b, fmt.Sprintf("alice md message **%d**", i), false)
		}
	}
	_ = w.p.Messages()
	extra := w.do(b, "carol say one more", true).item
	b.ResetTimer()
	for b.Loop() {
		w.p.Add(extra)
		w.p.v = nil
		_ = w.p.Messages()
	}
}
