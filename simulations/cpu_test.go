package simulations

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// burst charges n pieces of work of cost c at once, spread over the given
// nodes round-robin, and returns when each finished, sorted.
func burst(m *cpuModel, nodes, n int, c time.Duration) []time.Duration {
	start := time.Now()
	var mu sync.Mutex
	var done []time.Duration
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.charge(k%nodes, c, true)
			mu.Lock()
			done = append(done, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(done)
	return done
}

// TestCPUModelQueueing: a burst of N events on a node with one virtual core
// finishes at c, 2c, ..., N×c in virtual time; two cores halve the queue,
// a share of 0.5 doubles each cost, a shared machine of one core queues
// two nodes' work behind each other, and without the model nothing waits.
func TestCPUModelQueueing(t *testing.T) {
	const n, c = 10, time.Millisecond
	cases := []struct {
		name  string
		cpu   *CPU
		nodes int
		want  func(k int) time.Duration // k-th finish (0-based)
	}{
		{"off", nil, 1, func(int) time.Duration { return 0 }},
		{"1 core", &CPU{Cores: 1, Share: 1}, 1, func(k int) time.Duration { return time.Duration(k+1) * c }},
		{"2 cores", &CPU{Cores: 2, Share: 1}, 1, func(k int) time.Duration { return time.Duration(k/2+1) * c }},
		{"share 0.5", &CPU{Cores: 1, Share: 0.5}, 1, func(k int) time.Duration { return time.Duration(k+1) * 2 * c }},
		{"2 nodes, own cores", &CPU{Cores: 1, Share: 1}, 2, func(k int) time.Duration { return time.Duration(k/2+1) * c }},
		{"2 nodes, machine of 1", &CPU{Cores: 1, Share: 1, Machine: 1}, 2, func(k int) time.Duration { return time.Duration(k+1) * c }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newCPUModel(tc.cpu, tc.nodes, 1)
				m.startMeasuring(time.Now().Add(-time.Nanosecond))
				got := burst(m, tc.nodes, n, c)
				for k, d := range got {
					if d != tc.want(k) {
						t.Fatalf("finish times %v: #%d is %v, want %v", got, k, d, tc.want(k))
					}
				}
				if m == nil {
					return
				}
				r := m.report(tc.nodes, n, time.Duration(n)*c, nil)
				if want := float64(n) * m.cost(c).Seconds() / (float64(n) * c.Seconds()); r.CoresMean != want {
					t.Errorf("cores_mean %v, want %v", r.CoresMean, want)
				}
				if r.WaitMS.Max != ms(tc.want(n-1)-m.cost(c)) {
					t.Errorf("longest wait %v ms, want %v", r.WaitMS.Max, ms(tc.want(n-1)-m.cost(c)))
				}
			})
		})
	}
}

// lineScenario is a scenario of nodes on a line with the given links,
// traffic phase and room line, 2 s of warm-up and 10 s of drain.
func lineScenario(t *testing.T, name string, nodes int, dur, latency time.Duration, room string) *Scenario {
	t.Helper()
	sc, err := Parse(fmt.Appendf(nil, "name: %s\nseed: 3\nnodes: %d\nduration: %v\nwarmup: 2s\ndrain: 10s\ntopology: {kind: line}\nlinks: {latency: %v}\nroom: %s\n",
		name, nodes, dur, latency, room))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// TestCPUModelHop: on two nodes linked by 20 ms, every delivery takes the
// link latency alone without the model, and the link plus the receiver's
// verify and apply costs with it (per-byte cost 0, one message a second:
// no queueing), exactly, in virtual time.
func TestCPUModelHop(t *testing.T) {
	if testing.Short() {
		t.Skip("two simulated runs")
	}
	sc := lineScenario(t, "hop", 2, 10*time.Second, 20*time.Millisecond, "{writers: 0, rate: 1, size: 200}")
	for _, on := range []bool{false, true} {
		want := 20.0
		sc.CPU = nil
		if on {
			sc.CPU = &CPU{Verify: Duration(time.Millisecond), Apply: Duration(2 * time.Millisecond)}
			sc.CPU.defaults()
			sc.CPU.PerKB = 0
			want = 23
		}
		rep, err := Run(context.Background(), sc, RunOptions{T: t})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cpu %v: published %d, latency %+v, cpu %+v", on, rep.EventsPublished, rep.LatencyMS, rep.CPU)
		if rep.Completeness != 1 || rep.EventsPublished == 0 {
			t.Fatalf("completeness %v, published %d", rep.Completeness, rep.EventsPublished)
		}
		if rep.LatencyMS.P50 != want || rep.LatencyMS.Max != want {
			t.Errorf("cpu %v: latency %+v, want %v ms for every delivery", on, rep.LatencyMS, want)
		}
		if on != (rep.CPU != nil) {
			t.Errorf("cpu %v: report's cpu %+v", on, rep.CPU)
		}
	}
}

// TestCPUModelWakeup: with a wakeup delay, verify and apply first wait an
// exponential time of that mean, drawn from the node's seeded stream: the
// same seed gives the same delays, and their mean is the configured one.
func TestCPUModelWakeup(t *testing.T) {
	const n, c, mean = 400, time.Microsecond, 2 * time.Millisecond
	seq := func(seed uint64) []time.Duration {
		var out []time.Duration
		synctest.Test(t, func(t *testing.T) {
			m := newCPUModel(&CPU{Cores: 1, Share: 1, Wakeup: Duration(mean)}, 1, seed)
			for range n {
				t0 := time.Now()
				m.charge(0, c, true)
				out = append(out, time.Since(t0)-c)
			}
		})
		return out
	}
	a, b, other := seq(1), seq(1), seq(2)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different wake-up delays")
	}
	if slices.Equal(a, other) {
		t.Fatal("different seeds, same wake-up delays")
	}
	var sum time.Duration
	for _, d := range a {
		sum += d
	}
	if got := sum / n; got < mean*8/10 || got > mean*12/10 {
		t.Errorf("mean wake-up delay %v, want about %v", got, mean)
	}
}

// TestCPUExampleParses: the example scenario with a cpu block loads, with
// the calibration defaults filled in.
func TestCPUExampleParses(t *testing.T) {
	sc, err := Load("examples/gossip-latency-cpu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c := sc.CPU; c == nil || c.Machine != 2 || c.Share != 0.3 || c.Verify.D() != cpuCalibration.verify || c.Apply.D() != cpuCalibration.apply {
		t.Fatalf("cpu block %+v", sc.CPU)
	}
	if _, err := Parse([]byte("name: x\ncpu: {share: 0}\n")); err != nil {
		t.Fatalf("share 0 (default 1) refused: %v", err)
	}
	if _, err := Parse([]byte("name: x\ncpu: {share: -1}\n")); err == nil {
		t.Fatal("negative share accepted")
	}
	if _, err := Parse([]byte("name: x\ncpu: {cores: 1, bogus: 1}\n")); err == nil {
		t.Fatal("unknown cpu key accepted")
	}
}
