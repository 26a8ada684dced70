package simulations

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// netnsReport is a netns run's report as CPUFrom reads it: 50 daemons that
// used 0.764 cores in the warm-up and 0.968 during traffic, 883.48 ms of
// CPU per message over 66 messages.
func netnsReport() *Report {
	return &Report{Scenario: "gossip-latency", Seed: 1, Nodes: 50, EventsPublished: 66, Backend: "netns (real parley daemons)",
		Completeness: 1, LatencyMS: Quantiles{P50: 95, P90: 165, P99: 237, Max: 440},
		CPU: &CPUReport{CoresMean: 0.968, MSPerMessage: 883.48, IdleCoresMean: 0.764, ShareRunnable: 0.0441, HostCores: 2}}
}

func TestCPUFrom(t *testing.T) {
	m, how, err := CPUFrom(netnsReport())
	if err != nil {
		t.Fatal(err)
	}
	// 883.48 ms * (1 - 0.764/0.968) / 50 = 3.7238 ms per node and message,
	// less the 70 µs verify.
	if m.Machine != 2 || m.Cores != 2 || m.Share != 1 || math.Abs(m.Idle-0.01528) > 1e-5 {
		t.Errorf("model %+v", m)
	}
	if got := time.Duration(m.Apply); got < 3653*time.Microsecond || got > 3654*time.Microsecond {
		t.Errorf("apply %v, want 3.654 ms", got)
	}
	if time.Duration(m.Verify) != cpuCalibration.verify || time.Duration(m.PerKB) != cpuCalibration.perKB {
		t.Errorf("verify %v, per_kb %v: not the calibration's", m.Verify, m.PerKB)
	}
	if !strings.Contains(how, "machine of 2 cores") || !strings.Contains(how, "3.72 ms per message and node") {
		t.Errorf("derivation %q", how)
	}
	// No CPU above idle: apply is 0, not negative.
	r := netnsReport()
	r.CPU.IdleCoresMean = r.CPU.CoresMean
	if m, _, err := CPUFrom(r); err != nil || m.Apply != 0 {
		t.Errorf("idle = traffic: %+v, %v", m, err)
	}
}

func TestCPUFromRefuses(t *testing.T) {
	for name, edit := range map[string]func(r *Report){
		"mocknet":      func(r *Report) { r.Backend = "mocknet (in-process)" },
		"no backend":   func(r *Report) { r.Backend = "" },
		"no cpu":       func(r *Report) { r.CPU = nil },
		"no messages":  func(r *Report) { r.EventsPublished = 0 },
		"no nodes":     func(r *Report) { r.Nodes = 0 },
		"zero cores":   func(r *Report) { r.CPU.CoresMean = 0 },
		"idle too big": func(r *Report) { r.Nodes = 1; r.CPU.IdleCoresMean = 1.5; r.CPU.CoresMean = 2 },
	} {
		r := netnsReport()
		edit(r)
		if m, _, err := CPUFrom(r); err == nil || !strings.HasPrefix(err.Error(), "cpu-from: ") {
			t.Errorf("%s: %+v, %v", name, m, err)
		}
	}
}

func TestCompareBackends(t *testing.T) {
	x := netnsReport()
	for _, c := range []struct {
		name     string
		p50, p90 float64
		nodes    int
		met      bool
		why      string
	}{
		{"within", 87, 149, 50, true, ""},
		{"at 20 %", 114, 132, 50, true, ""},
		{"p50 low", 75, 150, 50, false, "p50 75 ms"},
		{"p90 high", 95, 199, 50, false, "p90 199 ms"},
		{"other nodes", 95, 165, 20, false, "20 nodes"},
	} {
		r := &Report{Nodes: c.nodes, Seed: 1, LatencyMS: Quantiles{P50: c.p50, P90: c.p90}}
		got := CompareBackends(r, x, "d")
		if got.Met != c.met || !strings.Contains(got.Why, c.why) || (c.why == "") != (got.Why == "") {
			t.Errorf("%s: met %v, why %q; want %v, %q", c.name, got.Met, got.Why, c.met, c.why)
		}
		if got.PathLatencyMS != nil {
			t.Errorf("%s: a path latency without traces", c.name)
		}
	}
	// With the daemons' traced path latency (publish to taken in, this
	// run's span), the goal is judged on it; the watch-line deltas are
	// still reported.
	x.PathLatencyMS = &Quantiles{P50: 80, P90: 100}
	got := CompareBackends(&Report{Nodes: 50, Seed: 1, LatencyMS: Quantiles{P50: 88, P90: 150}}, x, "d")
	if got.PathDeltaP50 != 0.1 || got.PathDeltaP90 != 0.5 || got.Met || got.Why != "p90 150 ms against 100 ms" || got.DeltaP50 != -0.074 || !strings.Contains(got.JudgedOn, "publishing to taking in") {
		t.Errorf("against the path latency: %+v", got)
	}
	got = CompareBackends(&Report{Nodes: 50, Seed: 1, LatencyMS: Quantiles{P50: 70, P90: 110}}, x, "d")
	if !got.Met || got.DeltaP50 >= -0.2 {
		t.Errorf("within 20 %% of the path latency, not of the watch line's: %+v", got)
	}
}

// TestRunCPUFrom runs a small scenario in virtual time with its CPU model
// derived from a netns report read back from disk: the run takes the
// report's nodes and seed, charges the derived work, and holds itself
// against the report.
func TestRunCPUFrom(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated run")
	}
	x := netnsReport()
	x.Scenario, x.Nodes, x.Seed = "line5", 5, 4
	x.CPU.IdleCoresMean = 0.05
	x.CPU.CoresMean = 0.1
	x.CPU.MSPerMessage = 10 // 1 ms per node and message above idle
	dir := t.TempDir()
	b, _ := json.Marshal(x)
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	x, err := LoadReport(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc := lineScenario(t, "line5", 3, 10*time.Second, 20*time.Millisecond, "{writers: 0, rate: 1, size: 200}")
	rep, err := Run(t.Context(), sc, RunOptions{T: t, CPUFrom: x})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Nodes != 5 || rep.Seed != 4 || rep.CrossBackend == nil || rep.CPU == nil || rep.CPU.Model == nil {
		t.Fatalf("nodes %d, seed %d, cross-backend %+v, cpu %+v", rep.Nodes, rep.Seed, rep.CrossBackend, rep.CPU)
	}
	if a := time.Duration(rep.CPU.Model.Apply); a != 930*time.Microsecond {
		t.Errorf("the run's apply %v, want 930µs", a)
	}
	// Each hop now costs its link's 20 ms and about a millisecond of work.
	if rep.LatencyMS.P50 <= 20 || rep.CrossBackend.DeltaP50 == 0 {
		t.Errorf("p50 %v ms, cross-backend %+v", rep.LatencyMS.P50, rep.CrossBackend)
	}

	// With the daemons' path timing: a first pass counts the gossip, the
	// second charges the rest of the daemons' CPU per byte of it, so the
	// model spends about the CPU the daemons did.
	x.CPU.Path = &PathReport{Validate: PathStage{Count: 40, P10MS: 0.2}, Apply: PathStage{Count: 40, P10MS: 0.3}}
	rep, err = Run(t.Context(), sc, RunOptions{T: t, CPUFrom: x})
	if err != nil {
		t.Fatal(err)
	}
	mod := rep.CPU.Model
	if !mod.Measured || mod.PerKB <= 0 || time.Duration(mod.Verify) != 200*time.Microsecond || !strings.Contains(rep.CrossBackend.Derivation, "a first pass of the model") {
		t.Errorf("model %+v, derivation %q", mod, rep.CrossBackend.Derivation)
	}
	t.Logf("model %.3f cores during traffic, daemons %.3f; %s", rep.CPU.CoresMean, x.CPU.CoresMean, rep.CrossBackend.Derivation)
	if got := rep.CPU.CoresMean; math.Abs(got-x.CPU.CoresMean)/x.CPU.CoresMean > 0.3 {
		t.Errorf("the model used %.3f cores during traffic, the daemons %.3f", got, x.CPU.CoresMean)
	}

	sc.Name = "other"
	if _, err := Run(t.Context(), sc, RunOptions{T: t, CPUFrom: x}); err == nil || !strings.Contains(err.Error(), "not other") {
		t.Errorf("another scenario's report: %v", err)
	}
}

// TestCPUModelBackground: background work of b cores on a one-core machine
// holds the machine for about b of its time (1 ms slices at Poisson times,
// seeded), so that a node's work waits behind it; it is nobody's busy
// time; and it needs a machine with cores to spare.
func TestCPUModelBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newCPUModel(&CPU{Cores: 1, Share: 1, Machine: 1, Background: 0.5}, 1, 7)
		stop := m.idle(7, 1)
		m.startMeasuring(time.Now())
		var waited time.Duration
		const n = 2000
		for range n {
			t0 := time.Now()
			m.charge(0, 100*time.Microsecond, true)
			waited += time.Since(t0) - 100*time.Microsecond
			time.Sleep(time.Millisecond)
		}
		stop()
		// A piece of work arriving at a random time finds the machine busy
		// about half the time, for about half a slice (more: slices queue).
		if mean := waited / n; mean < 150*time.Microsecond || mean > 800*time.Microsecond {
			t.Errorf("mean wait %v, want about 250 µs", mean)
		}
		if r := m.report(1, n, n*1100*time.Microsecond, nil); r.CoresMean > 0.1 {
			t.Errorf("background counted as the node's: cores_mean %v", r.CoresMean)
		}
	})
	for _, c := range []CPU{{Cores: 1, Share: 1, Background: 0.5}, {Cores: 1, Share: 1, Machine: 2, Background: 2}, {Cores: 1, Share: 1, Machine: 2, Background: -1}} {
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "cpu.background") {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestCPUFromPath: with the daemons' own timing of the gossip path, the
// model charges each stage's fastest decile on the path, their idle CPU as
// idle, the host's other work as background, and leaves the rest of their
// CPU to be charged per byte, on the path for what a node receives.
func TestCPUFromPath(t *testing.T) {
	r := netnsReport()
	// 50 daemons, 66 messages, 49 receipts each: 3,234 per stage.
	r.CPU.Path = &PathReport{
		Validate: PathStage{Count: 3234, P10MS: 0.2, P25MS: 0.3, P50MS: 0.4},
		Apply:    PathStage{Count: 3234, P10MS: 0.5, P25MS: 0.6, P50MS: 1.8},
	}
	r.CPU.BackgroundCores = 0.1
	m, how, rest, err := cpuFrom(r)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(m.Verify) != 200*time.Microsecond || time.Duration(m.Apply) != 500*time.Microsecond || m.PerKB != 0 || !m.Measured {
		t.Errorf("costs: verify %v, apply %v, per_kb %v, measured %v", m.Verify, m.Apply, m.PerKB, m.Measured)
	}
	if m.Machine != 2 || m.Cores != 2 || m.Share != 1 || math.Abs(m.Idle-0.764/50) > 1e-9 {
		t.Errorf("model %+v", m)
	}
	// Traffic: 883.48 ms * 66 / 0.968 = 60.24 s, of it (0.968 - 0.764) *
	// 60.24 = 12.29 CPU-s above idle; on the path 3,234 * 0.7 ms = 2.26.
	if math.Abs(rest-(0.204*60.2371-2.2638)) > 1e-3 {
		t.Errorf("rest %.4f CPU-s, want 10.0246", rest)
	}
	if !strings.Contains(how, "at their p10") || !strings.Contains(how, "12.29 CPU-s above idle during traffic, 2.26 on the path and 10.02 per byte") {
		t.Errorf("derivation %q", how)
	}
	d, per, err := perKB(rest, 20000, "sent and received")
	if err != nil || (time.Duration(d)-501*time.Microsecond).Abs() > time.Microsecond || !strings.Contains(per, "501µs per KiB over the 20000 KiB") {
		t.Errorf("per KiB: %v, %q, %v", d, per, err)
	}
	if _, _, err := perKB(rest, 0, ""); err == nil {
		t.Error("per KiB over no gossip: no error")
	}
	if !m.PathKB || m.Hop != nil || m.Background != r.CPU.BackgroundCores || !strings.Contains(how, "charged on the path as each frame") {
		t.Errorf("per_kb_path %v, hop %v, background %v (the report's %v), %q", m.PathKB, m.Hop, m.Background, r.CPU.BackgroundCores, how)
	}
	// With the daemons' CPU sampled in and out of the messages' floods,
	// idle is the baseline outside them and the rest is the floods' CPU
	// above it less the path.
	r.CPU.FloodCPUS, r.CPU.BaselineCores, r.CPU.FloodShare = 8, 0.9, 0.3
	if m, how, rest, err := cpuFrom(r); err != nil || math.Abs(m.Idle-0.9/50) > 1e-9 || math.Abs(rest-(8-2.2638)) > 1e-3 ||
		!strings.Contains(how, "outside the messages' floods") || !strings.Contains(how, "of the 8.00 CPU-s during the floods (30 % of the time) above that, 2.26 on the path and 5.74 per byte") {
		t.Errorf("with floods: idle %v, rest %v, %q, %v", m.Idle, rest, how, err)
	}
	// The simulator's own share of the host's other work, when reported,
	// is what runs before the daemons.
	r.CPU.HarnessCores = 0.05
	if m, how, _, err := cpuFrom(r); err != nil || m.Background != 0.05 || !strings.Contains(how, "the simulator's own work (of the host's other work, 0.100 cores) 0.050 cores") {
		t.Errorf("with the harness's CPU: background %v, %q, %v", m.Background, how, err)
	}
	r.CPU.HarnessCores = 0
	r.CPU.FloodCPUS, r.CPU.BaselineCores, r.CPU.FloodShare = 0, 0, 0
	// The daemons' traced hops are not replayed: the per-byte work makes
	// their waits.
	r.CPU.Path.Hop = hopReport([]float64{1, 2, 3, 4, 5})
	if m, _, rest2, err := cpuFrom(r); err != nil || m.Hop != nil || rest2 != rest {
		t.Errorf("with hops: %v, rest %v, %v", m.Hop, rest2, err)
	}
	r.CPU.Path.Hop = nil
	// More on the path than the daemons spent: nothing left.
	r.CPU.Path.Apply.P10MS = 100
	if _, _, rest, err := cpuFrom(r); err != nil || rest != 0 {
		t.Errorf("path over the CPU: rest %v, %v", rest, err)
	}
	// No apply timings (an older daemon): the old derivation.
	r.CPU.Path.Apply.Count = 0
	if m, _, err := CPUFrom(r); err != nil || m.Measured {
		t.Errorf("no apply timings: %+v, %v", m, err)
	}
}
