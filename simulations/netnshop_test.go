package simulations

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseGossipTrace(t *testing.T) {
	in := "aa01 peerA 1000 1500\nbb02 peerB 2000 2000\naa01 peerC 9000 9500\naa01 peerD 1700 -\naa01 applied 1600 1600\n"
	tr, err := parseGossipTrace(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.first) != 2 || tr.first["aa01"] != (traceMark{"peerA", 1000, 1500}) || tr.first["bb02"] != (traceMark{"peerB", 2000, 2000}) {
		t.Errorf("trace %+v: want two marks, the first line of aa01 kept", tr.first)
	}
	if len(tr.dups) != 1 || tr.dups[0] != (traceCopy{"aa01", traceMark{"peerD", 1700, 0}}) {
		t.Errorf("duplicates %+v", tr.dups)
	}
	if len(tr.applied) != 1 || tr.applied["aa01"] != 1600 {
		t.Errorf("applied %v", tr.applied)
	}
	for _, bad := range []string{
		"aa01 peerA 1000\n",                   // three fields
		"zz01 peerA 1000 1500\n",              // not hex
		"aa01 peerA 1000 999\n",               // delivered before taken
		"aa01 peerA -5 1\n",                   // negative
		"aa01 peerA 1e3 2000\n",               // not an integer
		strings.Repeat("a", 600) + " p 1 2\n", // over a line's bound
	} {
		if _, err := parseGossipTrace(strings.NewReader(bad)); err == nil || !strings.HasPrefix(err.Error(), "gossip trace: ") {
			t.Errorf("%.40q: error %v", bad, err)
		}
	}
}

func FuzzParseGossipTrace(f *testing.F) {
	f.Add("aa01 peerA 1000 1500\nbb02 peerB 2000 2000\n")
	f.Add("aa01 peerA 1000\n")
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := parseGossipTrace(strings.NewReader(s))
		if err != nil {
			return
		}
		for id, m := range tr.first {
			if id == "" || m.in <= 0 || m.valid < m.in {
				t.Fatalf("accepted %q: %+v", id, m)
			}
		}
		for _, c := range tr.dups {
			if c.id == "" || c.in <= 0 || c.valid != 0 {
				t.Fatalf("accepted duplicate %+v", c)
			}
		}
	})
}

// TestHopExcess: a message from node 0 reaches 1 from 0 and 2 from 1 over
// 20 ms links, and 1 again from 2; each hop is the receiver's taking less
// the sender's forwarding less the link; an untraced sender or a
// non-neighbour is skipped.
func TestHopExcess(t *testing.T) {
	ms := int64(time.Millisecond)
	traces := []*gossipTrace{
		{first: map[string]traceMark{"m1": {"P0", 100 * ms, 100 * ms}, "m2": {"P0", 500 * ms, 500 * ms}}},
		{first: map[string]traceMark{"m1": {"P0", 123 * ms, 124 * ms}, "m2": {"P0", 521 * ms, 522 * ms}},
			dups: []traceCopy{{"m1", traceMark{"P2", 175 * ms, 0}}, {"m9", traceMark{"P2", 175 * ms, 0}}}},
		{first: map[string]traceMark{"m1": {"P1", 150 * ms, 151 * ms}, "m2": {"P3", 600 * ms, 601 * ms}}},
		nil,
	}
	node := map[string]int{"P0": 0, "P1": 1, "P2": 2, "P3": 3}
	link := func(a, b int) (time.Duration, bool) {
		if a+1 == b || b+1 == a {
			return 20 * time.Millisecond, true
		}
		return 0, false
	}
	got := hopExcess(traces, node, link, []string{"m1", "m2", "m3"}, false)
	slices.Sort(got)
	if want := []float64{1, 3, 6}; !slices.Equal(got, want) {
		t.Errorf("first hops %v, want %v", got, want)
	}
	all := hopExcess(traces, node, link, []string{"m1", "m2", "m3"}, true)
	slices.Sort(all)
	if want := []float64{1, 3, 4, 6}; !slices.Equal(all, want) {
		t.Errorf("all hops %v, want %v", all, want)
	}
	traces[1].applied = map[string]int64{"m1": 130 * ms}
	traces[2].applied = map[string]int64{"m1": 160 * ms, "m2": 610 * ms}
	pl := pathLatency(traces, []string{"m1", "m2"}, []int{0, 0})
	slices.Sort(pl)
	if want := []float64{30, 60, 110}; !slices.Equal(pl, want) {
		t.Errorf("path latencies %v, want %v", pl, want)
	}
	val, app := stageWalls(traces, []string{"P0", "P1", "P2", "P3"}, []string{"m1", "m2"})
	slices.Sort(app)
	if !slices.Equal(val, []float64{1, 1, 1, 1}) || !slices.Equal(app, []float64{6, 9, 9}) {
		t.Errorf("stage walls: validate %v, apply %v", val, app)
	}
	at := func(v ...int64) []time.Time {
		var out []time.Time
		for _, x := range v {
			if x == 0 {
				out = append(out, time.Time{})
			} else {
				out = append(out, time.Unix(0, x*ms))
			}
		}
		return out
	}
	msgs := []traceMsg{{id: "m1", watch: at(100, 126, 155, 0)}, {k: 1, id: "m2", watch: at(500, 523, 0, 0)}}
	dec := decompose(traces, node, link, func(a, b int) int { return 1 }, msgs)
	if dec == nil || dec.Deliveries != 3 || dec.Longer != 1 || dec.LatencyMS.Max != 55 || dec.PathMS.Max != 51 || dec.LinksMS.Max != 40 ||
		dec.HopsMS.Max != 9 || dec.ValidateMS.Max != 2 || dec.AfterMS.Max != 4 || dec.AfterMS.P50 != 2 {
		t.Errorf("decomposition %+v", dec)
	}
	if decompose(traces, node, link, func(a, b int) int { return 1 }, nil) != nil {
		t.Error("a decomposition of no messages")
	}
	if d := duplicatesPer(traces, []string{"P0", "P1", "P2", "P3"}, []string{"m1", "m2", "m3"}); d != 0.25 {
		t.Errorf("duplicates per delivery %v, want 1 of 4", d)
	}
	h := hopReport(got)
	if h.Count != 3 || h.P50MS != 3 || h.MeanMS != 3.33 || len(h.PercentilesMS) != 101 || h.PercentilesMS[0] != 1 || h.PercentilesMS[100] != 6 {
		t.Errorf("report %+v", h)
	}
	if err := validHop("hop_ms", h.PercentilesMS); err != nil {
		t.Error(err)
	}
	if hopReport(nil) != nil {
		t.Error("a report of no hops")
	}
}

func TestDrawHop(t *testing.T) {
	p := make([]float64, 101)
	for k := range p {
		p[k] = float64(k) / 10 // 0 to 10 ms, uniform
	}
	if err := validHop("hop_ms", p); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		u    float64
		want time.Duration
	}{{0, 0}, {0.5, 5 * time.Millisecond}, {0.255, 2550 * time.Microsecond}, {0.9999, 9999 * time.Microsecond}} {
		if got := drawHop(p, c.u); (got - c.want).Abs() > time.Microsecond {
			t.Errorf("draw at %v: %v, want %v", c.u, got, c.want)
		}
	}
	for _, bad := range [][]float64{{1, 2}, append(slices.Clone(p[:100]), 1), append([]float64{-1}, p[1:]...)} {
		if validHop("hop_ms", bad) == nil {
			t.Errorf("%v...: valid", bad[:2])
		}
	}
	if drawHop(nil, 0.5) != 0 {
		t.Error("no distribution: a delay")
	}
}

// TestCPUModelHopDelay: on two nodes linked by 20 ms, with a hop delay of
// exactly 4 ms (every percentile: every frame a node receives is held
// 4 ms), every delivery takes the link, the hop delay and verify and
// apply, in virtual time.
func TestCPUModelHopDelay(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated run")
	}
	sc := lineScenario(t, "hopdelay", 2, 10*time.Second, 20*time.Millisecond, "{writers: 0, rate: 1, size: 200}")
	sc.CPU = &CPU{Verify: Duration(time.Millisecond), Apply: Duration(2 * time.Millisecond), Measured: true, Hop: make([]float64, 101)}
	for k := range sc.CPU.Hop {
		sc.CPU.Hop[k] = 4
	}
	sc.CPU.defaults()
	rep, err := Run(context.Background(), sc, RunOptions{T: t})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completeness != 1 || rep.LatencyMS.P50 != 27 || rep.LatencyMS.Max != 27 {
		t.Errorf("completeness %v, latency %+v, want 27 ms for every delivery", rep.Completeness, rep.LatencyMS)
	}
	// The stages as drawn wall times instead (3 and 5 ms): 32 ms.
	sc.CPU.ValidateMS, sc.CPU.ApplyMS = make([]float64, 101), make([]float64, 101)
	for k := range sc.CPU.ValidateMS {
		sc.CPU.ValidateMS[k], sc.CPU.ApplyMS[k] = 3, 5
	}
	if rep, err = Run(context.Background(), sc, RunOptions{T: t}); err != nil {
		t.Fatal(err)
	}
	if rep.Completeness != 1 || rep.LatencyMS.P50 != 32 || rep.LatencyMS.Max != 32 {
		t.Errorf("stage walls: completeness %v, latency %+v, want 32 ms for every delivery", rep.Completeness, rep.LatencyMS)
	}
}

// TestFrameDelayQueue: drawn per frame, a node's frame delays vary; with
// hop_queue, frames arriving at one instant are released in order, so
// each waits at least as long as the one before it.
func TestFrameDelayQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := make([]float64, 101)
		for k := range p {
			p[k] = float64(k)
		}
		for _, queue := range []bool{false, true} {
			c := &CPU{Hop: p, HopQueue: queue}
			c.defaults()
			f := newCPUModel(c, 1, 7).frameDelay(0)
			var ds []time.Duration
			for range 50 {
				ds = append(ds, f(100))
			}
			if sorted := slices.IsSorted(ds); sorted != queue {
				t.Errorf("hop_queue %v: delays sorted %v: %v", queue, sorted, ds[:8])
			}
		}
		if newCPUModel(&CPU{Cores: 1, Share: 1}, 1, 7).frameDelay(0) != nil {
			t.Error("a frame delay without hop_ms")
		}
	})
}

// TestPathKB: with per_kb_path, a frame's work is charged on the path: an
// inbound frame is released once a core has done it (frames of two nodes
// on a machine of one core queue one behind the other), an outbound one is
// written once a core has done it, and the bytes are counted but not
// charged again beside.
func TestPathKB(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &CPU{Cores: 1, Share: 1, Machine: 1, PerKB: Duration(time.Millisecond), PathKB: true, Measured: true}
		c.defaults()
		m := newCPUModel(c, 2, 7)
		start := time.Now()
		var done [2]time.Duration
		var wg sync.WaitGroup
		for i := range 2 {
			f := m.frameDelay(i)
			wg.Go(func() {
				if d := f(2048); d != 0 {
					t.Errorf("node %d: a delay of %v beside the work", i, d)
				}
				done[i] = time.Since(start)
			})
		}
		wg.Wait()
		slices.Sort(done[:])
		if want := [2]time.Duration{2 * time.Millisecond, 4 * time.Millisecond}; done != want {
			t.Errorf("frames released at %v, want %v", done, want)
		}
		start = time.Now()
		m.frameSend(1)(3072)
		if d := time.Since(start); d != 3*time.Millisecond {
			t.Errorf("a 3 KiB frame written after %v, want 3ms", d)
		}
		m.startMeasuring(time.Now())
		time.Sleep(time.Millisecond)
		m.background(0, 1024)
		time.Sleep(10 * time.Millisecond)
		if m.busy[0] != 0 || m.bytes[0] != 1024 {
			t.Errorf("beside: busy %v, bytes %d; want none charged, 1024 counted", m.busy[0], m.bytes[0])
		}
	})
	off := newCPUModel(&CPU{Cores: 1, Share: 1, PathKB: true, Measured: true}, 1, 7)
	if off.frameDelay(0) != nil || off.frameSend(0) != nil {
		t.Error("frame charges with per_kb_path but no per_kb")
	}
}

// TestFloodKB: the model's bytes are counted per 5 ms from the traffic
// start, and a flood takes every bin it overlaps.
func TestFloodKB(t *testing.T) {
	m := newCPUModel(&CPU{Cores: 1, Share: 1}, 1, 1)
	m.binned = []int64{1024, 2048, 4096, 1024}
	if kb := m.floodKB([][2]time.Duration{{5 * time.Millisecond, 12 * time.Millisecond}}); kb != 6 {
		t.Errorf("flood KiB %v, want 6", kb)
	}
	if kb := m.floodKB([][2]time.Duration{{0, 2 * time.Millisecond}, {16 * time.Millisecond, time.Second}}); kb != 2 {
		t.Errorf("two floods: %v KiB, want 2", kb)
	}
}
