package timeline

import (
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// FuzzProjection feeds arbitrary bytes as the content of three items next
// to a small conversation: the projection never panics, answers every
// query, and gives the same answers in reverse order.
func FuzzProjection(f *testing.F) {
	seed := fuzzBase(f)
	for _, l := range []string{"m", "r", "t", "e", "u"} {
		f.Add(seed.raw(l), seed.raw("m"), []byte{0xff}, byte(0))
	}
	f.Add([]byte{}, []byte{0x87}, []byte(nil), byte(0xff))
	f.Fuzz(func(t *testing.T, a, b, c []byte, mask byte) {
		w := fuzzBase(t)
		for i, content := range [][]byte{a, b, c} {
			label := string(rune('x' + i))
			user := []string{"alice", "bob"}[mask>>i&1]
			it := Item{ID: crdt.IDOf([]byte("fuzz/" + label)), Depth: uint64(mask>>(2*i)&3) + 1,
				Sender: w.user(user), Device: sha256.Sum256([]byte(user)), Content: content}
			w.byEvent[it.ID] = label
			w.ops = append(w.ops, op{item: &it})
			if mask>>(i+3)&1 == 1 {
				w.ops = append(w.ops, op{redact: it.ID})
			}
		}
		w.ops = append(w.ops, op{receipt: &Receipt{User: w.user("bob"), Event: crdt.IDOf([]byte("fuzz/y")), Depth: uint64(mask & 3)}})
		want := w.dump(w.fold(w.ops, nil))
		rev := slices.Clone(w.ops)
		slices.Reverse(rev)
		if got := w.dump(w.fold(rev, nil)); got != want {
			t.Fatalf("reverse order differs:\n--- forward\n%s--- reverse\n%s", want, got)
		}
	})
}

// fuzzBase is a conversation with one of each relation, held back from
// w.p (the fuzz target folds w.ops itself).
func fuzzBase(t testing.TB) *world {
	w := newWorld()
	for _, l := range []string{
		"alice md **hi** as=m", "bob react m 👍 as=r", "bob thread m m in a thread as=t",
		"alice edit m hello as=e", "bob unreact r as=u",
	} {
		w.do(t, l, true)
	}
	return w
}

func (w *world) raw(label string) []byte {
	b, _, err := w.labels[label].c.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}
