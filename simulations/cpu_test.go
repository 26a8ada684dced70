package simulations

import (
	"context"
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
				m := newCPUModel(tc.cpu, tc.nodes)
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
				r := m.report(tc.nodes, n, time.Duration(n)*c)
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

// TestCPUModelHop: on two nodes linked by 20 ms, every delivery takes the
// link latency alone without the model, and the link plus the receiver's
// verify and apply costs with it (per-byte cost 0, one message a second:
// no queueing), exactly, in virtual time.
func TestCPUModelHop(t *testing.T) {
	if testing.Short() {
		t.Skip("two simulated runs")
	}
	sc, err := Parse([]byte(`name: hop
nodes: 2
duration: 10s
warmup: 2s
drain: 10s
topology: {kind: line}
links: {latency: 20ms}
room: {writers: 0, rate: 1, size: 200}
`))
	if err != nil {
		t.Fatal(err)
	}
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
