package timeline

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (0: from the clock; the seed is printed)")

// seededRand returns the seed of a randomized test (-seed, else the
// clock's), printed so that a failure can be rerun, and a source on it
// (stream tells the tests' sources apart).
func seededRand(t *testing.T, stream uint64) (uint64, *rand.Rand) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	return seed, rand.New(rand.NewPCG(seed, stream))
}

// TestConvergence is the property of the package doc: random item sets
// with concurrent edits (also by other users), reactions added and
// withdrawn by several users at one depth (as on different nodes),
// replies and thread replies, copies, garbage, redactions of targets and
// of relations, and receipts give identical output in 50 shuffled orders.
func TestConvergence(t *testing.T) {
	seed, rng := seededRand(t, 0x5eed)
	for s := 0; s < 20; s++ {
		w := randomWorld(t, rng, 40)
		if err := w.converges(50, rng.Uint64()); err != nil {
			t.Fatalf("seed %d, scenario %d: %v", seed, s, err)
		}
	}
}

// randomWorld builds n random actions, then redacts about one item in
// seven and gives every user a random read marker.
func randomWorld(t *testing.T, rng *rand.Rand, n int) *world {
	users := []string{"alice", "bob", "carol", "dave"}
	keys := []string{"👍", "🎉", "ok"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	w := newWorld()
	var msgs, reacts, all []string
	author := map[string]string{}
	depth := uint64(1)
	for i := 0; i < n; i++ {
		if rng.IntN(5) >= 2 { // else concurrent with the previous action
			depth++
		}
		user := pick(users)
		var line string
		r := rng.IntN(100)
		switch {
		case len(msgs) == 0 || r < 20:
			line = fmt.Sprintf("%s say m%d", user, i)
		case r < 25:
			line = fmt.Sprintf("%s md *m%d*", user, i)
		case r < 33:
			line = fmt.Sprintf("%s reply %s re%d", user, pick(msgs), i)
		case r < 41:
			line = fmt.Sprintf("%s thread %s %s th%d", user, pick(msgs), pick(msgs), i)
		case r < 56:
			m := pick(msgs)
			if rng.IntN(5) > 0 {
				user = author[m]
			}
			line = fmt.Sprintf("%s edit %s ed%d", user, m, i)
		case r < 59:
			m := pick(msgs)
			line = fmt.Sprintf("%s delete %s", author[m], m)
		case r < 75:
			line = fmt.Sprintf("%s react %s %s", user, pick(msgs), pick(keys))
		case r < 88 && len(reacts) > 0:
			re := pick(reacts)
			if rng.IntN(5) > 0 {
				user = author[re]
			}
			line = fmt.Sprintf("%s unreact %s", user, re)
		case r < 92:
			line = fmt.Sprintf("%s copy %s", user, pick(msgs))
		case r < 94:
			line = fmt.Sprintf("%s react %s %s", user, pick(all), pick(keys))
		case r < 96:
			line = user + " raw ff"
		default:
			line = user + " purged"
		}
		m := w.do(t, fmt.Sprintf("%s depth=%d", line, depth), true)
		author[m.label] = user
		all = append(all, m.label)
		switch verb := strings.Fields(line)[1]; verb {
		case "say", "md", "reply", "thread":
			msgs = append(msgs, m.label)
		case "react":
			reacts = append(reacts, m.label)
		}
	}
	for _, l := range all {
		if rng.IntN(7) == 0 {
			w.redact(t, l)
		}
	}
	for _, u := range users {
		w.read(t, u, pick(all))
		w.read(t, u, pick(all))
	}
	return w
}
