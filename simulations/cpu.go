package simulations

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// CPU is a scenario's cpu block: the CPU model of virtual time. Without it
// (or with Off) a node's work costs no virtual time, as before the model:
// a hop costs exactly its link latency. With it, each replica's work holds
// one of its virtual cores for the work's cost, and work that finds every
// core busy waits, in virtual time:
//
//   - Verify, for each gossiped event a node receives, before gossipsub
//     forwards it (a pubsub default validator; the node's own validator
//     decodes and checks it in no virtual time);
//   - Apply, for each event the engine accepts (log, room state, store
//     commit), before the event counts as delivered;
//   - PerKB, per KiB of gossipsub RPC a node sends or receives (Noise,
//     yamux, protobuf), charged off the critical path: it only occupies a
//     core, so that later work queues behind it; with PathKB it is charged
//     on the path instead: each inbound frame waits for a core and holds
//     it before pubsub reads it, each outbound one before it is written.
//
// Costs are of one core of the calibration machine (cpuCalibration) and
// are divided by Share, the fraction of such a core each virtual core
// delivers. Machine > 0 puts all nodes on one machine of that many cores:
// work then needs one of the node's own cores and one of the machine's.
type CPU struct {
	Off     bool     `yaml:"off,omitempty" json:"off,omitempty"`
	Cores   int      `yaml:"cores,omitempty" json:"cores"`     // virtual cores per node; default 1
	Share   float64  `yaml:"share,omitempty" json:"share"`     // of a calibration core, in (0,16]; default 1
	Machine int      `yaml:"machine,omitempty" json:"machine"` // cores all nodes share; 0 = none
	Verify  Duration `yaml:"verify,omitempty" json:"verify"`   // default cpuCalibration.verify
	Apply   Duration `yaml:"apply,omitempty" json:"apply"`     // default cpuCalibration.apply
	PerKB   Duration `yaml:"per_kb,omitempty" json:"per_kb"`   // default cpuCalibration.perKB
	// Idle is the fraction of a calibration core a node uses with no
	// traffic (timers, heartbeats, GC), charged in 1 ms slices at seeded
	// random (Poisson) times from the warm-up on; 0 = none.
	Idle float64 `yaml:"idle,omitempty" json:"idle"`
	// Wakeup is the mean time a node waits, when work reaches it, before
	// a CPU runs it (an operating system's scheduling delay on a loaded
	// host): verify and apply first wait an exponentially distributed
	// time of this mean (seeded per node); 0 = none.
	Wakeup Duration `yaml:"wakeup,omitempty" json:"wakeup"`
	// Background is the machine's CPU, in cores, taken by work of no
	// node (other processes; in netns, the simulator's forwarders): 1 ms
	// slices at seeded random (Poisson) times that hold one of the
	// machine's cores. Needs Machine; 0 = none.
	Background float64 `yaml:"background,omitempty" json:"background,omitempty"`
	// Measured says the costs were measured on the daemons (CPUFrom), not
	// left to the calibration: a zero cost is then none, not the default.
	Measured bool `yaml:"measured,omitempty" json:"measured,omitempty"`
	// Hop is a distribution of extra time per gossip hop, as its 0th to
	// 100th percentile in milliseconds (101 values; none when empty):
	// every frame of gossipsub a node receives waits a time drawn from it
	// (seeded per node) before pubsub reads it, holding no core; a frame
	// also waits for the one before it on its stream, as on a TCP stream,
	// so that the copies of an event race as in the real network.
	// CPUFrom sets it from a netns run's traced hops (cpu.path.hop): what
	// a copy's hop cost there beyond its link's latency, outside the two
	// timed stages.
	Hop []float64 `yaml:"hop_ms,omitempty" json:"hop_ms,omitempty"`
	// HopQueue releases a node's held frames in the order they arrived,
	// across all its streams (a frame drawn short waits for any drawn
	// long before it: one stalled receiver), not per stream.
	HopQueue bool `yaml:"hop_queue,omitempty" json:"hop_queue,omitempty"`
	// ValidateMS and ApplyMS, when set, replace Verify and Apply by wall
	// times drawn from these distributions (101 percentiles in
	// milliseconds, as Hop), holding no core: a replay of the stages as
	// a netns run's daemons timed them, waits included
	// (cpu.path.validate_wall and apply_wall of its report), where the
	// model's own queueing is not what made them. An applied event is
	// counted delivered after the drawn time, without holding the engine.
	ValidateMS []float64 `yaml:"validate_ms,omitempty" json:"validate_ms,omitempty"`
	ApplyMS    []float64 `yaml:"apply_ms,omitempty" json:"apply_ms,omitempty"`
	// PathKB charges PerKB on the path: each inbound gossipsub frame, in
	// its stream's order, waits for one of the node's cores (and the
	// machine's) and holds it for its size times PerKB before pubsub reads
	// it, as a daemon decrypts and decodes a frame before its router sees
	// it; each outbound frame likewise before pubsub's writer for that
	// peer writes it. So a flood that keeps the machine's cores busy
	// delays every copy behind it, the queueing a netns run shows on a
	// loaded host.
	PathKB bool `yaml:"per_kb_path,omitempty" json:"per_kb_path,omitempty"`
}

// cpuCalibration holds the default costs, measured on one core of the
// 2-vCPU development VM (AMD EPYC, Go 1.26) in CPU time, not wall time, so
// that the machine's other load does not inflate them. How each was
// measured is in README.md ("CPU model").
var cpuCalibration = struct{ verify, apply, perKB time.Duration }{
	verify: 70 * time.Microsecond,  // crdt BenchmarkVerify/zip215-single, user CPU time
	apply:  150 * time.Microsecond, // node BenchmarkIngestE2EE/encrypted=false cpu-ns/op per event, less verify
	perKB:  20 * time.Microsecond,  // an estimate, not a benchmark (README.md)
}

func (c *CPU) defaults() {
	if c.Cores == 0 {
		c.Cores = 1
	}
	if c.Share == 0 {
		c.Share = 1
	}
	if c.Measured {
		return
	}
	if c.Verify == 0 {
		c.Verify = Duration(cpuCalibration.verify)
	}
	if c.Apply == 0 {
		c.Apply = Duration(cpuCalibration.apply)
	}
	if c.PerKB == 0 {
		c.PerKB = Duration(cpuCalibration.perKB)
	}
}

func (c *CPU) validate() error {
	switch {
	case c.Cores < 1 || c.Cores > 1024:
		return fmt.Errorf("cpu.cores: %d is not in [1,1024]", c.Cores)
	case !(c.Share > 0 && c.Share <= 16):
		return fmt.Errorf("cpu.share: %v is not in (0,16]", c.Share)
	case c.Machine < 0:
		return fmt.Errorf("cpu.machine: %d is negative", c.Machine)
	case !(c.Idle >= 0 && c.Idle < 1):
		return fmt.Errorf("cpu.idle: %v is not in [0,1)", c.Idle)
	case c.Background < 0 || (c.Background > 0 && c.Machine == 0) || c.Background >= float64(max(c.Machine, 1)):
		return fmt.Errorf("cpu.background: %v needs a machine and must be below its %d cores", c.Background, c.Machine)
	case c.Verify < 0 || c.Apply < 0 || c.PerKB < 0 || c.Wakeup < 0:
		return fmt.Errorf("cpu: costs must not be negative")
	}
	return errors.Join(validHop("hop_ms", c.Hop), validHop("validate_ms", c.ValidateMS), validHop("apply_ms", c.ApplyMS))
}

// cpuModel is the running model: per node a token per virtual core, and
// the machine's tokens. Only goroutines inside the run's synctest bubble
// use it, so time.Sleep is virtual time.
type cpuModel struct {
	cfg     CPU
	cores   []chan struct{}
	machine chan struct{} // nil: no shared machine
	rngs    []*lockedRand // per node, for Wakeup

	mu    sync.Mutex
	busy  []time.Duration // per node: charged work
	bytes []int64         // per node: gossipsub RPC bytes sent and received while measuring
	// all nodes' gossipsub RPC bytes while measuring, per byteBin from
	// the start (for FloodKB)
	binned []int64
	waits  []time.Duration // time critical-path work waited for a core
	from   time.Time       // measuring start (traffic); zero before
	// all work while measuring: base cost, and time from asking for a
	// core to the end (for the model's runnable share)
	base, span time.Duration
}

// newCPUModel returns the model for n nodes, or nil when c is absent or off.
func newCPUModel(c *CPU, n int, seed uint64) *cpuModel {
	if c == nil || c.Off {
		return nil
	}
	m := &cpuModel{cfg: *c, cores: make([]chan struct{}, n), busy: make([]time.Duration, n), bytes: make([]int64, n)}
	for i := range m.cores {
		m.cores[i] = make(chan struct{}, c.Cores)
	}
	if c.Machine > 0 {
		m.machine = make(chan struct{}, c.Machine)
	}
	m.rngs = make([]*lockedRand, n)
	for i := range m.rngs {
		m.rngs[i] = &lockedRand{r: rand.New(rand.NewPCG(seed, uint64(n+i)))}
	}
	return m
}

// lockedRand is a seeded stream several goroutines draw from.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) exp(mean time.Duration) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Duration(l.r.ExpFloat64() * float64(mean))
}

func (l *lockedRand) float() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// cost is what work of base cost d takes on a virtual core.
func (m *cpuModel) cost(d time.Duration) time.Duration {
	return time.Duration(float64(d) / m.cfg.Share)
}

// charge holds a core of node i (and one of the machine's) for d of
// calibration-core time, waiting first while they are all busy.
// critical says whether something waits for the work (its queueing delay
// is then counted in the report).
func (m *cpuModel) charge(i int, d time.Duration, critical bool) {
	if m == nil || d <= 0 {
		return
	}
	base := d
	d = m.cost(d)
	t := time.Now()
	if critical && m.cfg.Wakeup > 0 {
		time.Sleep(m.rngs[i].exp(m.cfg.Wakeup.D()))
	}
	m.cores[i] <- struct{}{}
	if m.machine != nil {
		m.machine <- struct{}{}
	}
	wait := time.Since(t)
	time.Sleep(d)
	if m.machine != nil {
		<-m.machine
	}
	<-m.cores[i]
	m.mu.Lock()
	if !m.from.IsZero() && t.After(m.from) {
		m.busy[i] += d
		m.base += base
		m.span += wait + d
		if critical {
			m.waits = append(m.waits, wait)
		}
	}
	m.mu.Unlock()
}

// background charges node i for bytes of gossipsub RPC without making the
// caller wait (work that occupies a core but delays nothing directly).
// With PathKB those bytes were charged on the path (frameDelay, frameSend)
// and are only counted here.
func (m *cpuModel) background(i int, bytes int) {
	if m == nil || bytes <= 0 {
		return
	}
	m.mu.Lock()
	if !m.from.IsZero() {
		m.bytes[i] += int64(bytes)
		if k := int(time.Since(m.from) / byteBin); k >= 0 {
			if k >= len(m.binned) {
				m.binned = append(m.binned, make([]int64, k+1-len(m.binned))...)
			}
			m.binned[k] += int64(bytes)
		}
	}
	m.mu.Unlock()
	if m.cfg.PathKB {
		return
	}
	go m.charge(i, m.perKB(bytes), false)
}

// frameSend is node i's charge of each outbound pubsub frame (PathKB), or
// nil: the frame's writer holds a core for its work before the write.
func (m *cpuModel) frameSend(i int) func(size int) {
	if m == nil || !m.cfg.PathKB || m.cfg.PerKB <= 0 {
		return nil
	}
	return func(size int) { m.charge(i, m.perKB(size), true) }
}

// perKB is the PerKB cost of bytes.
func (m *cpuModel) perKB(bytes int) time.Duration {
	return time.Duration(float64(m.cfg.PerKB) * float64(bytes) / 1024)
}

// idleSlice is the unit of idle work.
const idleSlice = time.Millisecond

// idle starts, for nodes 0..n-1, the idle work of cfg.Idle (a Poisson
// process of idleSlice charges, seeded), and returns the function that
// stops it and waits.
func (m *cpuModel) idle(seed uint64, n int) (stop func()) {
	if m == nil || (m.cfg.Idle <= 0 && m.cfg.Background <= 0) {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg, slices sync.WaitGroup // slices: background slices under way
	// every runs fn at the times of a Poisson process of the given rate
	// per idleSlice, drawn from rng, until stop.
	every := func(rng *rand.Rand, rate float64, fn func()) {
		mean := float64(idleSlice) / rate
		wg.Go(func() {
			for {
				t := time.NewTimer(time.Duration(rng.ExpFloat64() * mean))
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				fn()
			}
		})
	}
	if b := m.cfg.Background; b > 0 && m.machine != nil {
		every(rand.New(rand.NewPCG(seed, uint64(2*n+1))), b, func() {
			slices.Go(func() {
				m.machine <- struct{}{}
				time.Sleep(idleSlice)
				<-m.machine
			})
		})
	}
	if m.cfg.Idle > 0 {
		for i := range n {
			every(rand.New(rand.NewPCG(seed, uint64(i))), m.cfg.Idle, func() { m.charge(i, idleSlice, false) })
		}
	}
	return func() { cancel(); wg.Wait(); slices.Wait() }
}

// startMeasuring starts counting busy time and waits (traffic start).
func (m *cpuModel) startMeasuring(t time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.from = t
	m.mu.Unlock()
}

// validator is node i's extra gossipsub validator: it charges the verify
// cost of each event a peer sends before gossipsub may forward it.
func (m *cpuModel) validator(i int, self peer.ID) pubsub.Option {
	return pubsub.WithDefaultValidator(pubsub.ValidatorEx(func(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if from != self && isEvTopic(msg) {
			if len(m.cfg.ValidateMS) > 0 {
				time.Sleep(drawHop(m.cfg.ValidateMS, m.rngs[i].float()))
			} else {
				m.charge(i, m.cfg.Verify.D(), true)
			}
		}
		return pubsub.ValidationAccept
	}))
}

// frameDelay is node i's hold of each inbound pubsub frame (PathKB, Hop),
// or nil.
func (m *cpuModel) frameDelay(i int) func(size int) time.Duration {
	path := m.cfg.PathKB && m.cfg.PerKB > 0
	if len(m.cfg.Hop) == 0 && !path {
		return nil
	}
	work := func(size int) {
		if path {
			m.charge(i, m.perKB(size), true)
		}
	}
	if len(m.cfg.Hop) == 0 {
		return func(size int) time.Duration { work(size); return 0 }
	}
	if !m.cfg.HopQueue {
		return func(size int) time.Duration { work(size); return drawHop(m.cfg.Hop, m.rngs[i].float()) }
	}
	var mu sync.Mutex
	var last time.Time // the latest release of a frame at node i
	return func(size int) time.Duration {
		work(size)
		now := time.Now()
		due := now.Add(drawHop(m.cfg.Hop, m.rngs[i].float()))
		mu.Lock()
		defer mu.Unlock()
		if due.Before(last) {
			due = last
		}
		last = due
		return due.Sub(now)
	}
}

// CPUReport is report.json's cpu: the CPU model's parameters and load
// (mocknet), or the daemons' measured CPU (netns), during traffic.
type CPUReport struct {
	Model *CPU `json:"model,omitempty"`
	// CoresMean is the CPU all honest nodes used together per second of
	// traffic phase (charged virtual work, or the daemons' CPU time).
	CoresMean float64 `json:"cores_mean"`
	// MSPerMessage is that CPU per published message, summed over nodes.
	MSPerMessage float64 `json:"ms_per_message"`
	// WaitMS (mocknet): how long verify and apply work waited for a core.
	WaitMS *Quantiles `json:"wait_ms,omitempty"`
	// ShareRunnable: netns, the daemons' CPU time over their CPU time
	// plus their time runnable but waiting for a CPU (schedstat), the
	// share of a core a daemon got while it had work; mocknet, the same
	// ratio for the model's work (its cost on a calibration core over the
	// time from asking for a core to finishing), all nodes, during traffic.
	ShareRunnable float64 `json:"share_runnable,omitempty"`
	// IdleCoresMean (netns): the daemons' CPU per second with no messages
	// (timers, heartbeats, GC), over a quiet window after traffic.
	IdleCoresMean float64 `json:"idle_cores_mean,omitempty"`
	// WarmCoresMean (netns): the same over the warm-up right after setup
	// (it still carries the joins' and the meshes' work).
	WarmCoresMean float64 `json:"warm_cores_mean,omitempty"`
	// BackgroundCores (netns): the host's CPU during traffic spent on
	// anything but the daemons (the simulator's forwarders and readers,
	// other processes), per second (/proc/stat).
	BackgroundCores float64 `json:"background_cores,omitempty"`
	// HarnessCores (netns): the part of BackgroundCores the simulator
	// itself spent (its forwarders, which are the emulated network, and its
	// watch readers), at a higher priority than the daemons.
	HarnessCores float64 `json:"harness_cores,omitempty"`
	// WakeupMS (netns): the daemons' time runnable but waiting for a CPU
	// per time they were put on one (schedstat): the model's wakeup.
	WakeupMS float64 `json:"wakeup_ms,omitempty"`
	// HostCores (netns): the machine's CPUs the daemons ran on.
	HostCores int `json:"host_cores,omitempty"`
	// FloodCPUS (netns): the daemons' CPU seconds during the messages'
	// floods (each from its first watch line to its last) above their
	// BaselineCores, their CPU per second outside every flood; FloodShare
	// is the fraction of the traffic time under a flood. Sampled from
	// the daemons' cgroup (FloodSource); absent without one.
	FloodCPUS     float64 `json:"flood_cpu_s,omitempty"`
	BaselineCores float64 `json:"baseline_cores,omitempty"`
	FloodShare    float64 `json:"flood_share,omitempty"`
	FloodSource   string  `json:"flood_source,omitempty"`
	// FloodKB (mocknet): the gossipsub RPC KiB all nodes sent and
	// received during the messages' floods (each from its publication or
	// first delivery to its last delivery), the span over which a netns
	// run's FloodCPUS is measured.
	FloodKB float64 `json:"flood_kb,omitempty"`
	// TrafficKB (mocknet): the gossipsub RPC KiB all honest nodes sent
	// and received during traffic, the bytes PerKB is charged for.
	TrafficKB float64 `json:"traffic_kb,omitempty"`
	// Path (netns): the daemons' own timing of the gossip path during
	// traffic, by stage.
	Path *PathReport `json:"path,omitempty"`
}

// byteBin is the resolution of the model's byte count over time (FloodKB).
const byteBin = 5 * time.Millisecond

// floodKB is the KiB of gossipsub RPC all nodes sent and received during
// the floods (each a span since the measuring start); mu must be held.
func (m *cpuModel) floodKB(floods [][2]time.Duration) float64 {
	var n int64
	for k, b := range m.binned {
		lo := time.Duration(k) * byteBin
		for _, f := range floods {
			if lo < f[1] && lo+byteBin > f[0] {
				n += b
				break
			}
		}
	}
	return float64(n) / 1024
}

// report sums the model's load over the honest nodes and span seconds of
// traffic; floods are the messages' floods since the traffic start (FloodKB).
func (m *cpuModel) report(honest, published int, span time.Duration, floods [][2]time.Duration) *CPUReport {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var busy time.Duration
	var bytes int64
	for i, b := range m.busy[:honest] {
		busy += b
		bytes += m.bytes[i]
	}
	cfg := m.cfg
	r := &CPUReport{Model: &cfg, TrafficKB: math.Round(float64(bytes) / 1024), FloodKB: math.Round(m.floodKB(floods))}
	if span > 0 {
		r.CoresMean = math.Round(busy.Seconds()/span.Seconds()*1000) / 1000
	}
	if published > 0 {
		r.MSPerMessage = math.Round(float64(busy)/1e6/float64(published)*100) / 100
	}
	if m.span > 0 {
		r.ShareRunnable = math.Round(float64(m.base)/float64(m.span)*1e4) / 1e4
	}
	w := make([]float64, len(m.waits))
	for k, d := range m.waits {
		w[k] = ms(d)
	}
	slices.Sort(w)
	q := quantiles(w)
	r.WaitMS = &q
	return r
}
