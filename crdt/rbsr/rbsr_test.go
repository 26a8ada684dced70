package rbsr

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// seed returns a fresh seed (or $RBSR_SEED) and logs it so failures can be
// replayed with RBSR_SEED=<seed> go test ./crdt/rbsr/.
func seed(t testing.TB) uint64 {
	s := uint64(time.Now().UnixNano())
	if env := os.Getenv("RBSR_SEED"); env != "" {
		v, err := strconv.ParseUint(env, 10, 64)
		if err != nil {
			t.Fatalf("RBSR_SEED: %v", err)
		}
		s = v
	}
	t.Logf("seed %d (replay with RBSR_SEED=%d)", s, s)
	return s
}

func randCID(rng *rand.Rand) string {
	b := make([]byte, 36)
	copy(b, cidPrefix)
	for i := 4; i < 36; i++ {
		b[i] = byte(rng.UintN(256))
	}
	return string(b)
}

// randItems makes n distinct sorted items with depths in [0, maxDepth).
// varLen gives IDs of 1..40 random bytes drawn from a small alphabet, so
// that IDs share long prefixes.
func randItems(rng *rand.Rand, n int, maxDepth uint64, varLen bool) []Item {
	seen := make(map[Item]bool, n)
	out := make([]Item, 0, n)
	for len(out) < n {
		it := Item{Depth: rng.Uint64N(maxDepth)}
		if varLen {
			b := make([]byte, 1+rng.IntN(MaxIDLen))
			for i := range b {
				b[i] = byte(rng.IntN(3))
			}
			it.ID = string(b)
		} else {
			it.ID = randCID(rng)
		}
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	slices.SortFunc(out, Item.Compare)
	return out
}

func sorted(s []Item) []Item {
	s = slices.Clone(s)
	slices.SortFunc(s, Item.Compare)
	return s
}

type result struct {
	rounds   int // round trips (initiator message answered by responder)
	bytes    int // total bytes both ways
	maxFrame int // largest message either way
	maxA     int // largest initiator message
	maxB     int // largest responder message
}

// run performs a full session between initiator a and responder b.
func run(t testing.TB, a, b *Reconciler, maxRounds int) result {
	t.Helper()
	var res result
	msg, err := a.Initiate()
	if err != nil {
		t.Fatal(err)
	}
	for msg != nil {
		if res.rounds >= maxRounds {
			t.Fatalf("no convergence after %d rounds", res.rounds)
		}
		res.bytes += len(msg)
		res.maxA = max(res.maxA, len(msg))
		reply, err := b.Reconcile(msg)
		if err != nil {
			t.Fatalf("responder round %d: %v", res.rounds, err)
		}
		if reply == nil {
			t.Fatalf("responder returned nil")
		}
		res.rounds++
		res.bytes += len(reply)
		res.maxB = max(res.maxB, len(reply))
		res.maxFrame = max(res.maxA, res.maxB)
		if msg, err = a.Reconcile(reply); err != nil {
			t.Fatalf("initiator round %d: %v", res.rounds, err)
		}
	}
	if !a.Done() {
		t.Fatal("initiator not done")
	}
	return res
}

type scenario struct {
	name                 string
	common, onlyA, onlyB int
}

func scenarios(n int) []scenario {
	tenth := n / 10
	return []scenario{
		{"identical", n, 0, 0},
		{"disjoint", 0, n, n},
		{"one-extra-on-initiator", n, 1, 0},
		{"one-extra-on-responder", n, 0, 1},
		{"one-each", max(n-1, 0), 1, 1},
		{"ten-each", n, min(10, n), min(10, n)},
		{"10pct-each", n - tenth, tenth, tenth},
		{"initiator-empty", 0, 0, n},
		{"responder-empty", 0, n, 0},
	}
}

// buildSets splits one random pool into common, A-only and B-only items.
func buildSets(rng *rand.Rand, sc scenario, varLen bool) (a, b, onlyA, onlyB []Item) {
	total := sc.common + sc.onlyA + sc.onlyB
	pool := randItems(rng, total, uint64(total/8+1), varLen)
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	common := pool[:sc.common]
	onlyA = sorted(pool[sc.common : sc.common+sc.onlyA])
	onlyB = sorted(pool[sc.common+sc.onlyA:])
	a = sorted(append(slices.Clone(common), onlyA...))
	b = sorted(append(slices.Clone(common), onlyB...))
	return
}

func roundBound(n int) int {
	if n <= 32 {
		return 2
	}
	return int(math.Ceil(math.Log(float64(n)/32)/math.Log(16))) + 2
}

func checkSession(t *testing.T, rng *rand.Rand, sc scenario, cfgA, cfgB Config, varLen bool) result {
	t.Helper()
	a, b, onlyA, onlyB := buildSets(rng, sc, varLen)
	ra, err := New(a, cfgA)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := New(b, cfgB)
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, ra, rb, 100000)
	if got := ra.Have(); !slices.Equal(got, onlyA) {
		t.Fatalf("have: got %d items, want %d", len(got), len(onlyA))
	}
	if got := ra.Need(); !slices.Equal(got, onlyB) {
		t.Fatalf("need: got %d items, want %d", len(got), len(onlyB))
	}
	if lim := cfgA.FrameSizeLimit; lim > 0 && res.maxA > lim {
		t.Fatalf("initiator frame of %d bytes exceeds limit %d", res.maxA, lim)
	}
	if lim := cfgB.FrameSizeLimit; lim > 0 && res.maxB > lim {
		t.Fatalf("responder frame of %d bytes exceeds limit %d", res.maxB, lim)
	}
	return res
}

func TestReconcileSizes(t *testing.T) {
	s := seed(t)
	for _, n := range []int{0, 1, 10, 1000, 100_000} {
		for i, sc := range scenarios(n) {
			t.Run(fmt.Sprintf("n=%d/%s", n, sc.name), func(t *testing.T) {
				if testing.Short() && n == 100_000 && sc.name != "identical" {
					t.Skip("short")
				}
				rng := rand.New(rand.NewPCG(s, uint64(n*100+i)))
				res := checkSession(t, rng, sc, Config{}, Config{}, false)
				t.Logf("rounds=%d bytes=%d maxFrame=%d", res.rounds, res.bytes, res.maxFrame)
				switch {
				case sc.name == "identical" && res.rounds != 1:
					t.Errorf("identical sets took %d round trips, want 1", res.rounds)
				case sc.onlyA+sc.onlyB <= 20 && sc.common > 0 && res.rounds > roundBound(n):
					t.Errorf("small difference took %d round trips, want <= %d", res.rounds, roundBound(n))
				}
			})
		}
	}
}

func TestReconcileVariableIDs(t *testing.T) {
	s := seed(t)
	cfgs := []Config{
		{},
		{Branching: 2, IDListThreshold: 2},
		{Branching: 64, IDListThreshold: 300},
		{FrameSizeLimit: 4096, Branching: 300, IDListThreshold: 1000},
	}
	for ci, cfg := range cfgs {
		for i, sc := range scenarios(2000) {
			t.Run(fmt.Sprintf("cfg%d/%s", ci, sc.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(s, uint64(ci*100+i)))
				// The two sides deliberately use different configs.
				checkSession(t, rng, sc, cfg, cfgs[(ci+1)%len(cfgs)], true)
			})
		}
	}
}

func TestFrameSizeLimit(t *testing.T) {
	s := seed(t)
	for _, lim := range []int{MinFrameSizeLimit, 16 << 10} {
		for i, sc := range []scenario{
			{"10pct-each", 18000, 2000, 2000},
			{"disjoint", 0, 5000, 5000},
			{"initiator-empty", 0, 0, 20000},
			{"responder-empty", 0, 20000, 0},
			{"identical", 20000, 0, 0},
		} {
			t.Run(fmt.Sprintf("limit=%d/%s", lim, sc.name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(s, uint64(i)))
				cfg := Config{FrameSizeLimit: lim}
				res := checkSession(t, rng, sc, cfg, cfg, false)
				if res.maxFrame > lim {
					t.Fatalf("frame %d > limit %d", res.maxFrame, lim)
				}
				t.Logf("rounds=%d bytes=%d maxFrame=%d", res.rounds, res.bytes, res.maxFrame)
			})
		}
	}
}

// TestRandomSessions checks exact have/need over many random sessions with
// random sizes, overlaps, ID shapes and per-side configs (including frame limits).
func TestRandomSessions(t *testing.T) {
	s := seed(t)
	iters := 400
	if testing.Short() {
		iters = 50
	}
	randCfg := func(rng *rand.Rand) Config {
		var c Config
		if rng.IntN(2) == 0 {
			c.FrameSizeLimit = MinFrameSizeLimit + rng.IntN(3)*2048
		}
		c.Branching = 2 + rng.IntN(31)
		c.IDListThreshold = 2 + rng.IntN(63)
		return c
	}
	for i := range iters {
		rng := rand.New(rand.NewPCG(s, uint64(i)))
		sc := scenario{common: rng.IntN(3000), onlyA: rng.IntN(300), onlyB: rng.IntN(300)}
		if rng.IntN(4) == 0 {
			sc.onlyA, sc.onlyB = rng.IntN(3), rng.IntN(3)
		}
		cfgA, cfgB := randCfg(rng), randCfg(rng)
		varLen := rng.IntN(3) == 0
		t.Run(fmt.Sprintf("%d", i), func(t *testing.T) {
			checkSession(t, rng, sc, cfgA, cfgB, varLen)
		})
	}
}

func TestSameIDDifferentDepth(t *testing.T) {
	id := randCID(rand.New(rand.NewPCG(1, 2)))
	a := []Item{{Depth: 5, ID: id}}
	b := []Item{{Depth: 6, ID: id}}
	ra, _ := New(a, Config{})
	rb, _ := New(b, Config{})
	run(t, ra, rb, 10)
	if !slices.Equal(ra.Have(), a) || !slices.Equal(ra.Need(), b) {
		t.Fatalf("have %v need %v", ra.Have(), ra.Need())
	}
}

func TestNewValidation(t *testing.T) {
	good := Item{Depth: 1, ID: "a"}
	cases := []struct {
		name  string
		items []Item
		cfg   Config
		want  error
	}{
		{"unsorted", []Item{{Depth: 2, ID: "a"}, good}, Config{}, ErrItems},
		{"duplicate", []Item{good, good}, Config{}, ErrItems},
		{"empty ID", []Item{{Depth: 1}}, Config{}, ErrItems},
		{"long ID", []Item{{Depth: 1, ID: string(make([]byte, 41))}}, Config{}, ErrItems},
		{"max depth", []Item{{Depth: math.MaxUint64, ID: "a"}}, Config{}, ErrItems},
		{"small frame", nil, Config{FrameSizeLimit: 4095}, ErrConfig},
		{"neg frame", nil, Config{FrameSizeLimit: -1}, ErrConfig},
		{"branching 1", nil, Config{Branching: 1}, ErrConfig},
		{"threshold 1", nil, Config{IDListThreshold: 1}, ErrConfig},
	}
	for _, c := range cases {
		if _, err := New(c.items, c.cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := New([]Item{good, {Depth: 1, ID: "b"}, {Depth: 2, ID: "a"}}, Config{FrameSizeLimit: 4096}); err != nil {
		t.Fatal(err)
	}
}

func TestMalformed(t *testing.T) {
	r, _ := New([]Item{{Depth: 1, ID: "a"}}, Config{})
	v := byte(ProtocolVersion)
	cases := map[string][]byte{
		"empty":             {},
		"bad version":       {0x61},
		"truncated bound":   {v, 0x81},
		"missing mode":      {v, 2, 0},
		"unknown mode":      {v, 2, 0, 7},
		"short fingerprint": {v, 2, 0, 1, 1, 2, 3},
		"inf with prefix":   {v, 0, 1, 'a', 0},
		"long prefix":       append([]byte{v, 2, 41}, make([]byte, 41)...),
		"not ascending":     {v, 2, 0, 0, 1, 0, 0},
		"after infinity":    {v, 0, 0, 0, 2, 0, 0},
		"zero first bound":  {v, 1, 0, 0},
		"huge count":        {v, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"item out of range": {v, 3, 0, 2, 1, 5, 1, 'a'},
		"items not sorted":  {v, 0, 0, 2, 2, 1, 1, 'b', 0, 1, 'a'},
		"empty item ID":     {v, 0, 0, 2, 1, 1, 0, 0},
		"varint overflow":   {v, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"depth overflow":    {v, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0, 2, 0, 0},
	}
	for name, msg := range cases {
		if _, err := r.Reconcile(msg); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	// Valid: lone version byte (nothing to do), and a trailing Skip.
	for _, msg := range [][]byte{{v}, {v, 0, 0, 0}} {
		if out, err := r.Reconcile(msg); err != nil || !bytes.Equal(out, []byte{v}) {
			t.Errorf("%x: got %x, %v", msg, out, err)
		}
	}
}

func TestStateErrors(t *testing.T) {
	r, _ := New(nil, Config{})
	msg, _ := r.Initiate()
	resp, _ := New(nil, Config{})
	reply, err := resp.Reconcile(msg)
	if err != nil {
		t.Fatal(err)
	}
	if next, err := r.Reconcile(reply); next != nil || err != nil {
		t.Fatalf("got %x, %v", next, err)
	}
	if _, err := r.Reconcile(reply); !errors.Is(err, ErrState) {
		t.Fatalf("after done: %v", err)
	}
	// Initiate restarts the session.
	if _, err := r.Initiate(); err != nil || r.Done() {
		t.Fatal("restart failed")
	}
}

// fuzzSets are fixed sets used by FuzzReconcile and its seed corpus.
func fuzzSets() (a, b []Item) {
	rng := rand.New(rand.NewPCG(7, 7))
	a, b, _, _ = buildSets(rng, scenario{"", 300, 40, 40}, false)
	return a, b
}

func FuzzReconcile(f *testing.F) {
	a, b := fuzzSets()
	// Seed corpus: every message of real sessions.
	for _, cfg := range []Config{{}, {FrameSizeLimit: 4096, Branching: 4, IDListThreshold: 8}} {
		ra, _ := New(a, cfg)
		rb, _ := New(b, cfg)
		msg, _ := ra.Initiate()
		for msg != nil {
			f.Add(msg)
			reply, err := rb.Reconcile(msg)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(reply)
			if msg, err = ra.Reconcile(reply); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Add([]byte{})
	f.Add([]byte{ProtocolVersion})
	cfg := Config{FrameSizeLimit: 4096}
	resp, _ := New(b, cfg)
	f.Fuzz(func(t *testing.T, data []byte) {
		reply, err := resp.Reconcile(data)
		if err == nil {
			if reply == nil || len(reply) > cfg.FrameSizeLimit {
				t.Fatalf("bad responder reply of %d bytes", len(reply))
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
		init, _ := New(a, Config{})
		if _, err := init.Initiate(); err != nil {
			t.Fatal(err)
		}
		if _, err := init.Reconcile(data); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("unexpected error %v", err)
		}
		_, _ = init.Have(), init.Need()
	})
}

func BenchmarkReconcile(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 100_000
	sa, sb, _, _ := buildSets(rng, scenario{"", n - n/100, n / 100, n / 100}, false)
	ra, err := New(sa, Config{})
	if err != nil {
		b.Fatal(err)
	}
	rb, err := New(sb, Config{})
	if err != nil {
		b.Fatal(err)
	}
	var res result
	b.ResetTimer()
	for b.Loop() {
		res = run(b, ra, rb, 1000)
	}
	b.ReportMetric(float64(res.rounds), "rounds")
	b.ReportMetric(float64(res.bytes), "bytes")
	if len(ra.Have()) != n/100 || len(ra.Need()) != n/100 {
		b.Fatalf("have %d need %d", len(ra.Have()), len(ra.Need()))
	}
}
