//go:build linux

package simulations

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNetnsLine runs 5 real daemons in network namespaces on a line with
// 30 ms links for a few seconds of traffic (root only; skipped otherwise).
func TestNetnsLine(t *testing.T) {
	if testing.Short() {
		t.Skip("netns: real processes; skipped with -short")
	}
	if err := NetnsAvailable(); err != nil {
		t.Skip("netns backend unavailable: ", err)
	}
	bin := filepath.Join(t.TempDir(), "parley")
	build := exec.Command("go", "build", "-o", bin, "../cmd/parley")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build parley: %v\n%s", err, out)
	}
	sc := lineScenario(t, "netns-line", 5, 6*time.Second, 30*time.Millisecond, "{writers: 2, rate: 2, size: 100}")
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := RunNetns(ctx, sc, NetnsOptions{Out: out, Binary: bin, Progress: nsLogWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.EventsPublished == 0 || rep.Completeness != 1 {
		t.Fatalf("published %d, completeness %v (%d of %d)", rep.EventsPublished, rep.Completeness, rep.Deliveries, rep.DeliveriesExpected)
	}
	// one hop is at least the link latency; the far end of the line is
	// four hops from node 0
	if rep.LatencyMS.P50 < 30 || rep.LatencyMS.Max < 60 {
		t.Errorf("latency %+v: below the hop bound of 30 ms links", rep.LatencyMS)
	}
	if rep.Links != 4 || !strings.HasPrefix(rep.Backend, "netns") || rep.TimeMode != "real" {
		t.Errorf("report: links %d, backend %q, time mode %q", rep.Links, rep.Backend, rep.TimeMode)
	}
	var back struct {
		Deliveries int    `json:"deliveries"`
		Backend    string `json:"backend"`
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil || back.Deliveries != rep.Deliveries || back.Backend != rep.Backend {
		t.Fatalf("report.json: %v, deliveries %d, backend %q", err, back.Deliveries, back.Backend)
	}
	for _, f := range []string{"deliveries.csv", "timeseries.csv", "schedule.json", "latency_cdf.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// nothing left behind
	ns, _ := exec.Command(ipCmd(), "netns", "list").Output()
	if strings.Contains(string(ns), "parley-") {
		t.Errorf("namespaces left behind:\n%s", ns)
	}
	// Where this process can make a cgroup (v1 cpuacct or v2; as root on
	// the development machine and in CI), the daemons' CPU is split between
	// the messages' floods and the rest, and the group is gone after the
	// run.
	if g := newCPUGroup(fmt.Sprintf("probe-%d", os.Getpid())); g != nil {
		g.remove()
		if rep.CPU == nil || rep.CPU.BaselineCores <= 0 || rep.CPU.FloodSource == "" {
			t.Errorf("no flood split of the daemons' CPU: %+v", rep.CPU)
		}
		if left, _ := filepath.Glob(filepath.Join(g.root, fmt.Sprintf("parley-sim-%d-*", os.Getpid()))); len(left) > 0 {
			t.Errorf("cgroups left behind: %v", left)
		}
	}
	t.Logf("netns: %d published, p50 %.0f ms, p90 %.0f ms, max %.0f ms, wall %.1f s", rep.EventsPublished, rep.LatencyMS.P50, rep.LatencyMS.P90, rep.LatencyMS.Max, rep.WallS)
}

func TestNetnsForwarderDelay(t *testing.T) {
	// the delaying pipe on loopback: a round trip takes two link latencies
	ln, err := listenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}()
	a, b := &nsNode{}, &nsNode{}
	f, err := newForwarder("127.0.0.1", "", ln.Addr().String(), 25*time.Millisecond, a, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	c, err := dialTCP(f.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4)
	for range 3 {
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if rtt := time.Since(start); rtt < 50*time.Millisecond || rtt > 150*time.Millisecond {
			t.Errorf("round trip %v through a 25 ms link, want about 50 ms", rtt)
		}
	}
	if a.sentBytes.Load() != 12 || a.recvBytes.Load() != 12 || b.sentBytes.Load() != 12 {
		t.Errorf("bytes: a sent %d recv %d, b sent %d", a.sentBytes.Load(), a.recvBytes.Load(), b.sentBytes.Load())
	}
	// down: the connection is closed and new ones are refused
	f.setUp(false)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Error("connection still open with the link down")
	}
}

type nsLogWriter struct{ t *testing.T }

func (w nsLogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func listenLoopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 2*time.Second) }
