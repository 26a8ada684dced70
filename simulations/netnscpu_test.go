//go:build linux

package simulations

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestFloodCPU: daemons at 0.5 cores outside the floods and 2 cores inside
// one flood of 200 ms in a second of samples: a baseline of 0.5 cores and
// 0.3 CPU-s of flood work above it, over 20 % of the time.
func TestFloodCPU(t *testing.T) {
	t0 := time.Unix(1000, 0)
	flood := [2]time.Time{t0.Add(200 * time.Millisecond), t0.Add(400 * time.Millisecond)}
	var s []cpuSample
	var cpu time.Duration
	for k := 0; k <= 100; k++ {
		at := t0.Add(time.Duration(k) * 10 * time.Millisecond)
		s = append(s, cpuSample{at, cpu})
		rate := 0.5
		if !at.Before(flood[0]) && at.Before(flood[1]) {
			rate = 2
		}
		cpu += time.Duration(rate * float64(10*time.Millisecond))
	}
	f, base, share, ok := floodCPU(s, [][2]time.Time{flood})
	if !ok || math.Abs(base-0.5) > 1e-9 || (f-300*time.Millisecond).Abs() > time.Microsecond || math.Abs(share-0.2) > 1e-9 {
		t.Errorf("flood %v, baseline %v, share %v, ok %v; want 300ms, 0.5, 0.2", f, base, share, ok)
	}
	if _, _, _, ok := floodCPU(s, nil); ok {
		t.Error("no floods: ok")
	}
	if _, _, _, ok := floodCPU(s[:1], [][2]time.Time{flood}); ok {
		t.Error("one sample: ok")
	}
}

func TestParseCPUStat(t *testing.T) {
	d, err := parseCPUStat([]byte("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"))
	if err != nil || d != 1234567*time.Microsecond {
		t.Fatalf("got %v, %v", d, err)
	}
	if _, err := parseCPUStat([]byte("nr_periods 0\n")); err == nil {
		t.Fatal("no usage_usec: no error")
	}
}

// TestCPUGroupCounts: in each kind of cgroup this host lets the test make
// (v1 cpuacct, v2 unified or hybrid), a process put in the group has its
// CPU counted, and the group is gone after remove.
func TestCPUGroupCounts(t *testing.T) {
	type kind struct {
		root string
		v2   bool
	}
	kinds := []kind{{cpuacctRoot, false}}
	for _, r := range cgroup2Roots {
		if _, err := os.Stat(filepath.Join(r, "cgroup.controllers")); err == nil {
			kinds = append(kinds, kind{r, true})
		}
	}
	tried := 0
	for _, k := range kinds {
		g := makeCPUGroup(k.root, fmt.Sprintf("parley-sim-test-%d", os.Getpid()), k.v2)
		if g == nil {
			t.Logf("%s: cannot make a group here", k.root)
			continue
		}
		tried++
		// The child waits for a line on stdin, so that it is in the group
		// before it works, then burns a little CPU and exits.
		cmd := exec.Command("/bin/sh", "-c", "read x; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if err := g.add(cmd.Process.Pid); err != nil {
			t.Errorf("%s: add: %v", k.root, err)
		}
		in.Write([]byte("go\n"))
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		used, err := g.usage()
		if err != nil || used <= 0 {
			t.Errorf("%s (%s): usage %v, %v", k.root, g.counter(), used, err)
		}
		if err := g.remove(); err != nil {
			t.Errorf("%s: remove: %v", k.root, err)
		}
		if _, err := os.Stat(g.dir); !os.IsNotExist(err) {
			t.Errorf("%s: group left behind", g.dir)
		}
		t.Logf("%s (%s): %v of CPU counted", k.root, g.counter(), used)
	}
	if tried == 0 {
		t.Skip("no cgroup this process can make")
	}
}
