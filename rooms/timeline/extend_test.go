package timeline

import (
	"reflect"
	"testing"
)

// TestViewExtendsLikeRebuild: a projection viewed after every input (so
// that appended messages extend the view instead of rebuilding it) shows
// exactly what one viewed once at the end shows, for random item sets in
// their causal order (where most inputs append) and shuffled.
func TestViewExtendsLikeRebuild(t *testing.T) {
	seed, rng := seededRand(t, 0xe87e)
	extended := 0
	for s := 0; s < 24; s++ {
		w := randomWorld(t, rng, 40)
		// Mostly in order, with some inputs held back to a random later
		// place (a reply before its target, a receipt among messages), or
		// shuffled.
		ops := append([]op(nil), w.ops...)
		if s%4 == 3 {
			rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
		} else {
			for range s % 4 * 5 {
				i := rng.IntN(len(ops))
				j := i + rng.IntN(len(ops)-i)
				o := ops[i]
				copy(ops[i:j], ops[i+1:j+1])
				ops[j] = o
			}
		}
		p := New()
		for k, o := range ops {
			o.apply(p)
			before, fresh := p.v, len(p.fresh)
			got := p.Messages()
			if before != nil && fresh > 0 && p.v == before {
				extended++
			}
			once := w.fold(ops[:k+1], nil)
			if !reflect.DeepEqual(got, once.Messages()) || !reflect.DeepEqual(p.Ignored(), once.Ignored()) {
				t.Fatalf("seed %d, scenario %d, after input %d: viewed after every input:\n%s--- viewed once:\n%s", seed, s, k, w.dump(p), w.dump(once))
			}
		}
	}
	t.Logf("%d views extended", extended)
	if extended == 0 {
		t.Fatalf("seed %d: no input extended a view", seed)
	}
}
