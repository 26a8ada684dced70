//go:build linux

package simulations

// The netns backend: real `parley daemon` processes, one per Linux network
// namespace, joined to the root namespace by veth pairs. Link latency is
// added in user space by a delaying TCP forwarder per topology edge (the
// kernel here has no netem); bandwidth is shaped with tc tbf on each veth.
// It runs in real time and validates the in-process backend at small scale.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"gonum.org/v1/plot/plotter"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node"
)

// NetnsOptions configure RunNetns.
type NetnsOptions struct {
	Nodes    int       // honest nodes; 0 = the scenario's
	Seed     uint64    // 0 = the scenario's
	Out      string    // output directory; "" = none
	Progress io.Writer // progress lines; nil = quiet
	// Binary is the parley executable the daemons run; "" = this
	// executable (the parley CLI itself).
	Binary string
	// Against, when set, is a baseline run this one is compared with.
	Against *Report
}

// netnsMaxNodes bounds a netns run: every node is a real process (and
// has a /24 of its own in 10.x.0.0/16).
const netnsMaxNodes = 250

// netnsAPI is where every daemon serves its API, inside its own namespace.
const netnsAPI = "127.0.0.1:4080"

// netnsJoinSpacing separates the nodes' room joins during setup, as the
// in-process backend does (see joinSpacing in run.go).
const netnsJoinSpacing = 100 * time.Millisecond

// ipCmd is the ip(8) binary.
func ipCmd() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	return "/usr/sbin/ip"
}

// netnsNice is the daemons' absolute niceness (see startDaemon);
// PARLEY_NETNS_NICE overrides it (an experiment knob).
var netnsNice = func() int {
	if v, err := strconv.Atoi(os.Getenv("PARLEY_NETNS_NICE")); err == nil {
		return v
	}
	return 10
}()

// ownNice is this process's niceness (nice(1) adds to it).
func ownNice() int {
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0)
	if err != nil {
		return 0
	}
	return 20 - p // the raw syscall answers 20 - nice
}

func niceCmd() string {
	if p, err := exec.LookPath("nice"); err == nil {
		return p
	}
	return "/usr/bin/nice"
}

func tcCmd() string {
	if p, err := exec.LookPath("tc"); err == nil {
		return p
	}
	return "/usr/sbin/tc"
}

// NetnsAvailable says why the netns backend cannot run here (nil: it can):
// it needs root, ip(8) and the right to create a network namespace.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("the netns backend needs root (network namespaces and veth pairs)")
	}
	if runtime.GOOS != "linux" {
		return errors.New("the netns backend needs Linux")
	}
	name := "parley-probe-" + randHex(3)
	if out, err := exec.Command(ipCmd(), "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	exec.Command(ipCmd(), "netns", "del", name).Run()
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// nsNode is one daemon in its namespace.
type nsNode struct {
	i              int
	ns             string // namespace name
	vroot, vnode   string // veth ends
	rootIP, nodeIP string
	slots          int // link-end addresses added on the root side
	home           string
	log            string
	cmd            *exec.Cmd
	exited         chan struct{}
	api            api.Info
	http           *http.Client
	peerID         string
	stopWatch      context.CancelFunc
	watchDone      chan struct{}
	peakRSSKB      float64
	cpuAtT0        time.Duration       // CPU time used when traffic started
	cpuTraffic     time.Duration       // CPU time used from traffic start to the end
	cpuWarm        time.Duration       // CPU time used over the warm-up
	cpuIdle        time.Duration       // CPU time used over the quiet window after traffic
	sched0, sched  schedStat           // at traffic start; from then to the end
	path0, path1   map[string]pathHist // the daemon's gossip path histograms at traffic start and after
	trace          *gossipTrace        // its gossip path trace after the run (nil: none)
	// TCP payload bytes this node sent and received through forwarders
	sentBytes, recvBytes atomic.Int64
}

// nsMsg is one honest message: who sent it, when each node showed it.
type nsMsg struct {
	id     string
	author int
	at     []time.Time // per node, zero = not yet (the author's own is its acceptance)
}

type netnsRun struct {
	sc   *Scenario
	p    *plan
	opts NetnsOptions
	bin  string
	id   string // run id: namespace and interface names
	oct  int    // second octet of this run's 10.x.0.0/16
	dir  string // homes
	out  io.Writer

	nodes   []*nsNode
	fwds    []*forwarder // per edge; nil for edges to adversaries (not run)
	online  []bool
	linkOff []int
	partOn  []bool
	room    string

	ctx context.Context

	mu       sync.Mutex
	begin    time.Time
	t0       time.Time
	end      time.Time
	msgs     map[string]*nsMsg
	early    map[string]map[int]time.Time // arrivals seen before the send answered
	order    []*nsMsg
	refused  int
	heals    []time.Duration
	onlineAt []struct {
		n  int
		at time.Duration
	}
	warnings []string
	canary   []time.Duration
	load     [2]string        // 1-minute load average at traffic start and end
	hostBusy [2]time.Duration // the host's busy CPU (/proc/stat) at traffic start and end
	selfCPU  [2]time.Duration // this process's CPU at traffic start and end
	idleSpan time.Duration    // the quiet window after traffic (cpuIdle)
	// cg holds the daemons for their summed CPU (nil: no cgroup);
	// cgFailed is set when a daemon could not be put in it.
	cg         *cpuGroup
	cgFailed   atomic.Bool
	cpuSamples []cpuSample // the daemons' CPU during traffic (floodCPU)
	lateMu     sync.Mutex
	late       []time.Duration // forwarders' write lateness during traffic
	sendsWG    sync.WaitGroup
}

// RunNetns runs a scenario on real parley daemons in network namespaces (as
// root) and writes the same outputs as Run. Adversaries and bans are not
// supported by this backend and are ignored with a warning.
func RunNetns(ctx context.Context, sc0 *Scenario, opts NetnsOptions) (rep *Report, err error) {
	sc, err := sc0.with(opts.Nodes, opts.Seed)
	if err != nil {
		return nil, err
	}
	if sc.Nodes > netnsMaxNodes {
		return nil, fmt.Errorf("netns: %d nodes is more than this backend runs (%d); use the mocknet backend or a Shadow export", sc.Nodes, netnsMaxNodes)
	}
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("netns: find the parley binary: %w", err)
		}
	}
	r := &netnsRun{sc: &sc, p: makePlan(&sc), opts: opts, bin: bin, id: randHex(2), ctx: ctx,
		msgs: map[string]*nsMsg{}, early: map[string]map[int]time.Time{}, out: opts.Progress}
	if r.oct, err = freeOctet(); err != nil {
		return nil, err
	}
	if r.dir, err = os.MkdirTemp("", "parley-netns-"); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	r.cg = newCPUGroup(fmt.Sprintf("%d-%s", os.Getpid(), r.id)) // removed by teardown
	wall := time.Now()
	defer func() {
		r.teardown()
		if opts.Out != "" { // keep the daemons' logs
			if logs, _ := filepath.Glob(filepath.Join(r.dir, "node-*.log")); len(logs) > 0 && os.MkdirAll(filepath.Join(opts.Out, "logs"), 0o755) == nil {
				for _, l := range logs {
					if b, err := os.ReadFile(l); err == nil {
						os.WriteFile(filepath.Join(opts.Out, "logs", filepath.Base(l)), b, 0o644)
					}
				}
			}
			r.keepTraces(filepath.Join(opts.Out, "traces"))
		}
		os.RemoveAll(r.dir)
	}()
	if err := r.run(); err != nil {
		return nil, err
	}
	rep = r.report(time.Since(wall))
	if opts.Against != nil {
		rep.Against = Compare(rep, opts.Against)
	}
	if opts.Out != "" {
		if err := r.write(opts.Out, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// freeOctet picks x for this run's 10.x.0.0/16 among 200-249, avoiding any
// address block already configured on this host (another run).
func freeOctet() (int, error) {
	out, err := exec.Command(ipCmd(), "-o", "addr").Output()
	if err != nil {
		return 0, fmt.Errorf("netns: list addresses: %w", err)
	}
	start := int(time.Now().UnixNano() % 50)
	for k := range 50 {
		x := 200 + (start+k)%50
		if !bytes.Contains(out, []byte(fmt.Sprintf(" 10.%d.", x))) {
			return x, nil
		}
	}
	return 0, errors.New("netns: no free 10.x.0.0/16 block in 10.200-249")
}

func (r *netnsRun) say(format string, args ...any) {
	if r.out != nil {
		fmt.Fprintf(r.out, format+"\n", args...)
	}
}

func (r *netnsRun) warn(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := fmt.Sprintf(format, args...)
	if !slices.Contains(r.warnings, w) {
		r.warnings = append(r.warnings, w)
	}
}

func run1(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addr returns the root-side and node-side addresses of node i's /24:
// 10.x.i.2 and 10.x.i.1. Each link end gets a further root-side address
// (linkAddr), so that every peer of a node has its own IP: libp2p limits
// connections per IP.
func (r *netnsRun) addr(i int) (string, string) {
	return fmt.Sprintf("10.%d.%d.2", r.oct, i), fmt.Sprintf("10.%d.%d.1", r.oct, i)
}

// linkAddr adds a root-side address on node i's veth for one link end.
func (r *netnsRun) linkAddr(i int) (string, error) {
	n := r.nodes[i]
	n.slots++
	if n.slots > 250 {
		return "", fmt.Errorf("netns: node %d has more than 250 links", i)
	}
	ip := fmt.Sprintf("10.%d.%d.%d", r.oct, i, 2+n.slots)
	if err := run1(ipCmd(), "addr", "add", ip+"/32", "dev", n.vroot); err != nil {
		return "", err
	}
	return ip, nil
}

// setupNode creates node i's namespace and veth pair (and shaping).
func (r *netnsRun) setupNode(i int) (*nsNode, error) {
	n := &nsNode{i: i, ns: fmt.Sprintf("parley-%s-%d", r.id, i), vroot: fmt.Sprintf("pr%sx%d", r.id, i), vnode: fmt.Sprintf("pn%sx%d", r.id, i)}
	n.rootIP, n.nodeIP = r.addr(i)
	n.home = filepath.Join(r.dir, fmt.Sprintf("node-%d", i))
	n.log = filepath.Join(r.dir, fmt.Sprintf("node-%d.log", i))
	r.nodes[i] = n
	ip := ipCmd()
	steps := [][]string{
		{"netns", "add", n.ns},
		{"link", "add", n.vroot, "type", "veth", "peer", "name", n.vnode},
		{"link", "set", n.vnode, "netns", n.ns},
		{"addr", "add", n.rootIP + "/24", "dev", n.vroot},
		{"link", "set", n.vroot, "up"},
		{"-n", n.ns, "addr", "add", n.nodeIP + "/24", "dev", n.vnode},
		{"-n", n.ns, "link", "set", n.vnode, "up"},
		{"-n", n.ns, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run1(ip, s...); err != nil {
			return n, fmt.Errorf("netns: node %d: %w", i, err)
		}
	}
	if bw := float64(r.sc.Links.Bandwidth); bw > 0 {
		// per host, both directions: the root-side egress is the node's
		// download, the node-side egress its upload
		rate := strconv.FormatInt(int64(bw*8), 10) + "bit"
		burst := strconv.Itoa(max(16384, int(bw/50)))
		tbf := []string{"root", "tbf", "rate", rate, "burst", burst, "latency", "1s"}
		if err := run1(tcCmd(), append([]string{"qdisc", "add", "dev", n.vroot}, tbf...)...); err != nil {
			return n, fmt.Errorf("netns: node %d: %w", i, err)
		}
		if err := run1(ip, append([]string{"netns", "exec", n.ns, tcCmd(), "qdisc", "add", "dev", n.vnode}, tbf...)...); err != nil {
			return n, fmt.Errorf("netns: node %d: %w", i, err)
		}
	}
	return n, nil
}

// startDaemon starts node n's daemon and waits until its API answers.
func (r *netnsRun) startDaemon(n *nsNode) error {
	os.Remove(filepath.Join(n.home, api.InfoFile))
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("netns: node %d log: %w", n.i, err)
	}
	// The daemons run at nice 10: the forwarders (the emulated network) and
	// the watch readers (the measurement) in this process must not wait
	// behind them for a CPU, or the network itself would add latency.
	cmd := exec.Command(ipCmd(), "netns", "exec", n.ns, niceCmd(), "-n", strconv.Itoa(netnsNice-ownNice()), r.bin, "daemon", "--home", n.home,
		"--listen", "/ip4/"+n.nodeIP+"/tcp/4001", "--api", netnsAPI, "--no-mdns", "--no-dht", "--log-level", "warn",
		"--gossip-trace", filepath.Join(n.home, gossipTraceFile))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("netns: start node %d: %w", n.i, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	if r.cg != nil && r.cg.add(cmd.Process.Pid) != nil {
		r.cgFailed.Store(true)
	}
	go func() {
		cmd.Wait()
		logf.Close()
		close(n.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(n.home, api.InfoFile)); err == nil {
			var info api.Info
			if json.Unmarshal(b, &info) == nil && info.URL != "" {
				n.api = info
				break
			}
		}
		select {
		case <-n.exited:
			return fmt.Errorf("netns: node %d daemon exited at start (log: %s)", n.i, tail(n.log))
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns: node %d daemon not ready in 60 s", n.i)
		}
	}
	ns := n.ns
	n.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialInNetns(ctx, ns, network, addr)
		},
		MaxIdleConnsPerHost: 4,
	}}
	var id api.IDResp
	if err := r.call(n, api.EpID.Method, api.Empty{}, &id); err != nil {
		return err
	}
	n.peerID = id.PeerID
	return nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

// dialInNetns opens a connection from inside network namespace ns: the
// daemons' APIs listen on loopback in their own namespaces. The socket is
// created while this OS thread is in ns and keeps that namespace after the
// thread switches back.
func dialInNetns(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open own network namespace: %w", err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open network namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := setns(target.Fd()); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter network namespace %s: %w", ns, err)
	}
	var d net.Dialer
	c, derr := d.DialContext(ctx, network, addr)
	if err := setns(self.Fd()); err != nil {
		// the thread stays locked, so the runtime discards it when this
		// goroutine ends instead of reusing it in the wrong namespace
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("leave network namespace %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return c, derr
}

func setns(fd uintptr) error {
	return unix.Setns(int(fd), unix.CLONE_NEWNET)
}

// call invokes an API method of node n.
func (r *netnsRun) call(n *nsNode, method string, req, resp any) error {
	hr, err := r.post(r.ctx, n, method, req)
	if err != nil {
		return fmt.Errorf("node %d %s: %w", n.i, method, err)
	}
	defer hr.Body.Close()
	if resp == nil {
		return nil
	}
	if err := json.NewDecoder(hr.Body).Decode(resp); err != nil {
		return fmt.Errorf("node %d %s: decode: %w", n.i, method, err)
	}
	return nil
}

func (r *netnsRun) post(ctx context.Context, n *nsNode, method string, req any) (*http.Response, error) {
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, n.api.URL+"/v1/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Authorization", "Bearer "+n.api.Token)
	hreq.Header.Set("Content-Type", "application/json")
	hr, err := n.http.Do(hreq)
	if err != nil {
		return nil, err
	}
	if hr.StatusCode != http.StatusOK {
		defer hr.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(hr.Body, 4096))
		return nil, fmt.Errorf("%s: %s", hr.Status, strings.TrimSpace(string(b)))
	}
	return hr, nil
}

// watch streams node n's accepted events into the arrival records until
// stopped; then it scans the history once for messages accepted before the
// stream opened (after a restart: the catch-up may start first).
func (r *netnsRun) watch(n *nsNode) error {
	ctx, cancel := context.WithCancel(r.ctx)
	hr, err := r.post(ctx, n, api.EpWatch.Method, api.WatchReq{})
	if err != nil {
		cancel()
		return fmt.Errorf("node %d watch: %w", n.i, err)
	}
	n.stopWatch, n.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(n.watchDone)
		defer hr.Body.Close()
		sc := bufio.NewScanner(hr.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			now := time.Now()
			var it api.WatchItem
			if json.Unmarshal(sc.Bytes(), &it) != nil || it.Event == nil || it.Event.Type != "message" {
				continue
			}
			r.arrived(n.i, it.Event.ID, now)
		}
	}()
	if r.room != "" {
		var h api.HistoryResp
		if err := r.call(n, api.EpHistory.Method, api.HistoryReq{Room: r.room, Limit: 100000}, &h); err == nil {
			now := time.Now()
			for _, ev := range h.Events {
				if ev.Type == "message" {
					r.arrived(n.i, ev.ID, now)
				}
			}
		}
	}
	return nil
}

func (r *netnsRun) stopWatching(n *nsNode) {
	if n.stopWatch != nil {
		n.stopWatch()
		<-n.watchDone
		n.stopWatch = nil
	}
}

// arrived records that node i showed event id at t (first time only).
func (r *netnsRun) arrived(i int, id string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.msgs[id]; m != nil {
		if m.at[i].IsZero() {
			m.at[i] = t
		}
		return
	}
	e := r.early[id]
	if e == nil {
		e = map[int]time.Time{}
		r.early[id] = e
	}
	if _, ok := e[i]; !ok {
		e[i] = t
	}
}

// sent records an honest message once its author's send call answered.
func (r *netnsRun) sent(author int, id string, answered time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := &nsMsg{id: id, author: author, at: make([]time.Time, r.p.honest)}
	for i, t := range r.early[id] {
		m.at[i] = t
	}
	delete(r.early, id)
	if m.at[author].IsZero() {
		m.at[author] = answered // the author's watch line had not come in yet
	}
	r.msgs[id] = m
	r.order = append(r.order, m)
}

func (r *netnsRun) counts() (exp, del int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.order {
		exp += r.p.honest - 1
		for i, t := range m.at {
			if i != m.author && !t.IsZero() {
				del++
			}
		}
	}
	return exp, del
}

func (r *netnsRun) run() error {
	p, sc := r.p, r.sc
	r.begin = time.Now()
	if p.total-p.honest > 0 {
		r.warn("adversaries are not supported by the netns backend: %d adversary nodes were not run", p.total-p.honest)
	}
	if len(sc.Bans) > 0 {
		r.warn("bans are not supported by the netns backend: ignored")
	}
	r.nodes = make([]*nsNode, p.honest)
	r.online = make([]bool, p.honest)
	r.linkOff = make([]int, len(p.edges))
	r.partOn = make([]bool, len(p.group))
	r.fwds = make([]*forwarder, len(p.edges))
	stopCanary := r.startCanary()
	defer stopCanary()
	r.say("netns: run %s, %d namespaces in 10.%d.0.0/16, binary %s", r.id, p.honest, r.oct, r.bin)
	for i := range p.honest {
		if _, err := r.setupNode(i); err != nil {
			return err
		}
	}
	if err := r.parallel(p.honest, 8, func(i int) error { return r.startDaemon(r.nodes[i]) }); err != nil {
		return err
	}
	for i := range p.honest {
		r.online[i] = true
	}
	// a forwarder per link between honest nodes (adversaries are not run)
	for k, e := range p.edges {
		if e.a >= p.honest || e.b >= p.honest {
			continue
		}
		la, err := r.linkAddr(e.a)
		if err != nil {
			return err
		}
		lb, err := r.linkAddr(e.b)
		if err != nil {
			return err
		}
		f, err := newForwarder(la, lb, r.nodes[e.b].nodeIP+":4001", p.latency[k], r.nodes[e.a], r.nodes[e.b], r.recordLate)
		if err != nil {
			return fmt.Errorf("netns: edge %d-%d: %w", e.a, e.b, err)
		}
		r.fwds[k] = f
	}
	links := 0
	for _, f := range r.fwds {
		if f != nil {
			links++
		}
	}
	r.say("netns: %d daemons up, %d links; creating the room", p.honest, links)
	var room api.RoomResp
	if err := r.call(r.nodes[0], api.EpRoomCreate.Method, api.RoomCreateReq{Name: sc.Name, Public: true}, &room); err != nil {
		return fmt.Errorf("netns: create room: %w", err)
	}
	r.room = room.Room
	for _, n := range r.nodes {
		if err := r.watch(n); err != nil {
			return err
		}
	}
	if err := r.parallel(len(p.edges), 8, func(k int) error {
		if r.fwds[k] == nil {
			return nil
		}
		return r.connect(k)
	}); err != nil {
		return err
	}
	// joins, spaced as in the in-process backend
	var wg sync.WaitGroup
	errs := make(chan error, p.honest)
	for i := 1; i < p.honest; i++ {
		if i > 1 {
			if err := r.sleep(netnsJoinSpacing); err != nil {
				break
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ev api.RoomEventResp
			if err := r.call(r.nodes[i], api.EpRoomJoin.Method, api.RoomJoinReq{Room: r.room}, &ev); err != nil {
				errs <- fmt.Errorf("netns: join: %w", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := r.ctx.Err(); err != nil {
		return err
	}
	r.say("netns: setup done in %.1fs; warm-up %v", time.Since(r.begin).Seconds(), sc.Warmup.D())
	for _, n := range r.nodes {
		n.cpuWarm = procCPU(n.cmd)
	}
	if err := r.sleep(sc.Warmup.D()); err != nil {
		return err
	}
	for _, n := range r.nodes { // before the CPU is read: the scrape costs some
		n.path0 = r.scrapePath(n)
	}
	for _, n := range r.nodes {
		n.cpuAtT0 = procCPU(n.cmd)
		n.cpuWarm = n.cpuAtT0 - n.cpuWarm
		n.sched0 = procSchedStat(n.cmd)
	}
	r.load[0] = loadAvg()
	r.hostBusy[0] = hostBusyCPU()
	r.selfCPU[0] = selfCPU()
	stopCPU := r.startCPUSampler()
	defer stopCPU()
	r.mu.Lock()
	r.t0 = time.Now()
	r.mu.Unlock()
	for _, a := range p.actions {
		if err := r.sleep(time.Until(r.t0.Add(a.At))); err != nil {
			return err
		}
		r.do(a)
	}
	if err := r.sleep(time.Until(r.t0.Add(sc.Duration.D()))); err != nil {
		return err
	}
	r.sendsWG.Wait()
	end := r.t0.Add(sc.Duration.D() + sc.Drain.D())
	for time.Now().Before(end) {
		if exp, del := r.counts(); del >= exp {
			break
		}
		if err := r.sleep(100 * time.Millisecond); err != nil {
			return err
		}
	}
	r.load[1] = loadAvg()
	r.hostBusy[1] = hostBusyCPU()
	r.selfCPU[1] = selfCPU()
	samples := stopCPU()
	r.mu.Lock()
	r.end = time.Now()
	r.cpuSamples = samples
	r.mu.Unlock()
	exp, del := r.counts()
	r.say("netns: traffic done; %d of %d deliveries", del, exp)
	for _, n := range r.nodes {
		n.peakRSSKB = peakRSSKB(n.cmd)
		n.cpuTraffic = max(procCPU(n.cmd)-n.cpuAtT0, 0) // a restarted daemon: from its restart
		if s := procSchedStat(n.cmd); s.run >= n.sched0.run {
			n.sched = schedStat{s.run - n.sched0.run, s.wait - n.sched0.wait, s.slices - n.sched0.slices}
		}
		n.cpuIdle = procCPU(n.cmd)
	}
	// The daemons' idle CPU, with their meshes formed and no messages: a
	// quiet window after traffic (the warm-up right after setup still
	// carries the joins' and the meshes' work).
	t := time.Now()
	if err := r.sleep(netnsIdleWindow); err != nil {
		return err
	}
	r.idleSpan = time.Since(t)
	for _, n := range r.nodes {
		n.cpuIdle = max(procCPU(n.cmd)-n.cpuIdle, 0)
	}
	for _, n := range r.nodes {
		n.path1 = r.scrapePath(n)
		n.trace = r.readTrace(n)
	}
	return nil
}

// keepTraces copies the daemons' gossip path traces into dir, with the
// nodes' peer IDs and the topology's links, for analysis after the run
// (simulations/README.md, "Outputs").
func (r *netnsRun) keepTraces(dir string) {
	if len(r.nodes) == 0 || os.MkdirAll(dir, 0o755) != nil {
		return
	}
	var peers, links strings.Builder
	for _, n := range r.nodes {
		fmt.Fprintf(&peers, "%d %s\n", n.i, n.peerID)
		if b, err := os.ReadFile(filepath.Join(n.home, gossipTraceFile)); err == nil {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("node-%d.txt", n.i)), b, 0o644)
		}
	}
	for k, e := range r.p.edges {
		fmt.Fprintf(&links, "%d %d %g\n", e.a, e.b, ms(r.p.latency[k]))
	}
	// deliveries.csv's messages: their IDs, and each node's watch line
	var msgs strings.Builder
	r.mu.Lock()
	for _, m := range r.traced().msgs {
		fmt.Fprintf(&msgs, "%d %s %d", m.k, m.id, m.author)
		for _, t := range m.watch {
			var ns int64
			if !t.IsZero() {
				ns = t.UnixNano()
			}
			fmt.Fprintf(&msgs, " %d", ns)
		}
		msgs.WriteByte('\n')
	}
	r.mu.Unlock()
	os.WriteFile(filepath.Join(dir, "messages.txt"), []byte(msgs.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "peers.txt"), []byte(peers.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "links.txt"), []byte(links.String()), 0o644)
}

// gossipTraceFile is a daemon's --gossip-trace file in its home.
const gossipTraceFile = "gossip-trace.txt"

// readTrace reads daemon n's gossip path trace (nil, with a warning, if
// it cannot).
func (r *netnsRun) readTrace(n *nsNode) *gossipTrace {
	f, err := os.Open(filepath.Join(n.home, gossipTraceFile))
	if err == nil {
		var t *gossipTrace
		t, err = parseGossipTrace(f)
		f.Close()
		if err == nil {
			return t
		}
	}
	r.warn("node %d: %v", n.i, err)
	return nil
}

// runTraces is what the run's gossip path traces are read with: the
// traces node by node, each node's peer ID, the topology, and the traffic
// messages.
type runTraces struct {
	traces  []*gossipTrace
	peers   []string
	node    map[string]int // peer ID to node
	link    func(a, b int) (time.Duration, bool)
	msgs    []traceMsg
	ids     []string // the messages' IDs in hex
	authors []int
}

// traced gathers the run's runTraces; mu must be held.
func (r *netnsRun) traced() *runTraces {
	t := &runTraces{node: make(map[string]int, len(r.nodes))}
	for i, n := range r.nodes {
		t.traces, t.peers = append(t.traces, n.trace), append(t.peers, n.peerID)
		t.node[n.peerID] = i
	}
	lat := make(map[[2]int]time.Duration, len(r.p.edges))
	for k, e := range r.p.edges {
		lat[[2]int{e.a, e.b}], lat[[2]int{e.b, e.a}] = r.p.latency[k], r.p.latency[k]
	}
	t.link = func(a, b int) (time.Duration, bool) { d, ok := lat[[2]int{a, b}]; return d, ok }
	for k, m := range r.order {
		if id, err := crdt.ParseID(m.id); err == nil {
			t.msgs = append(t.msgs, traceMsg{k: k, id: hex.EncodeToString(id.Digest()), author: m.author, watch: m.at})
			t.ids, t.authors = append(t.ids, t.msgs[len(t.msgs)-1].id), append(t.authors, m.author)
		}
	}
	return t
}

// hopDist is the topology's hop distance between two nodes (breadth
// first from each source asked, once).
func (r *netnsRun) hopDist() func(a, b int) int {
	adj := make([][]int, len(r.nodes))
	for _, e := range r.p.edges {
		if e.a < len(adj) && e.b < len(adj) {
			adj[e.a], adj[e.b] = append(adj[e.a], e.b), append(adj[e.b], e.a)
		}
	}
	dists := map[int][]int{}
	return func(a, b int) int {
		d, ok := dists[a]
		if !ok {
			d = make([]int, len(adj))
			for i := range d {
				d[i] = -1
			}
			d[a] = 0
			for q := []int{a}; len(q) > 0; q = q[1:] {
				for _, y := range adj[q[0]] {
					if d[y] < 0 {
						d[y] = d[q[0]] + 1
						q = append(q, y)
					}
				}
			}
			dists[a] = d
		}
		return d[b]
	}
}

// scrapePath reads daemon n's gossip path histograms (nil, with a
// warning, if it cannot).
func (r *netnsRun) scrapePath(n *nsNode) map[string]pathHist {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.api.URL+api.MetricsPath, nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+n.api.Token)
	hr, err := n.http.Do(req)
	if err != nil {
		r.warn("metrics of node %d: %v", n.i, err)
		return nil
	}
	defer hr.Body.Close()
	if hr.StatusCode != http.StatusOK {
		r.warn("metrics of node %d: %s", n.i, hr.Status)
		return nil
	}
	hs, err := parsePathHists(io.LimitReader(hr.Body, 8<<20))
	if err != nil {
		r.warn("metrics of node %d: %v", n.i, err)
		return nil
	}
	return hs
}

// netnsIdleWindow is how long the daemons' idle CPU is measured after
// traffic.
const netnsIdleWindow = 10 * time.Second

// hostBusyCPU is the host's CPU time spent on anything but idling so far,
// over all CPUs (/proc/stat; 0 if unknown).
// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func hostBusyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i == 3 || i == 4 {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		busy += x
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// loadAvg is the host's 1-minute load average ("?" if unknown).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// procCPU is a process's user and system CPU time so far (0 if gone).
func procCPU(cmd *exec.Cmd) time.Duration {
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// fields after the command name, which ends at the last ')'
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// schedStat is a process's time on a CPU and time runnable but waiting
// for one, summed over its threads (/proc/PID/task/*/schedstat; threads
// that exited are not counted).
type schedStat struct {
	run, wait time.Duration
	slices    int64 // times put on a CPU
}

func procSchedStat(cmd *exec.Cmd) schedStat {
	var s schedStat
	if cmd == nil || cmd.Process == nil {
		return s
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", cmd.Process.Pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if fs := strings.Fields(string(b)); err == nil && len(fs) >= 2 {
			run, _ := strconv.ParseInt(fs[0], 10, 64)
			wait, _ := strconv.ParseInt(fs[1], 10, 64)
			s.run += time.Duration(run)
			s.wait += time.Duration(wait)
			if len(fs) >= 3 {
				n, _ := strconv.ParseInt(fs[2], 10, 64)
				s.slices += n
			}
		}
	}
	return s
}

// parallel runs f(0..n-1) with at most par at a time; the first error wins.
func (r *netnsRun) parallel(n, par int, f func(int) error) error {
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func (r *netnsRun) sleep(d time.Duration) error {
	if d <= 0 {
		return r.ctx.Err()
	}
	select {
	case <-time.After(d):
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}

// connect has edge k's a dial b through the edge's forwarder.
func (r *netnsRun) connect(k int) error {
	e := r.p.edges[k]
	f := r.fwds[k]
	addr := fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", f.ln.Addr().(*net.TCPAddr).IP, f.port(), r.nodes[e.b].peerID)
	return r.call(r.nodes[e.a], api.EpConnect.Method, api.AddrReq{Addr: addr}, &api.PeerResp{})
}

// reconcile brings edge k's forwarder up or down to match the schedule,
// and redials a link that comes back.
func (r *netnsRun) reconcile(k int) {
	f := r.fwds[k]
	if f == nil {
		return
	}
	e := r.p.edges[k]
	want := r.online[e.a] && r.online[e.b] && r.linkOff[k] == 0
	for pi, on := range r.partOn {
		if on && r.p.group[pi][e.a] != r.p.group[pi][e.b] {
			want = false
		}
	}
	if f.setUp(want) && want {
		go r.connect(k) // the node would redial on its own, with backoff
	}
}

func (r *netnsRun) do(a action) {
	p := r.p
	switch a.Kind {
	case actSend:
		if a.A >= p.honest || !r.online[a.A] {
			return
		}
		r.mu.Lock()
		text := fmt.Sprintf("send %d from %d at %v ", len(r.order)+len(r.early), a.A, a.At)
		r.mu.Unlock()
		if n := r.sc.Room.Size - len(text); n > 0 {
			text += strings.Repeat("x", n)
		}
		r.sendsWG.Add(1)
		go func() {
			defer r.sendsWG.Done()
			var ev api.EventResp
			if err := r.call(r.nodes[a.A], api.EpSend.Method, api.SendReq{Room: r.room, Text: text}, &ev); err != nil {
				r.mu.Lock()
				r.refused++
				r.mu.Unlock()
				return
			}
			r.sent(a.A, ev.Event, time.Now())
		}()
	case actOffline:
		n := r.nodes[a.A]
		r.online[a.A] = false
		for k, e := range p.edges {
			if e.a == a.A || e.b == a.A {
				r.reconcile(k)
			}
		}
		r.stopWatching(n)
		r.stopDaemon(n)
		r.mu.Lock()
		r.onlineAt = append(r.onlineAt, struct {
			n  int
			at time.Duration
		}{-1 - a.A, time.Since(r.t0)})
		r.mu.Unlock()
	case actOnline:
		n := r.nodes[a.A]
		if err := r.startDaemon(n); err != nil {
			r.warn("restart of node %d failed: %v", a.A, err)
			return
		}
		if err := r.watch(n); err != nil {
			r.warn("watch of node %d after restart failed: %v", a.A, err)
		}
		r.online[a.A] = true
		r.mu.Lock()
		r.onlineAt = append(r.onlineAt, struct {
			n  int
			at time.Duration
		}{a.A, time.Since(r.t0)})
		r.mu.Unlock()
		for k, e := range p.edges {
			if e.a == a.A || e.b == a.A {
				r.reconcile(k)
			}
		}
	case actPartition, actHeal:
		r.partOn[a.A] = a.Kind == actPartition
		if a.Kind == actHeal {
			r.heals = append(r.heals, a.At)
		}
		for k := range p.edges {
			r.reconcile(k)
		}
	case actLinkDown:
		r.linkOff[a.A]++
		r.reconcile(a.A)
	case actLinkUp:
		r.linkOff[a.A]--
		r.reconcile(a.A)
	case actSpam, actForge, actBan:
		// warned about at start
	}
}

// stopDaemon ends node n's daemon: SIGTERM, then SIGKILL after 10 s.
func (r *netnsRun) stopDaemon(n *nsNode) {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	if n.http != nil {
		n.http.CloseIdleConnections()
	}
}

// teardown stops every daemon and forwarder and deletes every namespace
// and veth of the run; it runs on success, error and interrupt.
func (r *netnsRun) teardown() {
	for _, n := range r.nodes {
		if n != nil {
			r.stopWatching(n)
		}
	}
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.stopDaemon(n) }()
	}
	wg.Wait()
	if r.cg != nil {
		if err := r.cg.remove(); err != nil {
			r.say("netns: cgroup %s left behind: %v", r.cg.dir, err)
		}
	}
	for _, f := range r.fwds {
		if f != nil {
			f.close()
		}
	}
	for _, n := range r.nodes {
		if n == nil {
			continue
		}
		exec.Command(ipCmd(), "link", "del", n.vroot).Run() // deletes the pair
		if err := delNetns(n.ns); err != nil {
			r.say("netns: namespace %s left behind: %v", n.ns, err)
		}
	}
}

// delNetns deletes network namespace name, trying again for about 5 s
// while ip(8) fails (one of 50 namespaces outlived a run on a machine at
// load 40 when its one attempt was not checked).
func delNetns(name string) error {
	var err error
	for i := range 10 {
		out, e := exec.Command(ipCmd(), "netns", "del", name).CombinedOutput()
		if e == nil {
			return nil
		}
		if _, serr := os.Stat(filepath.Join("/run/netns", name)); errors.Is(serr, os.ErrNotExist) {
			return nil // gone after all
		}
		err = fmt.Errorf("%v: %s", e, strings.TrimSpace(string(out)))
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond) // retry backoff, not a wait for convergence
	}
	return err
}

// peakRSSKB reads a daemon's peak resident size. ip netns exec and nice
// exec the daemon in place, so the process is the daemon itself.
func peakRSSKB(cmd *exec.Cmd) float64 {
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// recordLate keeps a forwarder's write lateness during the traffic phase.
func (r *netnsRun) recordLate(d time.Duration) {
	r.mu.Lock()
	on := !r.t0.IsZero() && r.end.IsZero()
	r.mu.Unlock()
	if on {
		r.lateMu.Lock()
		r.late = append(r.late, d)
		r.lateMu.Unlock()
	}
}

// startCanary measures this process's timer lateness every 10 ms: the
// forwarders add the link latency with timers, so a late timer is a late
// delivery (the validity guard of docs/design.md §8).
func (r *netnsRun) startCanary() func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		next := time.Now().Add(10 * time.Millisecond)
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Until(next)):
			}
			late := time.Since(next)
			r.mu.Lock()
			if !r.t0.IsZero() && r.end.IsZero() {
				r.canary = append(r.canary, late)
			}
			r.mu.Unlock()
			next = next.Add(10 * time.Millisecond)
			if time.Until(next) < 0 {
				next = time.Now().Add(10 * time.Millisecond)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func (r *netnsRun) report(wall time.Duration) *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.p
	rep := &Report{
		Scenario: r.sc.Name, Description: r.sc.Description, Seed: r.sc.Seed, Nodes: p.honest,
		Links: 0, Backend: "netns (real parley daemons in Linux network namespaces; TCP through user-space delaying forwarders; tc tbf bandwidth)",
		TimeMode: "real", VirtualDurationS: r.end.Sub(r.begin).Seconds(), SetupS: r.t0.Sub(r.begin).Seconds(),
		WallS: math.Round(wall.Seconds()*100) / 100, SendsRefused: r.refused,
		ScheduleSHA256: p.hash, Versions: versions(), Params: r.sc,
	}
	for _, f := range r.fwds {
		if f != nil {
			rep.Links++
		}
	}
	var rss float64
	for _, n := range r.nodes {
		rss += n.peakRSSKB
	}
	rep.PeakRSSMB = math.Round(rss / 1024)
	var lat []float64
	for _, m := range r.order {
		rep.EventsPublished++
		rep.DeliveriesExpected += p.honest - 1
		for i, t := range m.at {
			if i == m.author {
				continue
			}
			if t.IsZero() {
				rep.Gaps++
				continue
			}
			rep.Deliveries++
			lat = append(lat, ms(max(t.Sub(m.at[m.author]), 0)))
		}
	}
	rep.LatencyMS = quantiles(lat)
	rep.Completeness = 1
	if rep.DeliveriesExpected > 0 {
		rep.Completeness = float64(rep.Deliveries) / float64(rep.DeliveriesExpected)
	}
	if len(r.heals) > 0 {
		h := r.heals[len(r.heals)-1]
		if v, ok := r.coverAfter(h, func(int) bool { return true }); ok {
			rep.ConvergenceMS = &v
		} else {
			rep.Warnings = append(rep.Warnings, "no convergence after the heal within the run")
		}
	}
	var worst float64
	seen := false
	for _, oc := range r.onlineAt {
		if oc.n < 0 {
			continue
		}
		n := oc.n
		if v, ok := r.coverAfter(oc.at, func(k int) bool { return k == n }); ok {
			worst, seen = max(worst, v), true
		}
	}
	if seen {
		rep.CatchupMS = &worst
	}
	var sent []float64
	var sentSum, recvSum float64
	for _, n := range r.nodes {
		s, rc := float64(n.sentBytes.Load()), float64(n.recvBytes.Load())
		sent = append(sent, s)
		sentSum += s
		recvSum += rc
	}
	slices.Sort(sent)
	rep.BytesPerNode = BytesPerNode{SentMean: math.Round(sentSum / float64(p.honest)), RecvMean: math.Round(recvSum / float64(p.honest)),
		SentP50: sent[len(sent)/2], SentMax: sent[len(sent)-1],
		Scope: "all TCP payload bytes through the link forwarders (encrypted libp2p: gossip, pull sync, identify, ping), whole run incl. setup; not comparable with the mocknet figure"}
	rep.Notes = []string{
		"latency: from the author's watch line for its own message to each other node's watch line for it (local API stream, read by the simulator on the wall clock), so both ends carry the same API overhead",
		"netns links: TCP through a user-space forwarder per link in the simulator process that holds each chunk for the link latency (per direction, order kept; the kernel has no netem); bandwidth with tc tbf per host veth (both directions), not per link; loss is modelled as link outages (forwarded connections closed, new ones refused)",
		"not measured by this backend: sync rounds, dropped RPCs (the daemons expose no tracer); sync_rounds_per_node and dropped_rpcs are 0; duplicates_per_delivery is from the daemons' gossip path traces, traffic messages only (mocknet's counts the whole run)",
		"peak_rss_mb: sum of every daemon's peak resident size (VmHWM)",
		"after a restart, messages the node already held when its watch stream opened are timed at that moment (an upper bound)",
		"REAL TIME: every daemon, the forwarders and the simulator share this machine's CPUs; see the canary note for timer lateness",
	}
	tr := r.traced()
	if len(tr.ids) > 0 {
		rep.DuplicatesPerDelivery = duplicatesPer(tr.traces, tr.peers, tr.ids)
		if pl := pathLatency(tr.traces, tr.ids, tr.authors); len(pl) > 0 {
			q := quantiles(pl)
			rep.PathLatencyMS = &q
		}
	}
	var cpu, warm, idle time.Duration
	var sched schedStat
	for _, n := range r.nodes {
		cpu += n.cpuTraffic
		warm += n.cpuWarm
		idle += n.cpuIdle
		sched.run += n.sched.run
		sched.wait += n.sched.wait
		sched.slices += n.sched.slices
	}
	if span := r.end.Sub(r.t0); span > 0 {
		rep.CPU = &CPUReport{CoresMean: math.Round(cpu.Seconds()/span.Seconds()*1000) / 1000, HostCores: runtime.NumCPU()}
		if rep.EventsPublished > 0 {
			rep.CPU.MSPerMessage = math.Round(float64(cpu)/1e6/float64(rep.EventsPublished)*100) / 100
		}
		if sched.run > 0 {
			rep.CPU.ShareRunnable = math.Round(float64(sched.run)/float64(sched.run+sched.wait)*1e4) / 1e4
		}
		if sched.slices > 0 {
			rep.CPU.WakeupMS = ms(sched.wait / time.Duration(sched.slices))
		}
		if w := r.sc.Warmup.D(); w > 0 {
			rep.CPU.WarmCoresMean = math.Round(warm.Seconds()/w.Seconds()*1000) / 1000
		}
		if r.idleSpan > 0 {
			rep.CPU.IdleCoresMean = math.Round(idle.Seconds()/r.idleSpan.Seconds()*1000) / 1000
		}
		var validate, apply pathHist
		for _, n := range r.nodes {
			validate = validate.plus(n.path1[node.PathValidate].since(n.path0[node.PathValidate]))
			apply = apply.plus(n.path1[node.PathApply].since(n.path0[node.PathApply]))
		}
		if validate.count() > 0 || apply.count() > 0 {
			v, a := stageWalls(tr.traces, tr.peers, tr.ids)
			rep.CPU.Path = &PathReport{Validate: validate.stage(), Apply: apply.stage(),
				Hop:           hopReport(hopExcess(tr.traces, tr.node, tr.link, tr.ids, true)),
				HopFirst:      hopReport(hopExcess(tr.traces, tr.node, tr.link, tr.ids, false)),
				ValidateWall:  hopReport(v),
				ApplyWall:     hopReport(a),
				Decomposition: decompose(tr.traces, tr.node, tr.link, r.hopDist(), tr.msgs)}
		}
		r.floodReport(rep.CPU)
		if other := r.hostBusy[1] - r.hostBusy[0] - cpu; r.hostBusy[0] > 0 && other > 0 {
			rep.CPU.BackgroundCores = math.Round(other.Seconds()/span.Seconds()*1000) / 1000
			if self := r.selfCPU[1] - r.selfCPU[0]; self > 0 {
				rep.CPU.HarnessCores = math.Round(min(self, other).Seconds()/span.Seconds()*1000) / 1000
			}
		}
		note := fmt.Sprintf("daemon CPU from traffic start to the end: %.1f s in %.1f s wall (%.2f of %d cores on average)", cpu.Seconds(), span.Seconds(), cpu.Seconds()/span.Seconds(), runtime.NumCPU())
		if rep.EventsPublished > 0 {
			note += fmt.Sprintf(", %.1f ms per message summed over all nodes", float64(cpu.Milliseconds())/float64(rep.EventsPublished))
		}
		rep.Notes = append(rep.Notes, note)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("host 1-minute load average at traffic start %s, at the end %s (other work on the machine distorts real-time figures)", r.load[0], r.load[1]))
	r.lateMu.Lock()
	if len(r.late) > 0 {
		c := slices.Clone(r.late)
		slices.Sort(c)
		rep.Notes = append(rep.Notes, fmt.Sprintf("link emulation error: forwarders wrote chunks late by p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.1f ms (%d chunks during traffic)",
			ms(c[len(c)/2]), ms(c[int(0.9*float64(len(c)))]), ms(c[min(len(c)-1, int(0.99*float64(len(c))))]), ms(c[len(c)-1]), len(c)))
	}
	r.lateMu.Unlock()
	if len(r.canary) > 0 {
		c := slices.Clone(r.canary)
		slices.Sort(c)
		p99 := c[min(len(c)-1, int(0.99*float64(len(c))))]
		rep.Notes = append(rep.Notes, fmt.Sprintf("canary: 10 ms timer in the simulator, lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d ticks",
			ms(c[len(c)/2]), ms(p99), ms(c[len(c)-1]), len(c)))
		if minLat := slices.Min(p.latency); minLat > 0 && p99 > minLat/20 {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("INVALID timing: canary lateness p99 %.1f ms exceeds 5%% of the smallest link latency (%.1f ms): the machine is overloaded", ms(p99), ms(minLat)))
		}
	}
	rep.Warnings = append(rep.Warnings, r.warnings...)
	return rep
}

// coverAfter: the time after at (since traffic start) until every node
// selected by who held every message published before at.
func (r *netnsRun) coverAfter(at time.Duration, who func(int) bool) (float64, bool) {
	var last time.Duration
	for _, m := range r.order {
		if m.at[m.author].Sub(r.t0) >= at {
			continue
		}
		for n, t := range m.at {
			if !who(n) {
				continue
			}
			if t.IsZero() {
				return 0, false
			}
			last = max(last, t.Sub(r.t0)-at)
		}
	}
	return ms(last), true
}

// write puts report.json, schedule.json, deliveries.csv, timeseries.csv,
// per_node.csv and the latency and coverage plots in dir.
func (r *netnsRun) write(dir string, rep *Report) error {
	if err := writeReport(dir, rep, r.p.actions); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var del [][]string
	var lat []float64
	step := 100 * time.Millisecond
	nb := int(r.end.Sub(r.t0)/step) + 1
	delivered, expected := make([]int, nb), make([]int, nb)
	for k, m := range r.order {
		pub := m.at[m.author].Sub(r.t0)
		if b := int(pub / step); b >= 0 && b < nb {
			expected[b] += r.p.honest - 1
		}
		for n, t := range m.at {
			if n == m.author || t.IsZero() {
				continue
			}
			l := ms(max(t.Sub(m.at[m.author]), 0))
			lat = append(lat, l)
			del = append(del, []string{strconv.Itoa(k), strconv.Itoa(m.author), strconv.Itoa(n), f3(pub.Seconds()), f3(l)})
			if b := int(t.Sub(r.t0) / step); b >= 0 && b < nb {
				delivered[b]++
			}
		}
	}
	if err := writeCSV(filepath.Join(dir, "deliveries.csv"), []string{"msg", "author", "node", "published_s", "latency_ms"}, del); err != nil {
		return err
	}
	var ts [][]string
	var pts []struct{ x, y float64 }
	cd, ce := 0, 0
	for k := range nb {
		cd += delivered[k]
		ce += expected[k]
		cv := 1.0
		if ce > 0 {
			cv = float64(cd) / float64(ce)
		}
		t := (time.Duration(k) * step).Seconds()
		pts = append(pts, struct{ x, y float64 }{t, cv})
		ts = append(ts, []string{f3(t), strconv.Itoa(ce), strconv.Itoa(cd), f3(cv)})
	}
	if err := writeCSV(filepath.Join(dir, "timeseries.csv"), []string{"t_s", "expected_cum", "delivered_cum", "coverage"}, ts); err != nil {
		return err
	}
	var pn [][]string
	for _, n := range r.nodes {
		pn = append(pn, []string{strconv.Itoa(n.i), "honest", strconv.FormatInt(n.sentBytes.Load(), 10), strconv.FormatInt(n.recvBytes.Load(), 10), strconv.FormatFloat(n.peakRSSKB/1024, 'f', 1, 64)})
	}
	if err := writeCSV(filepath.Join(dir, "per_node.csv"), []string{"node", "role", "tcp_bytes_sent", "tcp_bytes_recv", "peak_rss_mb"}, pn); err != nil {
		return err
	}
	return netnsPlots(dir, rep, lat, pts)
}

// forwarder carries one topology link: node a dials it (on a root-side
// address of a's veth), it dials node b's listen address (from a root-side
// address of b's veth), and it holds every chunk for
// the link latency in each direction. Down, it closes its connections and
// refuses new ones (an outage, a partition or an offline end).
type forwarder struct {
	ln     net.Listener
	from   string // local IP for the dial to b; "" = any
	target string
	delay  time.Duration
	a, b   *nsNode
	late   func(time.Duration) // records write lateness; nil = none

	mu    sync.Mutex
	up    bool
	conns map[net.Conn]struct{}
}

func newForwarder(ip, from, target string, delay time.Duration, a, b *nsNode, late func(time.Duration)) (*forwarder, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, from: from, target: target, delay: delay, a: a, b: b, late: late, up: true, conns: map[net.Conn]struct{}{}}
	go f.serve()
	return f, nil
}

func (f *forwarder) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.handle(c)
	}
}

// track registers c while the link is up (false: close it).
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	for _, c := range cs {
		delete(f.conns, c)
		c.Close()
	}
	f.mu.Unlock()
}

func (f *forwarder) handle(in net.Conn) {
	if !f.track(in) {
		in.Close()
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	if f.from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(f.from)}
	}
	out, err := d.Dial("tcp", f.target)
	if err != nil {
		f.untrack(in)
		return
	}
	if !f.track(out) {
		out.Close()
		f.untrack(in)
		return
	}
	done := make(chan struct{}, 2)
	go func() { delayPipe(out, in, f.delay, &f.a.sentBytes, &f.b.recvBytes, f.late); done <- struct{}{} }()
	go func() { delayPipe(in, out, f.delay, &f.b.sentBytes, &f.a.recvBytes, f.late); done <- struct{}{} }()
	<-done
	<-done
	f.untrack(in, out)
}

// setUp brings the link up or down; it reports whether that changed it.
func (f *forwarder) setUp(up bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.up == up {
		return false
	}
	f.up = up
	if !up {
		for c := range f.conns {
			c.Close()
		}
		clear(f.conns)
	}
	return true
}

func (f *forwarder) close() {
	f.ln.Close()
	f.setUp(false)
}

// delayPipe copies src to dst, each chunk delayed by d from when it was
// read: the reader keeps reading into a timestamped queue while the writer
// waits for each chunk's due time, so order is kept and the delay does not
// add up per write.
//
// late, if set, is told how late each chunk was written (the emulation
// error of the link).
func delayPipe(dst, src net.Conn, d time.Duration, sent, recv *atomic.Int64, late func(time.Duration)) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{bytes.Clone(buf[:n]), time.Now().Add(d)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if w := time.Until(c.due); w > 0 {
			time.Sleep(w)
		}
		if late != nil {
			late(time.Since(c.due))
		}
		sent.Add(int64(len(c.b)))
		recv.Add(int64(len(c.b)))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// netnsPlots draws latency_cdf.svg and coverage.svg.
func netnsPlots(dir string, rep *Report, lat []float64, cov []struct{ x, y float64 }) error {
	title := fmt.Sprintf("%s, %d nodes, seed %d (netns, real time)", rep.Scenario, rep.Nodes, rep.Seed)
	if len(lat) > 0 {
		xs := slices.Clone(lat)
		slices.Sort(xs)
		if err := line(filepath.Join(dir, "latency_cdf.svg"), "Delivery latency CDF: "+title, "latency (ms)", "fraction of deliveries", cdf(xs)); err != nil {
			return err
		}
	}
	if len(cov) == 0 {
		return nil
	}
	pts := make(plotter.XYs, len(cov))
	for i, c := range cov {
		pts[i] = plotter.XY{X: c.x, Y: c.y}
	}
	return line(filepath.Join(dir, "coverage.svg"), "Coverage over time: "+title, "time since traffic start (s)", "delivered / expected so far", pts)
}
