package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// Real NATs (issue 13): network namespaces joined by veth pairs, a "wan"
// namespace routing between a public node and two home routers, each
// router masquerading (iptables MASQUERADE) its own home network. Every
// namespace is deleted when the test ends, pass or fail.
//
//	pub 11.77.0.2 ── wan ── 11.77.1.2 natA ── 10.78.1.2 A
//	                   └─── 11.77.2.2 natB ── 10.78.2.2 B
//
// The "internet" (wan) segment uses public address space, 11.77.0.0/16:
// libp2p hole-punches (DCUtR) and exchanges observed addresses only for
// addresses manet.IsPublicAddr accepts, which excludes RFC 1918, CGNAT
// (100.64/10) and the documentation and benchmarking ranges (192.0.2/24,
// 198.51.100/24, 203.0.113/24, 198.18/15). These addresses exist only in
// the namespaces this test makes, which have no link to the machine's own
// network: nothing is ever routed to the real holders of that range. The
// wan routes 11.77.0.0/16 only: a home network (10.78.x, private) is
// reachable from nowhere but its own router, as at home.
//
// AutoNAT needs several servers to judge an address, and here there is
// one public node, so the public node says --reachability public and the
// home nodes --reachability private, as a node would once AutoNAT told it;
// the rest (relay reservation, circuit addresses, the relay's room ACL,
// gossip over the circuit, hole punching) runs unchanged.

// natNet is one test's namespaces.
type natNet struct {
	t   *testing.T
	id  string
	dir string
	ns  []string
	vn  int // veth pairs made
}

func natAvailable(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("NAT tests need root (network namespaces, veth pairs, iptables)")
	}
	for _, c := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("NAT tests need %s on PATH", c)
		}
	}
	name := "pn-probe-" + randID()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("NAT tests need network namespaces: ip netns add: %v: %s", err, out)
	}
	exec.Command("ip", "netns", "del", name).Run()
}

func randID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (n *natNet) sh(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNATNet builds the topology above; homes lists, per home router,
// extra iptables arguments for its MASQUERADE rule (e.g. --random-fully).
func newNATNet(t *testing.T, homes ...[]string) *natNet {
	natAvailable(t)
	n := &natNet{t: t, id: randID(), dir: t.TempDir()}
	t.Cleanup(func() {
		for _, ns := range n.ns {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	name := func(s string) string { return "pn" + n.id + s }
	for _, s := range []string{"wan", "pub"} {
		n.sh("ip", "netns", "add", name(s))
		n.ns = append(n.ns, name(s))
	}
	// veth links ns1:ip1 <-> ns2:ip2 on a /24
	link := func(ns1, ip1, ns2, ip2 string) (string, string) {
		n.vn++
		a, b := fmt.Sprintf("v%s%da", n.id, n.vn), fmt.Sprintf("v%s%db", n.id, n.vn)
		n.sh("ip", "link", "add", a, "netns", ns1, "type", "veth", "peer", "name", b, "netns", ns2)
		n.sh("ip", "-n", ns1, "addr", "add", ip1+"/24", "dev", a)
		n.sh("ip", "-n", ns2, "addr", "add", ip2+"/24", "dev", b)
		n.sh("ip", "-n", ns1, "link", "set", a, "up")
		n.sh("ip", "-n", ns2, "link", "set", b, "up")
		return a, b
	}
	for _, ns := range n.ns {
		n.sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	n.sh("ip", "netns", "exec", name("wan"), "sysctl", "-qw", "net.ipv4.ip_forward=1")
	link(name("wan"), "11.77.0.1", name("pub"), "11.77.0.2")
	n.sh("ip", "-n", name("pub"), "route", "add", "default", "via", "11.77.0.1")
	for i, extra := range homes {
		h := i + 1
		nat, home := name(fmt.Sprintf("nat%d", h)), name(fmt.Sprintf("home%d", h))
		n.sh("ip", "netns", "add", nat)
		n.ns = append(n.ns, nat)
		n.sh("ip", "netns", "add", home)
		n.ns = append(n.ns, home)
		n.sh("ip", "-n", nat, "link", "set", "lo", "up")
		n.sh("ip", "-n", home, "link", "set", "lo", "up")
		_, out := link(name("wan"), fmt.Sprintf("11.77.%d.1", h), nat, fmt.Sprintf("11.77.%d.2", h))
		link(nat, fmt.Sprintf("10.78.%d.1", h), home, fmt.Sprintf("10.78.%d.2", h))
		n.sh("ip", "-n", nat, "route", "add", "default", "via", fmt.Sprintf("11.77.%d.1", h))
		n.sh("ip", "-n", home, "route", "add", "default", "via", fmt.Sprintf("10.78.%d.1", h))
		n.sh("ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		n.sh(append([]string{"ip", "netns", "exec", nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", out, "-j", "MASQUERADE"}, extra...)...)
		// A home router's firewall: what comes in from the internet
		// unasked is dropped, not answered with a reset (which would
		// abort the other side's half of a TCP simultaneous open).
		n.sh("ip", "netns", "exec", nat, "iptables", "-A", "INPUT", "-i", out, "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
		n.sh("ip", "netns", "exec", nat, "iptables", "-A", "FORWARD", "-i", out, "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP")
	}
	return n
}

// nsDaemon is a parley daemon running in a namespace, driven by the CLI
// run in the same namespace.
type nsDaemon struct {
	t      *testing.T
	name   string
	ns     string
	home   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	peerID string
}

func (n *natNet) start(name, ns, ip string, flags ...string) *nsDaemon {
	return n.startEnv(nil, name, ns, ip, flags...)
}

// startEnv starts a daemon with env added to its environment.
func (n *natNet) startEnv(env []string, name, ns, ip string, flags ...string) *nsDaemon {
	t := n.t
	d := &nsDaemon{t: t, name: name, ns: "pn" + n.id + ns, home: filepath.Join(n.dir, name), out: &syncBuffer{}}
	args := []string{"netns", "exec", d.ns, parleyBin, "daemon", "--home", d.home,
		"--listen", "/ip4/" + ip + "/tcp/4001", "--listen", "/ip4/" + ip + "/udp/4001/quic-v1",
		"--api", "127.0.0.1:0", "--no-mdns", "--log-level", logLevel()}
	if i := slices.Index(flags, "--dht"); i >= 0 { // the DHT is off unless asked for
		flags = slices.Delete(slices.Clone(flags), i, i+1)
	} else {
		args = append(args, "--no-dht")
	}
	args = append(args, flags...)
	d.cmd = exec.Command("ip", args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if len(env) > 0 {
		d.cmd.Env = append(os.Environ(), env...)
	}
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(d.stop)
	eventually(t, readyTimeout, name+" ready", func() error {
		select {
		case <-d.exited:
			t.Fatalf("%s exited: %s", name, d.out.String())
		default:
		}
		if _, err := os.Stat(filepath.Join(d.home, api.InfoFile)); err != nil {
			return err
		}
		var id api.IDResp
		if err := d.try(&id, "id"); err != nil {
			return err
		}
		d.peerID = id.PeerID
		return nil
	})
	return d
}

func (d *nsDaemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
	if d.t.Failed() || os.Getenv("PARLEY_E2E_NATLOG") != "" { // PARLEY_E2E_NATLOG=1: the logs of passing tests too
		d.t.Logf("%s log:\n%s", d.name, d.out.String())
	}
}

// try runs a CLI command in the daemon's namespace with --json.
func (d *nsDaemon) try(v any, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	full := append([]string{"netns", "exec", d.ns, parleyBin}, append(args, "--home", d.home, "--json")...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: parley %s: %v: %s", d.name, strings.Join(args, " "), err, errb.String())
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(out.Bytes(), v)
}

func (d *nsDaemon) must(v any, args ...string) {
	d.t.Helper()
	if err := d.try(v, args...); err != nil {
		d.t.Fatal(err)
	}
}

func (d *nsDaemon) status() api.StatusResp {
	var s api.StatusResp
	d.must(&s, "status")
	return s
}

// circuitAddr waits for d to hold a reservation on relay and returns its
// address through it.
func (d *nsDaemon) circuitAddr(relay string, timeout time.Duration) string {
	var addr string
	eventually(d.t, timeout, d.name+" reserves a slot on the relay", func() error {
		s := d.status()
		for _, a := range s.Addrs {
			if strings.Contains(a, "/p2p/"+relay+"/p2p-circuit/") {
				addr = a
				return nil
			}
		}
		return fmt.Errorf("status: %+v", s)
	})
	return addr
}

func (d *nsDaemon) waitBody(room, body string) {
	eventually(d.t, convergeTimeout, d.name+" receives "+body, func() error {
		var h api.HistoryResp
		if err := d.try(&h, "history", room); err != nil {
			return err
		}
		for _, e := range h.Events {
			if e.Body == body {
				return nil
			}
		}
		return fmt.Errorf("%d events, not %q", len(h.Events), body)
	})
}

// connAddr is the address of d's connection to peer p.
func (d *nsDaemon) connAddr(p string) string {
	var ps api.PeersResp
	d.must(&ps, "peers")
	for _, x := range ps.Peers {
		if x.PeerID == p {
			return x.Addr
		}
	}
	return ""
}

// Two home nodes, each behind its own NAT, reach each other through a
// public node's open relay: each reserves a slot, B joins A's room by the
// link A prints (parley room link: the room ID and A's circuit address),
// and the first message goes through the circuit by gossip (pubsub runs
// over limited connections, node/limited.go), well before periodic
// anti-entropy (30 s ± 30 %) would carry it. Behind two cone NATs
// (MASQUERADE keeps ports) DCUtR then punches a hole and the two end on a
// direct connection, which later messages use; with --random-fully on one
// router (a symmetric NAT) no hole can be punched: they stay on the relay,
// and every message still arrives.
func TestNATHolePunch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  []string
		direct bool
	}{{"cone", nil, true}, {"symmetric", []string{"--random-fully"}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNATNet(t, nil, tc.extra)
			pub := n.start("pub", "pub", "11.77.0.2", "--relay=open", "--reachability", "public")
			boot := "/ip4/11.77.0.2/tcp/4001/p2p/" + pub.peerID
			t0 := time.Now()
			a := n.start("a", "home1", "10.78.1.2", "--bootstrap", boot, "--reachability", "private")
			b := n.start("b", "home2", "10.78.2.2", "--bootstrap", boot, "--reachability", "private")

			if s := pub.status(); s.Reachability != "public" || s.RelayService != "open" {
				t.Fatalf("public node status: %+v", s)
			}
			a.circuitAddr(pub.peerID, 60*time.Second)
			reserved := time.Since(t0)
			if s := a.status(); s.Reachability != "private" || len(s.Relays) != 1 || s.Relays[0] != pub.peerID {
				t.Fatalf("home node status: %+v", s)
			}
			var rr api.RoomResp
			a.must(&rr, "room", "create", "--public", "--name", "home")
			var link struct{ Link string }
			a.must(&link, "room", "link", rr.Room)
			if !strings.Contains(link.Link, "p2p-circuit") {
				t.Fatalf("room link without A's relay address: %s", link.Link)
			}
			b.must(nil, "room", "join", link.Link)
			joined := time.Now()
			b.must(nil, "send", rr.Room, "hello from B")
			a.waitBody(rr.Room, "hello from B")
			first, gossiped := time.Since(t0), time.Since(joined)
			// Anti-entropy runs every 30 s ± 30 %, so no sooner than 21 s
			// after the join; gossip over the circuit takes well under a
			// second on an idle machine.
			if gossiped > 15*time.Second {
				t.Errorf("the first message took %v after the join: it came by periodic sync, not gossip over the circuit", gossiped)
			}
			a.must(nil, "send", rr.Room, "hello from A")
			b.waitBody(rr.Room, "hello from A")

			if tc.direct {
				var addr string
				eventually(t, 60*time.Second, "B and A end on a direct connection", func() error {
					if addr = b.connAddr(a.peerID); addr == "" || strings.Contains(addr, "/p2p-circuit") {
						return fmt.Errorf("B reaches A at %q", addr)
					}
					return nil
				})
				direct := time.Since(t0)
				if !strings.HasPrefix(addr, "/ip4/11.77.1.2/") {
					t.Fatalf("B reaches A at %q, want A's router's public address", addr)
				}
				a.must(nil, "send", rr.Room, "over the hole")
				b.waitBody(rr.Room, "over the hole")
				t.Logf("%s NAT: first message %v after the home daemons started (%v after the join); relay address after %v; direct connection after %v (%s)",
					tc.name, first.Round(time.Millisecond), gossiped.Round(time.Millisecond), reserved.Round(time.Millisecond), direct.Round(time.Millisecond), addr)
				return
			}
			// No hole through a symmetric NAT: DCUtR tries (three
			// attempts, within seconds of the relayed connection) and
			// fails; the two stay on the relay, and messages keep coming.
			const msgs = 20
			t1 := time.Now()
			for i := range msgs {
				from, to := a, b
				if i%2 == 1 {
					from, to = b, a
				}
				body := fmt.Sprintf("message %d from %s", i, from.name)
				from.must(nil, "send", rr.Room, body)
				to.waitBody(rr.Room, body)
			}
			sent := time.Since(t1)
			// DCUtR gives up within seconds (three attempts); watch the
			// connection for longer than that.
			var addr string
			for deadline := time.Now().Add(12 * time.Second); time.Now().Before(deadline); {
				if addr = b.connAddr(a.peerID); !strings.Contains(addr, "/p2p-circuit") {
					t.Fatalf("B reaches A at %q through a symmetric NAT, want a relayed address", addr)
				}
				time.Sleep(500 * time.Millisecond) // sampling a state that must not change
			}
			t.Logf("%s NAT: first message %v after the home daemons started (%v after the join); relay address after %v; %d more messages, each sent and awaited in turn, over the relay in %v; still relayed 12 s later (%s)",
				tc.name, first.Round(time.Millisecond), gossiped.Round(time.Millisecond), reserved.Round(time.Millisecond), msgs, sent.Round(time.Millisecond), addr)
		})
	}
}

// A relay started with --relay serves only peers that proved a room it
// keeps: a home node with no room in common gets no reservation; once it
// joins a room the relay keeps, it does. Restarted without --bootstrap,
// the home node reconnects from its persisted address book.
func TestNATRelayRoomsOnly(t *testing.T) {
	n := newNATNet(t, nil)
	pub := n.start("pub", "pub", "11.77.0.2", "--relay", "--reachability", "public")
	boot := "/ip4/11.77.0.2/tcp/4001/p2p/" + pub.peerID
	a := n.start("a", "home1", "10.78.1.2", "--bootstrap", boot, "--reachability", "private")
	eventually(t, 30*time.Second, "a connects to the relay", func() error {
		if a.connAddr(pub.peerID) == "" {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	// The relay refuses the reservation at once, after its proof wait
	// (relayProofWait, 10 s); give it the wait and more.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if s := a.status(); len(s.Relays) > 0 {
			t.Fatalf("a relay gave a slot to a peer that shares no room with it: %+v", s)
		}
		time.Sleep(500 * time.Millisecond) // sampling a state that must not change
	}
	var rr api.RoomResp
	pub.must(&rr, "room", "create", "--public", "--name", "community")
	a.must(nil, "room", "join", rr.Room) // through the bootstrap connection: no --via, nothing in the peer book
	a.circuitAddr(pub.peerID, 90*time.Second)

	// Addresses that last: restarted without --bootstrap, A finds the
	// relay again from the addresses it persisted, and catches up.
	a.stop()
	pub.must(nil, "send", rr.Room, "while you were away")
	a = n.start("a", "home1", "10.78.1.2", "--reachability", "private")
	a.waitBody(rr.Room, "while you were away")
}

// Rendezvous by room: two home nodes behind their own NATs and a public
// node running the DHT (and an open relay); B joins A's room by its id
// alone: it finds A as a provider of the room's rendezvous key in the
// DHT and dials A through the relay. The public node, which keeps the DHT
// records, is in no room and never sees the room id.
func TestNATRendezvous(t *testing.T) {
	n := newNATNet(t, nil, nil)
	pub := n.start("pub", "pub", "11.77.0.2", "--dht", "--relay=open", "--reachability", "public")
	boot := "/ip4/11.77.0.2/tcp/4001/p2p/" + pub.peerID
	t0 := time.Now()
	a := n.start("a", "home1", "10.78.1.2", "--dht", "--bootstrap", boot, "--reachability", "private")
	b := n.start("b", "home2", "10.78.2.2", "--dht", "--bootstrap", boot, "--reachability", "private")
	a.circuitAddr(pub.peerID, 60*time.Second)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "found by id")
	a.must(nil, "send", rr.Room, "found me")
	eventually(t, 60*time.Second, "B joins by the room id alone", func() error {
		return b.try(nil, "room", "join", rr.Room)
	})
	b.waitBody(rr.Room, "found me")
	// B dialled A through the relay (A's only address B can reach); by
	// now hole punching may have made it direct (TestNATHolePunch).
	addr := b.connAddr(a.peerID)
	if addr == "" {
		t.Fatalf("B holds no connection to A")
	}
	t.Logf("rendezvous: first message across two NATs %v after the home daemons started (B reaches A at %s)", time.Since(t0).Round(time.Millisecond), addr)
}

// A relay's byte budget: a circuit that carried --relay-circuit-bytes one
// way is closed by the relay, and the home nodes go on over a new circuit,
// where sync carries what the closed one cut off. Behind a symmetric NAT
// there is no direct path; B sends more than a circuit's budget, and A
// receives every message; the relay's log shows the first circuit closed
// at its budget and a second one opened.
func TestNATRelayBudget(t *testing.T) {
	const budget = 64 << 10
	n := newNATNet(t, nil, []string{"--random-fully"})
	pub := n.startEnv([]string{"GOLOG_LOG_LEVEL=error,relay=debug"}, "pub", "pub", "11.77.0.2",
		"--relay=open", "--reachability", "public", "--relay-circuit-bytes", fmt.Sprint(budget))
	boot := "/ip4/11.77.0.2/tcp/4001/p2p/" + pub.peerID
	a := n.start("a", "home1", "10.78.1.2", "--bootstrap", boot, "--reachability", "private")
	b := n.start("b", "home2", "10.78.2.2", "--bootstrap", boot, "--reachability", "private")
	a.circuitAddr(pub.peerID, 60*time.Second)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--public", "--name", "budget")
	var link struct{ Link string }
	a.must(&link, "room", "link", rr.Room)
	b.must(nil, "room", "join", link.Link)
	a.must(nil, "send", rr.Room, "welcome")
	b.waitBody(rr.Room, "welcome")

	const msgs = 8 // 8 × 20 KB: 2.5 circuit budgets
	t0 := time.Now()
	for i := range msgs {
		b.must(nil, "send", rr.Room, fmt.Sprintf("%d %s", i, strings.Repeat("x", 20_000)))
	}
	eventually(t, 90*time.Second, "A receives every message", func() error {
		var h api.HistoryResp
		if err := a.try(&h, "history", rr.Room, "--limit", "100"); err != nil {
			return err
		}
		got := 0
		for _, e := range h.Events {
			if strings.HasSuffix(e.Body, strings.Repeat("x", 20_000)) {
				got++
			}
		}
		if got < msgs {
			return fmt.Errorf("%d of %d", got, msgs)
		}
		return nil
	})
	took := time.Since(t0)
	log := pub.out.String()
	if !strings.Contains(log, fmt.Sprintf("count=%d", budget)) {
		t.Fatalf("the relay closed no circuit at its budget of %d bytes; its log:\n%s", budget, log)
	}
	circuits := strings.Count(log, "relaying connection")
	if circuits < 2 {
		t.Fatalf("%d circuit(s) relayed: want a second one after the first was closed at its budget", circuits)
	}
	t.Logf("relay budget: %d × 20 KB over circuits of %d bytes arrived in %v; %d circuits relayed", msgs, budget, took.Round(time.Millisecond), circuits)
}
