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
// router masquerading (iptables MASQUERADE) its own home network. Only
// private ranges, only inside namespaces this test creates; nothing is
// routed to the machine's own network. Every namespace is deleted when the
// test ends, pass or fail.
//
//	pub 10.77.0.2 ── wan ── 10.77.1.2 natA ── 10.78.1.2 A
//	                   └─── 10.77.2.2 natB ── 10.78.2.2 B
//
// The wan routes 10.77.0.0/16 only: a home network (10.78.x) is reachable
// from nowhere but its own router, as at home.
//
// AutoNAT cannot judge addresses in private ranges (it only ever probes
// public ones), so the public node says --reachability public and the
// home nodes --reachability private, as a node would once AutoNAT told it;
// the rest (relay reservation, circuit addresses, the relay's room ACL,
// delivery through the circuit) runs unchanged. Hole punching is not
// shown here for the same reason: DCUtR only exchanges public addresses.

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
	link(name("wan"), "10.77.0.1", name("pub"), "10.77.0.2")
	n.sh("ip", "-n", name("pub"), "route", "add", "default", "via", "10.77.0.1")
	for i, extra := range homes {
		h := i + 1
		nat, home := name(fmt.Sprintf("nat%d", h)), name(fmt.Sprintf("home%d", h))
		n.sh("ip", "netns", "add", nat)
		n.ns = append(n.ns, nat)
		n.sh("ip", "netns", "add", home)
		n.ns = append(n.ns, home)
		n.sh("ip", "-n", nat, "link", "set", "lo", "up")
		n.sh("ip", "-n", home, "link", "set", "lo", "up")
		_, out := link(name("wan"), fmt.Sprintf("10.77.%d.1", h), nat, fmt.Sprintf("10.77.%d.2", h))
		link(nat, fmt.Sprintf("10.78.%d.1", h), home, fmt.Sprintf("10.78.%d.2", h))
		n.sh("ip", "-n", nat, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", h))
		n.sh("ip", "-n", home, "route", "add", "default", "via", fmt.Sprintf("10.78.%d.1", h))
		n.sh("ip", "netns", "exec", nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		n.sh(append([]string{"ip", "netns", "exec", nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", out, "-j", "MASQUERADE"}, extra...)...)
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
	if d.t.Failed() {
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
// link A prints (parley room link: the room ID and A's circuit address), and
// messages flow both ways over the circuit (the relay is no member of the
// room, so nothing else carries them). With --random-fully on one router
// (a symmetric NAT) the same holds: the relay does not need the NAT to
// keep ports.
func TestNATRelayOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{{"cone", nil}, {"symmetric", []string{"--random-fully"}}} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNATNet(t, nil, tc.extra)
			pub := n.start("pub", "pub", "10.77.0.2", "--relay=open", "--reachability", "public")
			boot := "/ip4/10.77.0.2/tcp/4001/p2p/" + pub.peerID
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
			b.must(nil, "send", rr.Room, "hello from B")
			a.waitBody(rr.Room, "hello from B")
			first := time.Since(t0)
			a.must(nil, "send", rr.Room, "hello from A")
			b.waitBody(rr.Room, "hello from A")
			addr := b.connAddr(a.peerID)
			if !strings.Contains(addr, "/p2p-circuit") {
				t.Fatalf("B reaches A at %q, want a relayed address", addr)
			}
			t.Logf("%s NAT: first message across two NATs %v after the home daemons started, A's relay address after %v (over the relay; address %s)", tc.name, first.Round(time.Millisecond), reserved.Round(time.Millisecond), addr)
		})
	}
}

// A relay started with --relay serves only peers that proved a room it
// keeps: a home node with no room in common gets no reservation; once it
// joins a room the relay keeps, it does. Restarted without --bootstrap,
// the home node reconnects from its persisted address book.
func TestNATRelayRoomsOnly(t *testing.T) {
	n := newNATNet(t, nil)
	pub := n.start("pub", "pub", "10.77.0.2", "--relay", "--reachability", "public")
	boot := "/ip4/10.77.0.2/tcp/4001/p2p/" + pub.peerID
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
	pub := n.start("pub", "pub", "10.77.0.2", "--dht", "--relay=open", "--reachability", "public")
	boot := "/ip4/10.77.0.2/tcp/4001/p2p/" + pub.peerID
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
	t.Logf("rendezvous: first message across two NATs %v after the home daemons started", time.Since(t0).Round(time.Millisecond))
	if addr := b.connAddr(a.peerID); !strings.Contains(addr, "/p2p-circuit") {
		t.Fatalf("B reaches A at %q, want a relayed address", addr)
	}
}
