package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// TestLineTopology is the acceptance of issue 2, checked through the CLI:
// three daemons in a line A-B-C (A dials B, B dials C, C never dials A).
//
//	(a) 30 messages sent concurrently from each give 90 on every node, in the same order;
//	(b) C is killed with SIGKILL while A and B send 100 more; C restarts and holds all 190;
//	(c) B is stopped, so A and C are partitioned; both write; B restarts; all converge.
func TestLineTopology(t *testing.T) {
	// A line stays a line only without peer exchange: B would hand A the
	// signed addresses of C, and the partition below would not be one.
	var a, b, c *daemon
	for i, name := range []string{"A", "B", "C"} {
		d := newDaemon(t, name, t.TempDir())
		d.args = append(d.args, "--no-peer-exchange")
		d.start()
		*[]**daemon{&a, &b, &c}[i] = d
	}
	all := []*daemon{a, b, c}
	a.must(nil, "connect", b.addr)
	b.must(nil, "connect", c.addr)

	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "line")
	room := rr.Room
	b.must(nil, "room", "join", room, "--via", a.addr)
	c.must(nil, "room", "join", room, "--via", b.addr)

	want := map[string]bool{} // bodies every node must hold

	ok := t.Run("a_concurrent_senders", func(t *testing.T) {
		errs := parallel(3, 3, func(n int) error {
			d := all[n]
			return joinErrs(sendMany(d, room, d.name+"-a-", 30, 6))
		})
		for _, d := range all {
			for i := range 30 {
				want[fmt.Sprintf("%s-a-%02d", d.name, i)] = true
			}
		}
		if len(errs) > 0 {
			t.Fatalf("sends failed: %v", joinErrs(errs))
		}
		waitConverged(t, all, room, want)
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("b_sigkill_restart", func(t *testing.T) {
		before := countMessages(t, c, room)
		var (
			wg   sync.WaitGroup
			errs []error
			mu   sync.Mutex
		)
		for _, d := range []*daemon{a, b} {
			for i := range 50 {
				want[fmt.Sprintf("%s-b-%02d", d.name, i)] = true
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				e := sendMany(d, room, d.name+"-b-", 50, 4)
				mu.Lock()
				errs = append(errs, e...)
				mu.Unlock()
			}()
		}
		// Kill C mid-stream: once it has taken in some of the new messages,
		// or after a few seconds if none arrive.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if n, err := messageCount(c, room); err == nil && n > before {
				t.Logf("C holds %d messages when killed", n)
				break
			}
			time.Sleep(20 * time.Millisecond) // polling C's count, bounded by the deadline
		}
		c.kill()
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("sends failed: %v", joinErrs(errs))
		}
		c.start()
		eventually(t, 30*time.Second, "C reconnects to a remembered peer after the restart", func() error {
			return hasPeers(c, 1)
		})
		waitConverged(t, all, room, want)
	})
	if !ok {
		t.FailNow()
	}

	t.Run("c_partition_heal", func(t *testing.T) {
		b.stop()
		// The partition must be real: A and C are not connected, and
		// neither holds the other's messages until B is back.
		for _, x := range [][2]*daemon{{a, c}, {c, a}} {
			var p api.PeersResp
			x[0].must(&p, "peers")
			for _, pi := range p.Peers {
				if pi.PeerID == x[1].peerID {
					t.Fatalf("%s is connected to %s directly, so stopping B does not partition them", x[0].name, x[1].name)
				}
			}
		}
		errs := parallel(2, 2, func(n int) error {
			d := []*daemon{a, c}[n]
			return joinErrs(sendMany(d, room, d.name+"-c-", 20, 4))
		})
		if len(errs) > 0 {
			t.Fatalf("sends failed: %v", joinErrs(errs))
		}
		for _, d := range []*daemon{a, c} {
			for i := range 20 {
				want[fmt.Sprintf("%s-c-%02d", d.name, i)] = true
			}
		}
		for _, x := range [][2]*daemon{{a, c}, {c, a}} {
			evs, err := x[0].history(room)
			if err != nil {
				t.Fatal(err)
			}
			own, other := 0, 0
			for _, e := range evs {
				own += boolInt(strings.HasPrefix(e.Body, x[0].name+"-c-"))
				other += boolInt(strings.HasPrefix(e.Body, x[1].name+"-c-"))
			}
			if own != 20 || other != 0 {
				t.Fatalf("while B is down %s holds %d of its own and %d of %s's partition messages, want 20 and 0: no partition", x[0].name, own, other, x[1].name)
			}
		}
		b.start()
		eventually(t, 30*time.Second, "B reconnects to A and C after the restart", func() error {
			return hasPeers(b, 2)
		})
		waitConverged(t, all, room, want)
	})

	for _, d := range all {
		if !d.running() {
			t.Errorf("%s: daemon not running at the end: %v", d.name, d.exitErr)
		}
	}
}

// sendMany sends n messages prefix00.. from d with width concurrent CLI calls.
func sendMany(d *daemon, room, prefix string, n, width int) []error {
	return parallel(n, width, func(i int) error {
		return d.try(nil, "send", room, fmt.Sprintf("%s%02d", prefix, i))
	})
}

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, 3)
	for _, e := range errs[:min(3, len(errs))] {
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("%d failed, first: %s", len(errs), strings.Join(msgs, "; "))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func messageCount(d *daemon, room string) (int, error) {
	evs, err := d.history(room)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range evs {
		if e.Type == "message" {
			n++
		}
	}
	return n, nil
}

func countMessages(t *testing.T, d *daemon, room string) int {
	t.Helper()
	n, err := messageCount(d, room)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func hasPeers(d *daemon, n int) error {
	var p api.PeersResp
	if err := d.try(&p, "peers"); err != nil {
		return err
	}
	if len(p.Peers) < n {
		return fmt.Errorf("%s has %d peers %v, want %d", d.name, len(p.Peers), p.Peers, n)
	}
	return nil
}

// waitConverged polls until every node holds exactly the wanted messages and
// all timelines are identical, then checks that no copy has a gap.
func waitConverged(t *testing.T, nodes []*daemon, room string, want map[string]bool) {
	t.Helper()
	start := time.Now()
	var last []string
	deadline := start.Add(convergeTimeout)
	for {
		err := converged(nodes, room, want)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			for _, d := range nodes {
				var p api.PeersResp
				var info api.RoomInfoResp
				perr, ierr := d.try(&p, "peers"), d.try(&info, "room", "info", room)
				t.Logf("%s: peers %v (%v); sync %+v (%v)", d.name, p.Peers, perr, info.Sync, ierr)
			}
			t.Fatalf("no convergence within %v: %v (states seen while polling: %s)", convergeTimeout, err, strings.Join(last[max(0, len(last)-6):], " | "))
		}
		if msg := err.Error(); len(last) == 0 || last[len(last)-1] != msg {
			last = append(last, msg)
		}
		time.Sleep(250 * time.Millisecond) // poll interval, bounded by the deadline
	}
	t.Logf("converged on %d messages in %v", len(want), time.Since(start).Round(time.Millisecond))
	for _, d := range nodes {
		var info api.RoomInfoResp
		if err := d.try(&info, "room", "info", room); err != nil {
			t.Errorf("room info: %v", err)
			continue
		}
		if info.Sync.Missing != 0 || info.Sync.Pending != 0 {
			t.Errorf("%s: converged timeline but room info reports missing %d, pending %d", d.name, info.Sync.Missing, info.Sync.Pending)
		}
	}
}

func converged(nodes []*daemon, room string, want map[string]bool) error {
	var ref []string
	var refName string
	for _, d := range nodes {
		evs, err := d.history(room)
		if err != nil {
			return err
		}
		var ids []string
		var bodies []string
		for _, e := range evs {
			ids = append(ids, e.ID)
			if e.Type == "message" {
				bodies = append(bodies, e.Body)
			}
		}
		if len(bodies) != len(want) {
			return fmt.Errorf("%s holds %d messages, want %d", d.name, len(bodies), len(want))
		}
		sorted := slices.Clone(bodies)
		sort.Strings(sorted)
		for i, body := range sorted {
			if !want[body] || (i > 0 && sorted[i-1] == body) {
				return fmt.Errorf("%s holds an unexpected or duplicate message %q", d.name, body)
			}
		}
		if ref == nil {
			ref, refName = ids, d.name
			continue
		}
		if !slices.Equal(ids, ref) {
			i := 0
			for i < len(ids) && i < len(ref) && ids[i] == ref[i] {
				i++
			}
			return fmt.Errorf("%s's timeline (%d events) differs from %s's (%d events) from position %d on", d.name, len(ids), refName, len(ref), i)
		}
	}
	return nil
}
