package simulations

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"time"
)

// CrossBackendMaxDelta is issue 16's cross-backend goal: a virtual-time
// run given the CPU a netns run's daemons had is within 20 % of that run
// at p50 and at p90.
const CrossBackendMaxDelta = 0.20

// CrossBackend compares a virtual-time run whose CPU model was derived
// from a netns run (CPUFrom) with that run (report.json's
// "cross_backend").
type CrossBackend struct {
	Scenario  string    `json:"scenario"` // the netns run's
	Seed      uint64    `json:"seed"`
	Nodes     int       `json:"nodes"`
	LatencyMS Quantiles `json:"latency_ms"` // the netns run's
	// Derivation says where the model's figures came from.
	Derivation string  `json:"derivation"`
	DeltaP50   float64 `json:"delta_p50"` // (this run's p50 - netns's) / netns's
	DeltaP90   float64 `json:"delta_p90"`
	// PathLatencyMS is the netns run's latency from publishing to taking
	// in, by the daemons' traces (the same span as this run's latency,
	// without the watch stream), and the deltas against it. When the netns
	// report has it, the goal is judged on it (JudgedOn): this run's
	// latency ends where an event is taken into the room, and the watch
	// line adds the daemon's API stream and the simulator's reader, which
	// the virtual-time backend has no counterpart for. Before 2026-12-08
	// it was judged on LatencyMS.
	PathLatencyMS *Quantiles `json:"path_latency_ms,omitempty"`
	PathDeltaP50  float64    `json:"path_delta_p50"`
	PathDeltaP90  float64    `json:"path_delta_p90"`
	JudgedOn      string     `json:"judged_on"`
	Goal          string     `json:"goal"`
	Met           bool       `json:"met"`
	Why           string     `json:"why,omitempty"`
}

// CPUFrom derives the CPU model of the daemons of netns run r, so that a
// virtual-time run of the same scenario spends the CPU they spent. A
// report with the daemons' own timing of the gossip path (cpu.path, every
// netns run since 2026-12-07) gets cpuFromPath's model; an older one gets
// this first derivation:
//
//   - all nodes on one machine of the host's cores (Machine), each node
//     able to use all of them (Cores), at the calibration speed (Share 1);
//   - Idle: the daemons' CPU with no messages, per node (timers,
//     heartbeats, GC);
//   - Apply: their CPU during traffic above that idle CPU, per node and
//     published message, less the model's own Verify: everything a daemon
//     does for a message (Noise, yamux, gossip, the badger commit, the
//     watch stream) charged as one piece of critical-path work.
//
// Verify and PerKB keep their calibration defaults. The host's other work
// during traffic (background_cores: the simulator's forwarders, other
// processes) is not charged: charged as Background it made the model 8-131 %
// slower than the daemons it was fed from (the daemons' own CPU per
// message already grows with the contention; README "Cross-backend
// check"). The daemons' share of
// a core while runnable (share_runnable) is not an input: it is an
// outcome of the queueing the model reproduces, and feeding it as a speed
// double-counts the wait (README "Cross-backend check").
func CPUFrom(r *Report) (*CPU, string, error) {
	m, how, _, err := cpuFrom(r)
	return m, how, err
}

// cpuFrom is CPUFrom; for a report with the daemons' path timing it also
// returns the CPU seconds left to charge per byte of gossip (cpuFromPath).
func cpuFrom(r *Report) (*CPU, string, float64, error) {
	c := r.CPU
	switch {
	case !strings.HasPrefix(r.Backend, "netns"):
		return nil, "", 0, fmt.Errorf("cpu-from: %s is a %q run, not a netns one", r.Scenario, r.Backend)
	case c == nil || c.CoresMean <= 0 || c.MSPerMessage <= 0:
		return nil, "", 0, errors.New("cpu-from: the report has no daemon CPU (cores_mean, ms_per_message)")
	case r.Nodes <= 0 || r.EventsPublished <= 0:
		return nil, "", 0, errors.New("cpu-from: the report has no nodes or no published messages")
	}
	cores := c.HostCores
	if cores <= 0 {
		cores = runtime.NumCPU() // reports before host_cores: this machine's
	}
	if c.Path != nil && c.Path.Validate.Count > 0 && c.Path.Apply.Count > 0 {
		return cpuFromPath(r, cores)
	}
	n := float64(r.Nodes)
	m := &CPU{Cores: cores, Machine: cores, Share: 1, Idle: c.IdleCoresMean / n}
	m.defaults()
	if !(m.Idle < 1) {
		return nil, "", 0, fmt.Errorf("cpu-from: idle CPU %.3f cores per node is not below one core", m.Idle)
	}
	// The traffic part of the CPU per message: ms_per_message covers all
	// of the daemons' CPU from traffic start, cores_mean the same per
	// second, idle_cores_mean the warm-up's per second.
	perMsg := c.MSPerMessage * (1 - c.IdleCoresMean/c.CoresMean) / n // ms, per node
	apply := time.Duration(perMsg*1e6) - time.Duration(m.Verify)
	if apply < 0 {
		apply = 0
	}
	m.Apply = Duration(apply)
	how := fmt.Sprintf("machine of %d cores, idle %.4f of a core per node (%.3f cores / %d nodes), apply %v per node and message (%.2f ms per message and node above idle, less verify %v)",
		cores, m.Idle, c.IdleCoresMean, r.Nodes, apply.Round(time.Microsecond), perMsg, time.Duration(m.Verify))
	if err := m.validate(); err != nil {
		return nil, "", 0, fmt.Errorf("cpu-from: %w", err)
	}
	return m, how, 0, nil
}

// CompareBackends holds virtual-time run r (its model from CPUFrom(netns))
// against netns run netns.
func CompareBackends(r, netns *Report, derivation string) *CrossBackend {
	x := &CrossBackend{
		Scenario:   netns.Scenario,
		Seed:       netns.Seed,
		Nodes:      netns.Nodes,
		LatencyMS:  netns.LatencyMS,
		Derivation: derivation,
		Goal:       fmt.Sprintf("p50 and p90 within %.0f %%", CrossBackendMaxDelta*100),
	}
	delta := func(a, b float64) float64 {
		if b <= 0 {
			return math.Inf(1)
		}
		return math.Round((a-b)/b*1000) / 1000
	}
	x.DeltaP50 = delta(r.LatencyMS.P50, netns.LatencyMS.P50)
	x.DeltaP90 = delta(r.LatencyMS.P90, netns.LatencyMS.P90)
	ref, d50, d90 := netns.LatencyMS, x.DeltaP50, x.DeltaP90
	x.JudgedOn = "the netns run's latency at its watch lines"
	if p := netns.PathLatencyMS; p != nil && p.P50 > 0 {
		x.PathLatencyMS = p
		x.PathDeltaP50, x.PathDeltaP90 = delta(r.LatencyMS.P50, p.P50), delta(r.LatencyMS.P90, p.P90)
		ref, d50, d90 = *p, x.PathDeltaP50, x.PathDeltaP90
		x.JudgedOn = "the netns run's latency from publishing to taking in, by the daemons' traces (this run's span)"
	}
	switch {
	case r.Nodes != netns.Nodes || r.Seed != netns.Seed:
		x.Why = fmt.Sprintf("this run has %d nodes and seed %d, the netns run %d and %d", r.Nodes, r.Seed, netns.Nodes, netns.Seed)
	case math.Abs(d50) > CrossBackendMaxDelta:
		x.Why = fmt.Sprintf("p50 %.0f ms against %.0f ms", r.LatencyMS.P50, ref.P50)
	case math.Abs(d90) > CrossBackendMaxDelta:
		x.Why = fmt.Sprintf("p90 %.0f ms against %.0f ms", r.LatencyMS.P90, ref.P90)
	default:
		x.Met = true
	}
	return x
}

// cpuFromPath is CPUFrom for a report with the daemons' own timing of the
// gossip path (cpu.path): every CPU second the daemons spent is charged,
// each at the time its work happens in the model, on one machine of the
// host's cores:
//
//   - Verify: the validate stage (taken for validation to forwarded) at
//     its fastest decile (p10), on the path of each gossiped event a node
//     receives. A stage's wall time is its CPU and its waits (for a CPU
//     behind other work, which the model adds by its own queueing, and for
//     other goroutines); its fastest decile is the stage with the fewest
//     waits. Whatever it leaves out is still charged, per byte;
//   - Apply: the apply stage (delivered to taken into the room) likewise;
//   - Idle: the daemons' CPU outside the messages' floods (baseline_cores,
//     sampled during traffic), or, in a report without it, their CPU in a
//     quiet window after traffic;
//   - PerKB, on the path (PathKB): the rest of their CPU, during the
//     floods above the baseline (flood_cpu_s; or during traffic above
//     idle), less the two stages (Noise, yamux, RPCs, duplicates, heads
//     announcements and the sync sessions they start, badger, GC), per KiB
//     of gossipsub RPC the model's nodes exchange during their own floods
//     (or during traffic). Each frame holds a core for its work before
//     pubsub reads it or its writer writes it, so that a flood that keeps
//     the machine busy delays every copy queued behind it. It is known
//     only once a first pass has counted the model's bytes (Run; rest is
//     returned);
//   - Background: the simulator's own CPU during traffic (harness_cores:
//     its forwarders and watch readers, which run before the daemons),
//     or, in a report without it, all the host's other work, holding the
//     machine's cores.
//
// Before 2026-12-08 the rest was not charged when the report had the
// daemons' traced hops: each frame waited a time drawn from them,
// holding no core. That replayed the hops' waits but not their cause:
// the model stayed 26-41 % fast at p90 at 50 nodes, where the daemons'
// per-frame work saturates the two cores during each message's flood
// (simulations/README.md, "Cross-backend check"). The hop distribution
// stays a scenario option (cpu.hop_ms).
func cpuFromPath(r *Report, cores int) (*CPU, string, float64, error) {
	c, p := r.CPU, r.CPU.Path
	ms := func(x float64) time.Duration { return time.Duration(x * 1e6) }
	verify, apply := ms(p.Validate.P10MS), ms(p.Apply.P10MS)
	n := float64(r.Nodes)
	span := c.MSPerMessage * float64(r.EventsPublished) / 1e3 / c.CoresMean // s of traffic
	onPath := float64(p.Validate.Count)*verify.Seconds() + float64(p.Apply.Count)*apply.Seconds()
	// The daemons' CPU beside the messages and for them: sampled during
	// traffic, outside and inside the messages' floods, when the report
	// has it; else idle from the quiet window after traffic and the
	// traffic's CPU above it.
	idle, above := c.IdleCoresMean, (c.CoresMean-c.IdleCoresMean)*span
	idleHow := fmt.Sprintf("idle %%.4f of a core per node (%.3f cores / %d nodes, the quiet window after traffic)", c.IdleCoresMean, r.Nodes)
	aboveHow := "above idle during traffic"
	if c.FloodCPUS > 0 && c.BaselineCores > 0 {
		idle, above = c.BaselineCores, c.FloodCPUS
		idleHow = fmt.Sprintf("idle %%.4f of a core per node (%.3f cores / %d nodes outside the messages' floods)", c.BaselineCores, r.Nodes)
		aboveHow = fmt.Sprintf("during the floods (%.0f %% of the time) above that", c.FloodShare*100)
	}
	rest := max(above-onPath, 0) // CPU seconds
	m := &CPU{Cores: cores, Machine: cores, Share: 1, Measured: true, PathKB: true,
		Verify: Duration(verify), Apply: Duration(apply), Idle: idle / n}
	// The host's other work that ran before the daemons: the simulator's
	// own (its forwarders are the network), or, in a report without that
	// figure, all of it.
	bg, bgHow := c.BackgroundCores, "the host's other work"
	if c.HarnessCores > 0 {
		bg, bgHow = c.HarnessCores, fmt.Sprintf("the simulator's own work (of the host's other work, %.3f cores)", c.BackgroundCores)
	}
	if bg > 0 && bg < float64(cores) {
		m.Background = bg
	}
	m.defaults()
	if !(m.Idle < 1) {
		return nil, "", 0, fmt.Errorf("cpu-from: idle CPU %.3f cores per node is not below one core", m.Idle)
	}
	how := fmt.Sprintf("machine of %d cores; verify %v and apply %v per node and event (the daemons' validate and apply stages at their p10; p50 %.3f / %.3f ms); ",
		cores, verify.Round(time.Microsecond), apply.Round(time.Microsecond), p.Validate.P50MS, p.Apply.P50MS)
	how += fmt.Sprintf(idleHow, m.Idle) + fmt.Sprintf("; %s %.3f cores; of the %.2f CPU-s %s, %.2f on the path and %.2f per byte of gossip, charged on the path as each frame is received and sent",
		bgHow, m.Background, above, aboveHow, onPath, rest)
	if err := m.validate(); err != nil {
		return nil, "", 0, fmt.Errorf("cpu-from: %w", err)
	}
	return m, how, rest, nil
}

// perKB is the cost per KiB that charges rest CPU seconds over kb KiB of
// gossip (a first pass's TrafficKB, or its FloodKB), which its nodes
// exchanged as span says.
func perKB(rest, kb float64, span string) (Duration, string, error) {
	if kb <= 0 {
		return 0, "", errors.New("cpu-from: the first pass sent no gossip during traffic")
	}
	d := time.Duration(rest / kb * 1e9)
	return Duration(d), fmt.Sprintf(" = %v per KiB over the %.0f KiB a first pass of the model %s", d.Round(time.Microsecond), kb, span), nil
}
