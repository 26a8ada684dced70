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
	"strconv"
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
//	pub  11.77.0.2 ─┐
//	pub2 11.77.0.3 ─┼ wan ── 11.77.1.2 nat1 ── 10.78.1.2 home1
//	pub3 11.77.0.4 ─┘   ├─── 11.77.2.2 nat2 ── 10.78.2.2 home2
//	                    └─── …         natN ── 10.78.N.2 homeN
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
// TestNATReachability runs every daemon without --reachability: three
// public nodes serve AutoNAT to each other and to the homes, and each
// node detects its reachability. The other tests start one public node
// and tell each daemon its reachability (--reachability public|private),
// which changes nothing but the time to the verdict: AutoRelay looks for
// a relay from the start either way (node/reach.go, startRelayFinder).

// pubNS are the public nodes' namespaces, on the wan's 11.77.0.0/24 at
// pubIP: three, so that AutoNAT finds enough servers to judge an address
// (see TestNATReachability).
var pubNS = []string{"pub", "pub2", "pub3"}

func pubIP(i int) string { return fmt.Sprintf("11.77.0.%d", i+2) }

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
	for _, s := range append([]string{"wan"}, pubNS...) {
		n.sh("ip", "netns", "add", name(s))
		n.ns = append(n.ns, name(s))
	}
	// veth links ns1:ip1 <-> ns2:ip2 on a /24; ip1 "" leaves ns1's end
	// without an address
	link := func(ns1, ip1, ns2, ip2 string) (string, string) {
		n.vn++
		a, b := fmt.Sprintf("v%s%da", n.id, n.vn), fmt.Sprintf("v%s%db", n.id, n.vn)
		n.sh("ip", "link", "add", a, "netns", ns1, "type", "veth", "peer", "name", b, "netns", ns2)
		if ip1 != "" {
			n.sh("ip", "-n", ns1, "addr", "add", ip1+"/24", "dev", a)
		}
		n.sh("ip", "-n", ns2, "addr", "add", ip2+"/24", "dev", b)
		n.sh("ip", "-n", ns1, "link", "set", a, "up")
		n.sh("ip", "-n", ns2, "link", "set", b, "up")
		return a, b
	}
	for _, ns := range n.ns {
		n.sh("ip", "-n", ns, "link", "set", "lo", "up")
	}
	n.sh("ip", "netns", "exec", name("wan"), "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// The public nodes share one segment, a bridge in the wan.
	n.sh("ip", "-n", name("wan"), "link", "add", "br0", "type", "bridge")
	n.sh("ip", "-n", name("wan"), "addr", "add", "11.77.0.1/24", "dev", "br0")
	n.sh("ip", "-n", name("wan"), "link", "set", "br0", "up")
	for i, ns := range pubNS {
		w, _ := link(name("wan"), "", name(ns), pubIP(i))
		n.sh("ip", "-n", name("wan"), "link", "set", w, "master", "br0")
		n.sh("ip", "-n", name(ns), "route", "add", "default", "via", "11.77.0.1")
	}
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

// on is n for subtest t: the daemons it starts report to t and stop
// when t ends.
func (n *natNet) on(t *testing.T) *natNet {
	c := *n
	c.t = t
	return &c
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
	return n.startOn(env, name, ns, listenOn(ip, 4001, "tcp", "quic"), flags...)
}

// listenOn is the listen addresses on ip:port over the given transports
// (tcp, quic).
func listenOn(ip string, port int, transports ...string) []string {
	var out []string
	for _, tr := range transports {
		switch tr {
		case "tcp":
			out = append(out, fmt.Sprintf("/ip4/%s/tcp/%d", ip, port))
		case "quic":
			out = append(out, fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, port))
		}
	}
	return out
}

// startOn starts a daemon listening on listen.
func (n *natNet) startOn(env []string, name, ns string, listen []string, flags ...string) *nsDaemon {
	t := n.t
	d := &nsDaemon{t: t, name: name, ns: "pn" + n.id + ns, home: filepath.Join(n.dir, name), out: &syncBuffer{}}
	args := []string{"netns", "exec", d.ns, parleyBin, "daemon", "--home", d.home,
		"--api", "127.0.0.1:0", "--no-mdns", "--log-level", logLevel()}
	for _, l := range listen {
		args = append(args, "--listen", l)
	}
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

// on is d driven from subtest t (its failures are t's).
func (d *nsDaemon) on(t *testing.T) *nsDaemon {
	c := *d
	c.t = t
	return &c
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

// conns is the remote address of each of d's connections to peer p.
func (d *nsDaemon) conns(p string) []string {
	var ps api.PeersResp
	d.must(&ps, "peers")
	for _, x := range ps.Peers {
		if x.PeerID == p {
			return x.Conns
		}
	}
	return nil
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

// TestNATReachability: one topology, three public nodes serving AutoNAT
// (v1 and v2; every node does by default), two homes behind cone NATs
// (MASQUERADE keeps ports) and one behind a symmetric NAT
// (--random-fully). No daemon is told its reachability.
//
//   - detected: the public nodes report public (AutoNAT v1 answers at the
//     first dial back; v2 confirms an address after two servers'
//     answers), the home nodes private (v1's dial back to the router
//     times out, ~17 s), with a relay address through pub.
//   - tcp, quic: two home nodes behind the two cone NATs, listening on one
//     transport only, meet on the relay: the first message arrives by
//     gossip over the circuit (node/limited.go), then DCUtR punches a hole
//     and they end on a direct connection of that transport.
//   - late: a node that meets a peer through a relay before it knows a
//     public address of its own still ends direct (the relayed connection
//     is reopened for a second punch).
//   - symmetric: no hole through a random-port NAT: the two stay on the
//     relay, every message arrives, and no redial opens a second circuit.
//
// PARLEY_E2E_NATRUNS=N runs N pairs in tcp and quic and reports the share
// that went direct and the times to the first message and to the direct
// connection.
func TestNATReachability(t *testing.T) {
	n := newNATNet(t, nil, nil, []string{"--random-fully"})
	t0 := time.Now()
	pub := n.start("pub", "pub", pubIP(0), "--relay=open")
	boot := "/ip4/" + pubIP(0) + "/tcp/4001/p2p/" + pub.peerID
	pubs := []*nsDaemon{pub,
		n.start("pub2", "pub2", pubIP(1), "--bootstrap", boot)}
	// each public node knows the two others: AutoNAT v2 asks a server at
	// most every 2 minutes and confirms an address after two answers
	pubs = append(pubs, n.start("pub3", "pub3", pubIP(2), "--bootstrap", boot, "--bootstrap", "/ip4/"+pubIP(1)+"/tcp/4001/p2p/"+pubs[1].peerID))
	th := time.Now()
	a := n.start("a", "home1", "10.78.1.2", "--bootstrap", boot)
	b := n.start("b", "home2", "10.78.2.2", "--bootstrap", boot)

	t.Run("detected", func(t *testing.T) {
		verdict := func(d *nsDaemon, want string, since time.Time, relayed bool) {
			d = d.on(t)
			eventually(t, 120*time.Second, d.name+" reports "+want, func() error {
				s := d.status()
				if s.Reachability != want {
					return fmt.Errorf("status: %+v", s)
				}
				circuit := slices.ContainsFunc(s.Addrs, func(a string) bool { return strings.Contains(a, "/p2p-circuit") })
				if relayed && (!slices.Contains(s.Relays, pub.peerID) || !circuit) {
					return fmt.Errorf("%s: no relay address through %s: %+v", want, pub.name, s)
				}
				if !relayed && (len(s.Relays) > 0 || circuit) { // a public node needs no relay
					return fmt.Errorf("%s with relay addresses: %+v", want, s)
				}
				return nil
			})
			t.Logf("%s: %s after %v (%+v)", d.name, want, time.Since(since).Round(time.Millisecond), d.status())
		}
		for _, p := range pubs {
			verdict(p, "public", t0, false)
		}
		for _, p := range pubs {
			p := p.on(t)
			eventually(t, 120*time.Second, p.name+"'s addresses confirmed by AutoNAT v2", func() error {
				if s := p.status(); len(s.Reachable) == 0 {
					return fmt.Errorf("status: %+v", s)
				}
				return nil
			})
			t.Logf("%s: AutoNAT v2 confirmed its addresses %v after start: %v", p.name, time.Since(t0).Round(time.Millisecond), p.status().Reachable)
		}
		for _, h := range []*nsDaemon{a, b} {
			verdict(h, "private", th, true)
		}
	})

	// Hole punching over each transport: a pair of home nodes that
	// listen on one transport only, so the direct connection can only be
	// of that one. PARLEY_E2E_NATRUNS=N runs N pairs per transport and
	// reports the share that went direct (one pair must, by default).
	runs := 1
	if v, err := strconv.Atoi(os.Getenv("PARLEY_E2E_NATRUNS")); err == nil && v > 0 {
		runs = v
	}
	for ti, tr := range []struct{ name, proto string }{{"tcp", "/tcp/"}, {"quic", "/quic-v1"}} {
		t.Run(tr.name, func(t *testing.T) {
			n := n.on(t)
			var direct int
			var firsts, directs []time.Duration
			for i := range runs {
				r := n.punch(punchCfg{transport: tr.name, port: 4100 + 100*ti + i, home1: "home1", home2: "home2", ip1: "10.78.1.2", ip2: "10.78.2.2",
					name: fmt.Sprintf("%s%d", tr.name, i), relay: pub, wantDirect: runs == 1})
				firsts = append(firsts, r.first)
				if r.direct > 0 {
					direct++
					directs = append(directs, r.direct)
					if !strings.Contains(r.addr, tr.proto) || strings.Contains(r.addr, "/p2p-circuit") {
						t.Fatalf("run %d: direct connection at %q, want %s and no relay", i, r.addr, tr.proto)
					}
				}
				t.Logf("%s run %d: first message %v after start; direct %v (%s)", tr.name, i, r.first.Round(time.Millisecond), r.direct.Round(time.Millisecond), r.addr)
			}
			t.Logf("%s: %d of %d pairs went direct; first message after start: %s; direct after start: %s", tr.name, direct, runs, spread(firsts), spread(directs))
		})
	}

	// libp2p answers a hole punch only once its node knows a public
	// address of its own, and punches once per relayed connection: y,
	// started with no bootstrap peer, learns its address from the relay
	// only as it joins x through it, too late for x's punch. The relayed
	// connection is reopened for a second punch (node/reach.go,
	// servePunch); before that the pair stayed relayed until the circuit
	// ended, 2 minutes later.
	t.Run("late", func(t *testing.T) {
		n := n.on(t)
		r := n.punch(punchCfg{transport: "tcp", port: 4090, home1: "home1", home2: "home2", ip1: "10.78.1.2", ip2: "10.78.2.2",
			name: "late", relay: pub, wantDirect: true, late: true})
		t.Logf("late: first message %v after start; direct %v (%s)", r.first.Round(time.Millisecond), r.direct.Round(time.Millisecond), r.addr)
	})

	// A symmetric NAT (random ports): no hole to punch; C and A stay on
	// the relay, every message arrives, and the redials of the address
	// book, the peer book (C connected to A by hand) and peer records open
	// no second circuit to a peer already reached through one.
	t.Run("symmetric", func(t *testing.T) {
		n, a := n.on(t), a.on(t)
		tc := time.Now()
		c := n.start("c", "home3", "10.78.3.2", "--bootstrap", boot)
		defer c.stop()
		aAddr := a.circuitAddr(pub.peerID, 60*time.Second)
		var rr api.RoomResp
		a.must(&rr, "room", "create", "--public", "--name", "symmetric")
		var link struct{ Link string }
		a.must(&link, "room", "link", rr.Room)
		c.must(nil, "room", "join", link.Link)
		c.must(nil, "connect", aAddr) // into C's peer book: redialled every 2–3 s while not connected
		c.must(nil, "send", rr.Room, "hello from C")
		a.waitBody(rr.Room, "hello from C")
		first := time.Since(tc)
		const msgs = 20
		t1 := time.Now()
		for i := range msgs {
			from, to := a, c
			if i%2 == 1 {
				from, to = c, a
			}
			body := fmt.Sprintf("message %d from %s", i, from.name)
			from.must(nil, "send", rr.Room, body)
			to.waitBody(rr.Room, body)
		}
		sent := time.Since(t1)
		// DCUtR gives up within seconds (three attempts); the address
		// book redials every 15 s and peer records every 5 s: watch for
		// longer than both.
		most := 0
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			for _, e := range [][2]*nsDaemon{{a, c}, {c, a}} {
				conns := e[0].conns(e[1].peerID)
				if len(conns) == 0 {
					continue // between a closed circuit and the next
				}
				circuits := 0
				for _, addr := range conns {
					if !strings.Contains(addr, "/p2p-circuit") {
						t.Fatalf("%s reaches %s at %q through a symmetric NAT, want a relayed address", e[0].name, e[1].name, addr)
					}
					circuits++
				}
				most = max(most, circuits)
				if circuits > 2 {
					t.Fatalf("%s holds %d circuits to %s: %q", e[0].name, circuits, e[1].name, conns)
				}
			}
			time.Sleep(500 * time.Millisecond) // sampling a state that must not change
		}
		t.Logf("symmetric NAT: first message %v after C started; %d more messages, each sent and awaited in turn, over the relay in %v; still relayed 20 s later, at most %d circuit(s) between A and C",
			first.Round(time.Millisecond), msgs, sent.Round(time.Millisecond), most)
	})
}

// spread is "min–max (median)" of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	return fmt.Sprintf("%v–%v (median %v)", r(s[0]), r(s[len(s)-1]), r(s[len(s)/2]))
}

type punchCfg struct {
	transport    string // tcp or quic: the only one the pair listens on
	port         int
	home1, home2 string // namespaces
	ip1, ip2     string
	name         string
	relay        *nsDaemon
	wantDirect   bool // fail unless the pair goes direct
	// late: y starts with no bootstrap peer, so that it has no public
	// address yet when it joins x through the relay
	late bool
}

type punchResult struct {
	first  time.Duration // start to the first message delivered
	direct time.Duration // start to the direct connection; 0: none
	addr   string        // y's connection to x at the end
}

// punch starts two home nodes x and y, each behind its NAT, that meet on
// the relay: y joins x's room by its link, sends a message, and waits
// (up to a minute) for hole punching to give it a direct connection to
// x. Both stop before punch returns.
func (n *natNet) punch(c punchCfg) punchResult {
	t := n.t
	boot := "/ip4/" + pubIP(0) + "/tcp/4001/p2p/" + c.relay.peerID
	if c.transport == "quic" {
		boot = "/ip4/" + pubIP(0) + "/udp/4001/quic-v1/p2p/" + c.relay.peerID
	}
	t0 := time.Now()
	env := []string{"GOLOG_LOG_LEVEL=error,p2p-holepunch=debug"} // the punch's attempts, in the log of a pair that stays relayed
	x := n.startOn(env, c.name+"x", c.home1, listenOn(c.ip1, c.port, c.transport), "--bootstrap", boot)
	yflags := []string{"--bootstrap", boot}
	if c.late {
		yflags = nil
	}
	y := n.startOn(env, c.name+"y", c.home2, listenOn(c.ip2, c.port, c.transport), yflags...)
	defer x.stop()
	defer y.stop()
	x.circuitAddr(c.relay.peerID, 60*time.Second)
	var rr api.RoomResp
	x.must(&rr, "room", "create", "--public", "--name", c.name)
	var link struct{ Link string }
	x.must(&link, "room", "link", rr.Room)
	y.must(nil, "room", "join", link.Link)
	y.must(nil, "send", rr.Room, "hello from "+y.name)
	x.waitBody(rr.Room, "hello from "+y.name)
	res := punchResult{first: time.Since(t0)}
	// AutoNAT's private verdict takes over 15 s here (the dial back to
	// the router times out); AutoRelay must not wait for it.
	if res.first > 12*time.Second {
		t.Errorf("%s: the first message took %v after start: the relay reservation waited for AutoNAT's verdict", c.name, res.first)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if res.addr = y.connAddr(x.peerID); res.addr != "" && !strings.Contains(res.addr, "/p2p-circuit") {
			res.direct = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			if c.wantDirect {
				t.Fatalf("%s: no direct connection within a minute: y reaches x at %q", c.name, res.addr)
			}
			break
		}
		time.Sleep(200 * time.Millisecond) // polling the connection (eventually would fail the test)
	}
	if res.direct == 0 {
		t.Logf("%s stayed relayed; x's log:\n%s\ny's log:\n%s", c.name, x.out.String(), y.out.String())
	}
	if res.direct > 0 {
		x.must(nil, "send", rr.Room, "over the hole")
		y.waitBody(rr.Room, "over the hole")
	}
	return res
}
