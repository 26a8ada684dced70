//go:build linux

package simulations

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuSampleEvery is how often the daemons' CPU is sampled during traffic
// (floodCPU).
const cpuSampleEvery = 20 * time.Millisecond

// cpuGroup is a cgroup holding a run's daemons, whose usage counter gives
// their summed CPU time at one read: cgroup v1's cpuacct hierarchy where
// the host mounts one (cpuacct.usage, in nanoseconds), else cgroup v2
// (cpu.stat's usage_usec, which v2 keeps in every group whether or not
// the cpu controller is enabled). Nil when the host has neither or it
// cannot be written: the daemons' /proc/PID/stat ticks are summed instead
// (10 ms each).
type cpuGroup struct {
	root, dir string
	v2        bool
}

// cpuacctRoot is where cgroup v1's cpuacct hierarchy is mounted.
const cpuacctRoot = "/sys/fs/cgroup/cpuacct"

// cgroup2Roots are where a cgroup v2 hierarchy is mounted: alone (the
// unified layout) or beside v1's (the hybrid layout).
var cgroup2Roots = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

func newCPUGroup(id string) *cpuGroup {
	name := "parley-sim-" + id
	if g := makeCPUGroup(cpuacctRoot, name, false); g != nil {
		return g
	}
	for _, root := range cgroup2Roots {
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
			continue // not a v2 hierarchy
		}
		if g := makeCPUGroup(root, name, true); g != nil {
			return g
		}
	}
	return nil
}

// makeCPUGroup makes group name under root, nil when it cannot.
func makeCPUGroup(root, name string, v2 bool) *cpuGroup {
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil
	}
	return &cpuGroup{root: root, dir: dir, v2: v2}
}

// add moves process pid (all its threads) into the group.
func (g *cpuGroup) add(pid int) error {
	return os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// usage is the group's CPU time so far.
func (g *cpuGroup) usage() (time.Duration, error) {
	if g.v2 {
		b, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		return parseCPUStat(b)
	}
	b, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return time.Duration(ns), err
}

// counter names the file usage reads.
func (g *cpuGroup) counter() string {
	if g.v2 {
		return "cpu.stat usage_usec"
	}
	return "cpuacct.usage"
}

// parseCPUStat reads usage_usec from a cgroup v2 cpu.stat file.
func parseCPUStat(b []byte) (time.Duration, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("cpu.stat: no usage_usec")
}

// remove moves what is left in the group back to its hierarchy's root
// and deletes it.
func (g *cpuGroup) remove() error {
	if b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs")); err == nil {
		for _, p := range strings.Fields(string(b)) {
			os.WriteFile(filepath.Join(g.root, "cgroup.procs"), []byte(p), 0)
		}
	}
	return os.Remove(g.dir)
}

// cpuSample is the daemons' summed CPU time at an instant.
type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

// startCPUSampler samples the daemons' CPU (their cgroup's usage) every
// cpuSampleEvery from now until the function it returns is called; that
// function stops it and returns the samples (nil without a cgroup, or
// when a daemon could not be put in it). It may be called more than once.
func (r *netnsRun) startCPUSampler() func() []cpuSample {
	if r.cg == nil || r.cgFailed.Load() {
		return func() []cpuSample { return nil }
	}
	stop, out := make(chan struct{}), make(chan []cpuSample, 1)
	go func() {
		var s []cpuSample
		t := time.NewTicker(cpuSampleEvery)
		defer t.Stop()
		take := func() {
			if d, err := r.cg.usage(); err == nil {
				s = append(s, cpuSample{time.Now(), d})
			}
		}
		take()
		for {
			select {
			case <-stop:
				take()
				out <- s
				return
			case <-t.C:
				take()
			}
		}
	}()
	var got []cpuSample
	var once sync.Once
	return func() []cpuSample {
		once.Do(func() { close(stop); got = <-out })
		if r.cgFailed.Load() {
			return nil
		}
		return got
	}
}

// floodCPU splits the daemons' CPU during traffic between the floods of
// the messages (from a message's first watch line, its author's, to its
// last) and the rest: baseline is their CPU per second outside every
// flood (timers, heartbeats, GC, gossip of message IDs at heartbeats), and
// flood what they spent during floods above that baseline, the work the
// messages' copies made while they were on their way. share is the
// fraction of the sampled time covered by floods. ok is false without
// samples inside and outside floods.
func floodCPU(samples []cpuSample, floods [][2]time.Time) (flood time.Duration, baseline, share float64, ok bool) {
	in := func(a, b time.Time) bool {
		for _, f := range floods {
			if a.Before(f[1]) && b.After(f[0]) {
				return true
			}
		}
		return false
	}
	var outCPU, outSpan, inSpan time.Duration
	type bin struct{ dt, cpu time.Duration }
	var ins []bin
	for k := 1; k < len(samples); k++ {
		a, b := samples[k-1], samples[k]
		dt, c := b.at.Sub(a.at), max(b.cpu-a.cpu, 0)
		if in(a.at, b.at) {
			ins = append(ins, bin{dt, c})
			inSpan += dt
		} else {
			outCPU += c
			outSpan += dt
		}
	}
	if outSpan <= 0 || inSpan <= 0 {
		return 0, 0, 0, false
	}
	baseline = outCPU.Seconds() / outSpan.Seconds()
	var f float64
	for _, b := range ins {
		f += b.cpu.Seconds() - baseline*b.dt.Seconds()
	}
	return time.Duration(max(f, 0) * 1e9), baseline, inSpan.Seconds() / (inSpan + outSpan).Seconds(), true
}

// floods is each message's flood: from its earliest watch line to its
// latest; mu must be held.
func (r *netnsRun) floods() [][2]time.Time {
	var out [][2]time.Time
	for _, m := range r.order {
		var lo, hi time.Time
		for _, t := range m.at {
			if t.IsZero() {
				continue
			}
			if lo.IsZero() || t.Before(lo) {
				lo = t
			}
			if t.After(hi) {
				hi = t
			}
		}
		if !lo.IsZero() {
			out = append(out, [2]time.Time{lo, hi})
		}
	}
	return out
}

// floodReport fills the flood split of the daemons' CPU into c; mu must
// be held.
func (r *netnsRun) floodReport(c *CPUReport) {
	flood, base, share, ok := floodCPU(r.cpuSamples, r.floods())
	if !ok {
		return
	}
	c.FloodCPUS = math.Round(flood.Seconds()*1000) / 1000
	c.BaselineCores = math.Round(base*1000) / 1000
	c.FloodShare = math.Round(share*1000) / 1000
	c.FloodSource = fmt.Sprintf("the daemons' cgroup (%s) every %v over %d samples", r.cg.counter(), cpuSampleEvery, len(r.cpuSamples))
}
