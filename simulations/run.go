package simulations

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// RunOptions override a scenario and say where results go.
type RunOptions struct {
	Nodes    int       // honest nodes; 0 = the scenario's
	Seed     uint64    // 0 = the scenario's
	Out      string    // output directory; "" = none
	Progress io.Writer // progress lines (a bar on a terminal); nil = quiet
	// Step, when set, is given the traffic phase's progress in virtual
	// time (and a note: messages published, coverage) instead of bar lines
	// on Progress: the command draws its own bar.
	Step func(done, total time.Duration, note string)
	// T runs the simulation in this test's synctest bubble. Inside a test
	// binary virtual time needs it; without it a test binary runs in real time.
	T *testing.T
	// RealTime runs mocknet on the wall clock (no bubble). Latencies are
	// then distorted by scheduling above a few hundred nodes.
	RealTime bool
	// Against, when set, is a baseline run this one is compared with
	// (report.json's "against", written with the report).
	Against *Report
	// CPUFrom, when set, is a netns run of the same scenario: the run's
	// CPU model is derived from its daemons' CPU (CPUFrom, replacing the
	// scenario's cpu block), its nodes and seed are the defaults, and the
	// report holds the run against it (report.json's "cross_backend").
	CPUFrom *Report
}

// action kinds of the schedule.
const (
	actSend = iota
	actSpam
	actForge
	actEquivocate
	actOrphan
	actOffline
	actOnline
	actPartition
	actHeal
	actLinkDown
	actLinkUp
	actBan
	actBannedSpam
	actJoinFlood
)

var actNames = []string{"send", "spam", "forge", "equivocate", "orphan", "offline", "online", "partition", "heal", "link-down", "link-up", "ban", "banned-spam", "join-flood"}

// adversaryAct is the action each adversary kind performs at its rate.
var adversaryAct = map[string]int{"spam-flood": actSpam, "equivocation": actEquivocate, "forged-events": actForge, "orphan-flood": actOrphan, "banned-spam": actBannedSpam, "join-flood": actJoinFlood}

type action struct {
	At   time.Duration `json:"at"`
	Kind int           `json:"-"`
	Name string        `json:"kind"`
	A    int           `json:"a"`
	B    int           `json:"b,omitempty"`
}

type edge struct{ a, b int }

// plan is the concrete, seeded expansion of a scenario.
type plan struct {
	// Nodes are numbered honest first, then adversaries that run a
	// replica (spammers: spam-flood, equivocation), then bare gossipsub
	// adversaries (forgers: forged-events, orphan-flood).
	honest, spammers, forgers int
	member                    []bool // per node: joins the room (else reads only)
	total                     int
	edges                     []edge
	latency                   []time.Duration // per edge
	group                     [][]int         // per partition: group of every node
	writers                   []int
	actions                   []action
	hash                      string
}

func makePlan(sc *Scenario) *plan {
	rng := rand.New(rand.NewPCG(sc.Seed, 0x5eed))
	p := &plan{honest: sc.Nodes}
	for _, a := range sc.Adversaries {
		if adversaryKinds[a.Kind] {
			p.spammers += a.Count
		} else {
			p.forgers += a.Count
		}
	}
	p.total = p.honest + p.spammers + p.forgers
	p.edges = topology(sc.Topology, p.honest, rng)
	advBase := p.honest
	for _, a := range sc.Adversaries {
		for range a.Count {
			if a.Target != nil { // eclipse: the one target only
				p.edges = append(p.edges, edge{*a.Target, advBase})
				advBase++
				continue
			}
			for _, j := range rng.Perm(p.honest)[:min(a.Degree, p.honest)] {
				p.edges = append(p.edges, edge{j, advBase})
			}
			advBase++
		}
	}
	// spammers come first after honest nodes, then forgers
	if p.spammers > 0 && p.forgers > 0 {
		// re-number: adversaries were numbered in scenario order; keep
		// spammers in [honest, honest+spammers) by remapping
		remap := map[int]int{}
		s, f, k := p.honest, p.honest+p.spammers, p.honest
		for _, a := range sc.Adversaries {
			for range a.Count {
				if adversaryKinds[a.Kind] {
					remap[k] = s
					s++
				} else {
					remap[k] = f
					f++
				}
				k++
			}
		}
		for i, e := range p.edges {
			if v, ok := remap[e.b]; ok && e.b >= p.honest {
				p.edges[i].b = v
			}
		}
	}
	for range p.edges {
		l := sc.Links.Latency.D()
		if j := sc.Links.Jitter.D(); j > 0 {
			l += time.Duration((rng.Float64()*2 - 1) * float64(j))
		}
		p.latency = append(p.latency, max(l, 0))
	}
	perm := rng.Perm(p.honest)
	w := sc.Room.Writers
	if w == 0 {
		w = p.honest
	}
	p.writers = perm[:w]
	// members: the creator, the writers, then more in shuffled order;
	// replica adversaries always join. The others only read (they track
	// the public room without joining).
	p.member = make([]bool, p.total)
	p.member[0] = true
	for _, n := range p.writers {
		p.member[n] = true
	}
	want := sc.Room.Members
	if want <= 0 || want > p.honest {
		want = p.honest
	}
	have := p.members()
	for _, n := range perm[w:] {
		if have >= want {
			break
		}
		if !p.member[n] {
			p.member[n] = true
			have++
		}
	}
	for n := p.honest; n < p.honest+p.spammers; n++ {
		p.member[n] = true
	}
	D := sc.Duration.D()
	add := func(at time.Duration, kind, a, b int) {
		p.actions = append(p.actions, action{At: at, Kind: kind, Name: actNames[kind], A: a, B: b})
	}
	// offline periods per node: intervals [from, to)
	off := make([][][2]time.Duration, p.total)
	nonWriters := perm[w:]
	for _, o := range sc.Offline {
		for k := 0; k < o.Count && len(nonWriters) > 0; k++ {
			n := nonWriters[0]
			nonWriters = nonWriters[1:]
			off[n] = append(off[n], [2]time.Duration{o.At.D(), o.Back.D()})
		}
	}
	if c := sc.Churn; c != nil && c.Share > 0 {
		cnt := int(math.Round(c.Share * float64(p.honest)))
		for _, n := range rng.Perm(p.honest)[:min(cnt, p.honest)] {
			if n == 0 {
				continue // the room's creator stays
			}
			t := time.Duration(rng.ExpFloat64() * float64(c.Session.D()))
			for t < D {
				back := t + time.Duration(rng.ExpFloat64()*float64(c.Offline.D()))
				off[n] = append(off[n], [2]time.Duration{t, min(back, D)})
				t = back + time.Duration(rng.ExpFloat64()*float64(c.Session.D()))
			}
		}
	}
	online := func(n int, at time.Duration) bool {
		for _, iv := range off[n] {
			if at >= iv[0] && at < iv[1] {
				return false
			}
		}
		return true
	}
	for n, ivs := range off {
		for _, iv := range ivs {
			add(iv[0], actOffline, n, 0)
			add(iv[1], actOnline, n, 0)
		}
	}
	// honest traffic (Poisson over all writers)
	for t := time.Duration(rng.ExpFloat64() / sc.Room.Rate * 1e9); t < D; t += time.Duration(rng.ExpFloat64() / sc.Room.Rate * 1e9) {
		var cands []int
		for _, n := range p.writers {
			if online(n, t) {
				cands = append(cands, n)
			}
		}
		if len(cands) > 0 {
			add(t, actSend, cands[rng.IntN(len(cands))], 0)
		}
	}
	s, f := p.honest, p.honest+p.spammers
	for _, a := range sc.Adversaries {
		for range a.Count {
			n, kind := s, adversaryAct[a.Kind]
			if !adversaryKinds[a.Kind] {
				n = f
				f++
			} else {
				s++
			}
			if a.Kind == "banned-spam" {
				add(a.Start.D(), actBan, n, 0) // the creator bans it; the flood follows
			}
			if a.Rate <= 0 {
				continue // drop, delay: they act on what they receive
			}
			for t := a.Start.D() + time.Duration(rng.ExpFloat64()/a.Rate*1e9); t < a.Stop.D(); t += time.Duration(rng.ExpFloat64() / a.Rate * 1e9) {
				add(t, kind, n, 0)
			}
		}
	}
	for i, pt := range sc.Partitions {
		g := make([]int, p.total)
		for k, n := range rng.Perm(p.honest) {
			g[n] = k * pt.Groups / p.honest
		}
		for n := p.honest; n < p.total; n++ {
			g[n] = n % pt.Groups
		}
		p.group = append(p.group, g)
		add(pt.At.D(), actPartition, i, 0)
		add(pt.Heal.D(), actHeal, i, 0)
	}
	if sc.Links.Loss > 0 {
		rate := sc.Links.Loss / sc.Links.Outage.D().Seconds() // outages per second per link
		for i, e := range p.edges {
			if e.a >= p.honest || e.b >= p.honest {
				continue
			}
			for t := time.Duration(rng.ExpFloat64() / rate * 1e9); t < D; t += time.Duration(rng.ExpFloat64() / rate * 1e9) {
				add(t, actLinkDown, i, 0)
				add(min(t+sc.Links.Outage.D(), D), actLinkUp, i, 0)
			}
		}
	}
	for _, b := range sc.Bans {
		add(b.At.D(), actBan, p.writers[b.Target], 0)
	}
	slices.SortStableFunc(p.actions, func(x, y action) int { return int(x.At - y.At) })
	h := sha256.New()
	json.NewEncoder(h).Encode(struct {
		E []edge
		L []time.Duration
		W []int
		A []action
		G [][]int
	}{p.edges, p.latency, p.writers, p.actions, p.group})
	p.hash = hex.EncodeToString(h.Sum(nil))
	return p
}

// members counts the honest nodes that join the room.
func (p *plan) members() int {
	n := 0
	for _, m := range p.member[:p.honest] {
		if m {
			n++
		}
	}
	return n
}

func topology(t Topology, n int, rng *rand.Rand) []edge {
	seen := map[edge]bool{}
	var out []edge
	add := func(a, b int) {
		if a == b {
			return
		}
		if a > b {
			a, b = b, a
		}
		e := edge{a, b}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	d := min(t.Degree, n-1)
	randomRegular := func(nodes []int) {
		// each node picks about d/2 random partners, then top up the lonely
		deg := map[int]int{}
		for _, a := range nodes {
			for deg[a] < d {
				b := nodes[rng.IntN(len(nodes))]
				if a == b || deg[b] >= d+2 {
					if len(nodes) <= d+1 {
						break
					}
					continue
				}
				x, y := min(a, b), max(a, b)
				if seen[edge{x, y}] {
					if len(nodes) <= d+1 {
						break
					}
					continue
				}
				add(a, b)
				deg[a]++
				deg[b]++
			}
		}
	}
	switch t.Kind {
	case "line":
		for i := 1; i < n; i++ {
			add(i-1, i)
		}
	case "full":
		for i := range n {
			for j := i + 1; j < n; j++ {
				add(i, j)
			}
		}
	case "small-world":
		for i := range n {
			for k := 1; k <= max(d/2, 1); k++ {
				j := (i + k) % n
				if rng.Float64() < t.Rewire {
					j = rng.IntN(n)
				}
				add(i, j)
			}
		}
	case "clusters":
		c := max(t.Clusters, 1)
		groups := make([][]int, c)
		for i := range n {
			groups[i%c] = append(groups[i%c], i)
		}
		for _, g := range groups {
			randomRegular(g)
		}
		for x := range c {
			for y := x + 1; y < c; y++ {
				for range max(t.Bridges, 1) {
					add(groups[x][rng.IntN(len(groups[x]))], groups[y][rng.IntN(len(groups[y]))])
				}
			}
		}
	default: // random-regular
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		randomRegular(all)
	}
	// connectivity: link any component to the first one
	parent := make([]int, n)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(x int) int {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, e := range out {
		parent[find(e.a)] = find(e.b)
	}
	for i := 1; i < n; i++ {
		if find(i) != find(0) {
			add(rng.IntN(i), i)
			parent[find(i)] = find(0)
		}
	}
	return out
}

// Run runs a scenario and writes its outputs to opts.Out.
func Run(ctx context.Context, sc0 *Scenario, opts RunOptions) (*Report, error) {
	var model *CPU
	var derivation string
	if x := opts.CPUFrom; x != nil {
		var err error
		var rest float64
		if model, derivation, rest, err = cpuFrom(x); err != nil {
			return nil, err
		}
		if x.Scenario != sc0.Name {
			return nil, fmt.Errorf("cpu-from: the netns run is of scenario %s, not %s", x.Scenario, sc0.Name)
		}
		if opts.Nodes == 0 {
			opts.Nodes = x.Nodes
		}
		if opts.Seed == 0 {
			opts.Seed = x.Seed
		}
		if rest > 0 {
			// A first pass without the per-byte cost counts the gossip
			// the model's nodes exchange during traffic.
			first := *sc0
			first.CPU = model
			rep, err := Run(ctx, &first, RunOptions{T: opts.T, Nodes: opts.Nodes, Seed: opts.Seed, RealTime: opts.RealTime})
			if err != nil {
				return nil, fmt.Errorf("cpu-from: first pass: %w", err)
			}
			// The CPU of the daemons' floods is charged over the bytes the
			// model exchanged during its own floods: the same span.
			var kb float64
			span := "sent and received"
			if rep.CPU != nil {
				kb = rep.CPU.TrafficKB
				if c := x.CPU; c.FloodCPUS > 0 && c.BaselineCores > 0 && rep.CPU.FloodKB > 0 {
					kb, span = rep.CPU.FloodKB, "sent and received during the messages' floods"
				}
			}
			var how string
			if model.PerKB, how, err = perKB(rest, kb, span); err != nil {
				return nil, err
			}
			derivation += how
		}
	}
	sc, err := sc0.with(opts.Nodes, opts.Seed)
	if err != nil {
		return nil, err
	}
	if model != nil {
		sc.CPU = model
	}
	s := &sim{sc: &sc, opts: opts, plan: makePlan(&sc), outer: ctx, spamLast: map[int]*crdt.Event{}}
	s.col = newCollector(s.plan)
	// Replicas in one process share the room state they have in common
	// (rooms/share.go); it stays on for the process (it changes no result).
	rooms.ShareBetweenRooms(true)
	wall := time.Now()
	var runErr, bubbleErr error
	body := func() { runErr = s.run() }
	defer startWall()()
	mode := "virtual"
	switch {
	case opts.T != nil && !opts.RealTime:
		opts.T.Helper()
		synctest.Test(opts.T, func(*testing.T) { body() })
	case opts.RealTime || testing.Testing():
		mode = "real"
		body()
	default:
		bubbleErr = runVirtual(body)
	}
	if runErr != nil {
		return nil, runErr
	}
	rep := s.report(mode, time.Since(wall))
	if bubbleErr != nil {
		rep.Warnings = append(rep.Warnings, bubbleErr.Error())
	}
	if opts.Against != nil {
		rep.Against = Compare(rep, opts.Against)
	}
	if opts.CPUFrom != nil {
		rep.CrossBackend = CompareBackends(rep, opts.CPUFrom, derivation)
	}
	if opts.Out != "" {
		if err := s.write(opts.Out, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type sim struct {
	sc    *Scenario
	opts  RunOptions
	plan  *plan
	col   *collector
	cpu   *cpuModel // nil: work is free in virtual time
	outer context.Context

	mn       mocknet.Mocknet
	hosts    []host.Host
	idents   []*crdt.Identity
	stores   []crdt.Store
	reps     []*node.Replica
	cancels  []context.CancelFunc
	dones    []chan struct{}
	online   []bool
	edgeUp   []bool
	linkDown []int  // outstanding outages per edge
	partOn   []bool // per partition: active
	room     crdt.RoomID
	forgers  map[int]*pubsub.Topic
	spamLast map[int]*crdt.Event            // banned-spam adversaries' latest events (bannedspam.go)
	bases    map[crdt.RoomID]*node.RoomBase // the preloaded prefix, shared by the replicas (preload)
	ctx      context.Context
	wg       sync.WaitGroup
	t0       time.Time
	heals    []time.Duration
	offs     map[int][2]time.Duration
	refused  int
	bans     int
	progress time.Time
	wall0    time.Time // wall clock at the start, for progress lines
}

func (s *sim) run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.ctx = ctx
	s.wall0 = wallNow()
	p := s.plan
	// in the bubble: blocking on a channel made outside it is not durable,
	// and virtual time would never advance past a busy core
	s.cpu = newCPUModel(s.sc.CPU, p.total, s.sc.Seed)
	s.col.cpu = s.cpu
	s.mn = mocknet.New()
	defer func() {
		// Runs after the replicas stopped (the defer below): stop the bare
		// adversaries' pubsub, let the streams they were opening settle
		// (virtual time in a bubble), and only then close every link, so
		// that no stream is opened on a closing connection and left
		// blocked forever (mocknet does not reset those).
		cancel()
		time.Sleep(time.Second)
		s.mn.Close()
	}()
	keys := rand.NewChaCha8(seed32(s.sc.Seed))
	s.hosts = make([]host.Host, p.total)
	s.idents = make([]*crdt.Identity, p.total)
	s.stores = make([]crdt.Store, p.total)
	s.reps = make([]*node.Replica, p.total)
	s.cancels = make([]context.CancelFunc, p.total)
	s.dones = make([]chan struct{}, p.total)
	s.online = make([]bool, p.total)
	s.edgeUp = make([]bool, len(p.edges))
	s.linkDown = make([]int, len(p.edges))
	s.partOn = make([]bool, len(p.group))
	s.forgers = map[int]*pubsub.Topic{}
	s.col.begin = time.Now()
	for i := range p.total {
		master, err := crdt.GenerateKey(keys)
		if err != nil {
			return err
		}
		ident, err := crdt.NewIdentity(master, keys)
		if err != nil {
			return err
		}
		pub := ident.Device.Public()
		sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pub[:]...))
		if err != nil {
			return err
		}
		addr, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", i>>16&255, i>>8&255, i&255))
		h, err := s.mn.AddPeer(sk, addr)
		if err != nil {
			return err
		}
		s.hosts[i], s.idents[i], s.stores[i] = h, ident, crdt.NewMemStore()
		s.col.users[ident.User] = i
	}
	defer func() {
		for i, c := range s.cancels {
			if c != nil {
				c()
				<-s.dones[i]
			}
		}
		s.wg.Wait()
	}()
	members := p.honest + p.spammers
	preload := s.sc.Room.Setup == SetupPreload
	if preload {
		// The creator founds the room alone; every member's join is then
		// authored and signed in sequence and put into every store, and
		// the replicas start holding the room (see preload).
		if err := s.start(0); err != nil {
			return err
		}
		if err := s.createRoom(); err != nil {
			return err
		}
		s.stop(0)
		s.say("setup: %d hosts; preloading the room with %d joins, %s", p.total, members-1, s.wallHeap())
		if err := s.preload(); err != nil {
			return err
		}
		s.say("setup: preloaded, %s", s.wallHeap())
	}
	for i := range members {
		if members >= 100 && i > 0 && i%(members/10) == 0 {
			s.say("setup: %d of %d nodes started, %s", i, members, s.wallHeap())
		}
		if err := s.start(i); err != nil {
			return err
		}
	}
	for i := members; i < p.total; i++ {
		s.online[i] = true
	}
	for i := range p.edges {
		s.reconcile(i)
	}
	s.say("setup: %d nodes (%d honest), %d links, room setup %q", p.total, p.honest, len(p.edges), cmp.Or(s.sc.Room.Setup, SetupLive))
	if !preload {
		if err := s.createRoom(); err != nil {
			return err
		}
		// Nodes start tracking and joining the room joinSpacing apart:
		// simultaneous joins of every node make a DAG with as many
		// concurrent heads as nodes, and state resolution over it costs
		// O(N²) per node (a join storm no real room sees; the traffic
		// phase is what is measured).
		spacing := joinSpacing
		if v, err := time.ParseDuration(os.Getenv("PARLEY_SIM_JOIN_SPACING")); err == nil {
			spacing = v
		}
		if err := s.forEachJoiner(spacing, func(i int) error {
			if err := s.track(i); err != nil {
				return err
			}
			if !p.member[i] {
				return nil
			}
			return s.join(i)
		}); err != nil {
			return err
		}
	}
	if err := s.setJoinWork(); err != nil {
		return err
	}
	for i := p.honest + p.spammers; i < p.total; i++ {
		if err := s.startForger(i); err != nil {
			return err
		}
	}
	defer s.cpu.idle(s.sc.Seed, p.honest+p.spammers)()
	s.say("setup done at %.1fs virtual; warm-up %v", time.Since(s.col.begin).Seconds(), s.sc.Warmup.D())
	s.debugSleep("warm-up", s.sc.Warmup.D())
	s.t0 = time.Now()
	s.col.startMeasuring(s.t0)
	for _, a := range p.actions {
		if err := s.outer.Err(); err != nil {
			return err
		}
		s.sleepUntil(a.At)
		s.do(a)
	}
	s.sleepUntil(s.sc.Duration.D())
	s.col.stopPublishing()
	// drain: stop early when every expected delivery has happened
	end := s.sc.Duration.D() + s.sc.Drain.D()
	for time.Since(s.t0) < end {
		if s.outer.Err() != nil {
			return s.outer.Err()
		}
		if s.col.complete() {
			break
		}
		s.sleepUntil(min(time.Since(s.t0)+250*time.Millisecond, end))
	}
	s.col.finish(time.Now())
	s.audit()
	s.tick(true)
	return nil
}

// audit reads what misbehaviour left behind on the honest nodes that are
// online at the end: events still held back as orphans, and forked events
// still visible in timelines.
func (s *sim) audit() {
	c := s.col
	c.mu.Lock()
	orphans, forks := len(c.orphanIDs) > 0, c.forkPairs > 0
	c.mu.Unlock()
	if !orphans && !forks {
		return
	}
	pendingMax, visibleMax := 0, 0
	for n := range s.plan.honest {
		if !s.online[n] {
			continue
		}
		e := s.reps[n].Engine
		if orphans {
			if info, err := e.Info(s.ctx, api.RoomReq{Room: s.room.String()}); err == nil {
				pendingMax = max(pendingMax, info.Sync.Pending)
			}
		}
		if forks {
			h, err := e.History(s.ctx, api.HistoryReq{Room: s.room.String(), Limit: 1 << 20})
			if err != nil {
				continue
			}
			vis := 0
			c.mu.Lock()
			for _, ev := range h.Events {
				if id, err := crdt.ParseID(ev.ID); err == nil && c.forkIDs[id] {
					vis++
				}
			}
			c.mu.Unlock()
			visibleMax = max(visibleMax, vis)
		}
	}
	c.mu.Lock()
	c.pendingMax, c.forkVisibleMax = pendingMax, visibleMax
	c.mu.Unlock()
}

// debugSleep sleeps d of virtual time; with PARLEY_SIM_DEBUG set it prints
// wall time, goroutines and heap every virtual second (work on the simulator).
func (s *sim) debugSleep(phase string, d time.Duration) {
	if os.Getenv("PARLEY_SIM_DEBUG") == "" || s.opts.Progress == nil {
		time.Sleep(d)
		return
	}
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(min(time.Until(end), time.Second))
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.say("%s %.1fs virtual: wall %s goroutines %d heap %d MB", phase, time.Since(s.col.begin).Seconds(), wallNow().Format("15:04:05.0"), runtime.NumGoroutine(), ms.HeapAlloc>>20)
	}
}

func seed32(seed uint64) [32]byte {
	var b [32]byte
	for i := range 4 {
		v := seed*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9
		for k := range 8 {
			b[i*8+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func (s *sim) sleepUntil(at time.Duration) {
	for {
		d := at - time.Since(s.t0)
		if d <= 0 {
			return
		}
		step := min(d, time.Second)
		time.Sleep(step)
		s.tick(false)
	}
}

func (s *sim) say(format string, args ...any) {
	if s.opts.Progress != nil {
		fmt.Fprintf(s.opts.Progress, format+"\n", args...)
	}
}

// tick prints a progress bar line every tenth of the traffic phase
// (virtual), or gives Step the progress at every tick.
func (s *sim) tick(final bool) {
	if s.opts.Progress == nil || s.t0.IsZero() {
		return
	}
	total := s.sc.Duration.D()
	if !final && time.Since(s.progress) < total/10 && s.opts.Step == nil {
		return
	}
	s.progress = time.Now()
	el := min(time.Since(s.t0), total)
	frac := float64(el) / float64(total)
	bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
	pub, exp, del := s.col.counts()
	cov := 1.0
	if exp > 0 {
		cov = float64(del) / float64(exp)
	}
	if s.opts.Step != nil {
		s.opts.Step(el, total, fmt.Sprintf("published %d  coverage %.1f%%", pub, 100*cov))
		return
	}
	fmt.Fprintf(s.opts.Progress, "[%s] %5.1fs/%gs virtual  published %d  coverage %.1f%%  %s\n", bar, el.Seconds(), total.Seconds(), pub, 100*cov, s.wallHeap())
}

// wallHeap says how long the run has taken on the wall clock and how large
// its heap is, for progress lines.
func (s *sim) wallHeap() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("%s wall, heap %d MB", wallSince(s.wall0).Round(time.Second), ms.HeapAlloc>>20)
}

// start (re)starts replica i on its host and store.
func (s *sim) start(i int) error {
	tr := &nodeTracer{i: i, col: s.col}
	ro := node.ReplicaOptions{Tracer: tr, Seed: s.sc.Seed*1_000_003 + uint64(i), Unguarded: i >= s.plan.honest, Bases: s.bases, Lean: true}
	if s.cpu != nil {
		ro.PubSubOptions = []pubsub.Option{s.cpu.validator(i, s.hosts[i].ID())}
		ro.FrameDelay = s.cpu.frameDelay(i)
		ro.FrameSend = s.cpu.frameSend(i)
	}
	if g := s.sc.Gossipsub; g != nil && g.Heartbeat.D() > 0 {
		p := p2p.GossipSubParams()
		p.HeartbeatInterval = g.Heartbeat.D()
		ro.PubSubOptions = append(ro.PubSubOptions, pubsub.WithGossipSubParams(p))
	}
	rep, err := node.NewReplica(s.hosts[i], s.stores[i], s.idents[i], ro)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	s.reps[i], s.cancels[i], s.dones[i] = rep, cancel, done
	go func() {
		defer close(done)
		rep.Serve(ctx)
	}()
	<-rep.Ready()
	s.online[i] = true
	return nil
}

func (s *sim) stop(i int) {
	if s.cancels[i] == nil {
		return
	}
	s.online[i] = false
	for k, e := range s.plan.edges {
		if e.a == i || e.b == i {
			s.reconcile(k)
		}
	}
	s.cancels[i]()
	<-s.dones[i]
	s.cancels[i] = nil
}

// joinSpacing separates the honest nodes' join events during setup.
const joinSpacing = 100 * time.Millisecond

// forEachJoiner runs f for every replica but the creator, concurrently,
// starting one every spacing (0: all at once), and waits for all.
func (s *sim) forEachJoiner(spacing time.Duration, f func(int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	n := s.plan.honest + s.plan.spammers
	for i := 1; i < n; i++ {
		if spacing > 0 && i > 1 {
			time.Sleep(spacing)
		}
		if n >= 100 && i%(n/10) == 0 {
			s.say("setup: %d of %d nodes joining, %.0fs virtual, %s", i, n, time.Since(s.col.begin).Seconds(), s.wallHeap())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				mu.Lock()
				first = cmp.Or(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// track makes replica i track the room and waits for the room's state.
func (s *sim) track(i int) error {
	e := s.reps[i].Engine
	if _, err := e.TrackRoom(s.ctx, s.room.String()); err != nil {
		return err
	}
	for k := 0; ; k++ {
		ok, err := e.HasRoomState(s.ctx, s.room)
		if err != nil {
			return err
		}
		if ok {
			break
		}
		if k > 1200 {
			return fmt.Errorf("node %d: room state did not arrive in 120 s virtual", i)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// join authors replica i's join event.
func (s *sim) join(i int) error {
	_, err := s.reps[i].Engine.Join(s.ctx, s.room)
	return err
}

func (s *sim) startForger(i int) error {
	ps, err := s.relayAdversaryPubSub(i)
	if ps == nil && err == nil {
		ps, err = p2p.NewPubSub(s.ctx, s.hosts[i])
	}
	if err != nil {
		return err
	}
	t, err := ps.Join(p2p.EventTopic(s.room))
	if err != nil {
		return err
	}
	s.forgers[i] = t
	return s.startRelayAdversary(ps, t, i)
}

// reconcile brings edge k up or down to match the wanted state.
func (s *sim) reconcile(k int) {
	e := s.plan.edges[k]
	want := s.online[e.a] && s.online[e.b] && s.linkDown[k] == 0
	for pi, on := range s.partOn {
		if on && s.plan.group[pi][e.a] != s.plan.group[pi][e.b] {
			want = false
		}
	}
	if want == s.edgeUp[k] {
		return
	}
	a, b := s.hosts[e.a].ID(), s.hosts[e.b].ID()
	if want {
		l, err := s.mn.LinkPeers(a, b)
		if err != nil {
			return
		}
		l.SetOptions(mocknet.LinkOptions{Latency: s.plan.latency[k], Bandwidth: float64(s.sc.Links.Bandwidth)})
		s.mn.ConnectPeers(a, b)
	} else {
		s.mn.UnlinkPeers(a, b)
		s.mn.DisconnectPeers(a, b)
	}
	s.edgeUp[k] = want
}

func (s *sim) do(a action) {
	p := s.plan
	switch a.Kind {
	case actSend, actSpam:
		if !s.online[a.A] {
			return
		}
		text := fmt.Sprintf("%s %d from %d at %v ", actNames[a.Kind], s.col.seq(), a.A, a.At)
		if n := s.sc.Room.Size - len(text); n > 0 {
			text += strings.Repeat("x", n)
		}
		if _, err := s.reps[a.A].Engine.Send(s.ctx, api.SendReq{Room: s.room.String(), Text: text}); err != nil {
			s.refused++
		}
	case actForge:
		s.forge(a.A)
	case actOrphan:
		s.orphan(a.A)
	case actEquivocate:
		s.equivocate(a.A)
	case actBannedSpam:
		s.bannedSpam(a.A)
	case actJoinFlood:
		s.joinFlood(a.A)
	case actOffline:
		s.stop(a.A)
		s.col.setOnline(a.A, false)
	case actOnline:
		if err := s.start(a.A); err == nil {
			for k, e := range p.edges {
				if e.a == a.A || e.b == a.A {
					s.reconcile(k)
				}
			}
		}
		s.col.setOnline(a.A, true)
	case actPartition, actHeal:
		s.partOn[a.A] = a.Kind == actPartition
		if a.Kind == actHeal {
			s.heals = append(s.heals, a.At)
		}
		for k := range p.edges {
			s.reconcile(k)
		}
	case actLinkDown:
		s.linkDown[a.A]++
		s.reconcile(a.A)
	case actLinkUp:
		s.linkDown[a.A]--
		s.reconcile(a.A)
	case actBan:
		if resp, err := s.reps[0].Engine.SetMembership(s.ctx, s.room, s.idents[a.A].User, rooms.Ban, "simulated ban"); err == nil {
			s.bans++
			if id, err := crdt.ParseID(resp.Event); err == nil {
				s.col.banned(id)
			}
		} else {
			s.say("ban of node %d refused: %v", a.A, err)
		}
	}
}

// forge publishes an event signed by the forger whose body was altered
// after signing (so the body hash no longer matches): stateless validation
// must reject it at every hop.
func (s *sim) forge(i int) {
	t := s.forgers[i]
	if t == nil {
		return
	}
	n := s.col.seq()
	body := rooms.Encode(rooms.MessageBody{Text: fmt.Sprintf("forged %d", n)})
	ev, err := crdt.Sign(s.idents[i], crdt.Draft{Room: s.room, Type: rooms.TypeMessage, Prev: []crdt.EventID{s.room}, Auth: []crdt.EventID{s.room}, Depth: 1, TS: time.Now().UnixMilli(), Body: body})
	if err != nil {
		s.say("forge: %v", err)
		return
	}
	ev.Body = rooms.Encode(rooms.MessageBody{Text: fmt.Sprintf("FORGED %d", n)})
	s.col.forged(ev.ID)
	t.Publish(s.ctx, ev.Encode())
}

// orphan publishes a validly signed message by the adversary whose parent
// does not exist: it passes every stateless check and can only wait in a
// receiver's orphan buffer (bounded per peer) until it is dropped.
func (s *sim) orphan(i int) {
	t := s.forgers[i]
	if t == nil {
		return
	}
	n := s.col.seq()
	fake := crdt.IDOf([]byte(fmt.Sprintf("no such parent %d %d", i, n)))
	ev, err := crdt.Sign(s.idents[i], crdt.Draft{Room: s.room, Type: rooms.TypeMessage, Seq: uint64(n), Self: fake, Prev: []crdt.EventID{fake}, Auth: []crdt.EventID{s.room}, Depth: 2, TS: time.Now().UnixMilli(),
		Body: rooms.Encode(rooms.MessageBody{Text: fmt.Sprintf("orphan %d", n)})})
	if err != nil {
		s.say("orphan: %v", err)
		return
	}
	s.col.orphaned(ev.ID)
	t.Publish(s.ctx, ev.Encode())
}

// equivocate has member replica i send a message through its engine and
// then gossips a second event with the same device sequence number, parents
// and auth but another body: a fork of the device's chain. Honest nodes must
// void the device's events from the fork on (rule R6) and stay complete.
func (s *sim) equivocate(i int) {
	if !s.online[i] {
		return
	}
	n := s.col.seq()
	resp, err := s.reps[i].Engine.Send(s.ctx, api.SendReq{Room: s.room.String(), Text: fmt.Sprintf("fork A %d", n)})
	if err != nil {
		s.refused++
		return
	}
	id, err := crdt.ParseID(resp.Event)
	if err != nil {
		return
	}
	st, err := s.stores[i].Get(id)
	if err != nil {
		return
	}
	a := st.Event
	b, err := crdt.Sign(s.idents[i], crdt.Draft{Room: s.room, Type: a.Type, Seq: a.Seq, Self: a.Self, Prev: a.Prev, Auth: a.Auth, Depth: a.Depth, TS: a.TS,
		Body: rooms.Encode(rooms.MessageBody{Text: fmt.Sprintf("fork B %d", n)})})
	if err != nil {
		return
	}
	s.col.forks(a.ID, b.ID)
	s.reps[i].Publish(b)
}

// createRoom has node 0 found the public room of the scenario.
func (s *sim) createRoom() error {
	room, err := s.reps[0].Engine.CreateRoom(s.ctx, api.RoomCreateReq{Name: s.sc.Name, Public: true})
	if err != nil {
		return fmt.Errorf("create room: %w", err)
	}
	s.room, err = crdt.ParseID(room.Room)
	return err
}

// preload authors the join of every member after the creator's events, one
// after the other as a member would on a quiet network (each join's parent
// is the previous join), signed with the member's own keys and checked by
// a Log and a Room exactly as a replica checks them, and commits the
// creator's events and all joins to every replica's store (readers hold
// the room too, as if they had tracked it and synced). Replicas then
// start with the room's full membership, as after a join phase, without
// simulating thousands of joins over gossip (the setup of a large room is
// not what gossip-latency measures; scenarios with setup: live do it).
// Events are immutable and shared between the stores. The prefix itself is
// built once and frozen, and shared by the replicas: their stores are
// overlays of one frozen store holding it (crdt.NewMemStoreOver), and their
// engines start the room as overlays of the checking Log and Room
// (node.RoomBase), so a replica holds only what it adds after the prefix
// (PARLEY_SIM_NO_BASE=1 gives each replica its own copy, as before).
func (s *sim) preload() error {
	var base []*crdt.Event
	if err := s.stores[0].Scan(s.room, 0, func(st crdt.Stored) bool {
		if st.Status == crdt.StatusAccepted {
			base = append(base, st.Event)
		}
		return true
	}); err != nil {
		return err
	}
	if len(base) == 0 || base[0].ID != s.room {
		return fmt.Errorf("preload: creator's store lacks the room")
	}
	baseHeads, err := s.stores[0].Heads(s.room)
	if err != nil {
		return err
	}
	l := crdt.NewLog(s.room, crdt.LogConfig{})
	room, err := rooms.New(base[0])
	if err != nil {
		return err
	}
	for _, ev := range l.Add(base...).Accepted {
		room.Apply(ev)
	}
	var joins []*crdt.Event
	for i := 1; i < s.plan.honest+s.plan.spammers; i++ {
		if !s.plan.member[i] {
			continue
		}
		id := s.idents[i]
		skey := id.User.String()
		body := rooms.Encode(rooms.MemberBody{Membership: rooms.Join})
		if err := room.Check(id.User, rooms.TypeMember, &skey, body); err != nil {
			return fmt.Errorf("preload: join of node %d: %w", i, err)
		}
		d := l.Prepare(id.Device.Public(), time.Now().UnixMilli(), crdt.Draft{Type: rooms.TypeMember, StateKey: &skey, Body: body})
		d.Auth = room.AuthRefsAt(d.Prev, id.User, rooms.TypeMember, &skey)
		ev, err := crdt.Sign(id, d)
		if err != nil {
			return err
		}
		if r := l.Add(ev); len(r.Accepted) != 1 {
			return fmt.Errorf("preload: join of node %d not accepted", i)
		}
		room.Apply(ev)
		if ok, why := room.Visible(ev.ID); !ok {
			return fmt.Errorf("preload: join of node %d refused: %s", i, why)
		}
		joins = append(joins, ev)
	}
	heads := l.Heads()
	stored := func(evs []*crdt.Event) []crdt.Stored {
		out := make([]crdt.Stored, len(evs))
		for k, ev := range evs {
			out[k] = crdt.Stored{Event: ev, Status: crdt.StatusAccepted}
		}
		return out
	}
	all := crdt.Batch{Room: s.room, Events: stored(append(slices.Clone(base), joins...)), AddHeads: heads}
	if err := s.stores[0].Commit(crdt.Batch{Room: s.room, Events: stored(joins), AddHeads: heads, RemoveHeads: baseHeads}); err != nil {
		return err
	}
	if os.Getenv("PARLEY_SIM_NO_BASE") != "" {
		for i := 1; i < s.plan.honest+s.plan.spammers; i++ {
			if err := s.stores[i].Commit(all); err != nil {
				return err
			}
		}
		return nil
	}
	rb, err := node.NewRoomBase(l, room)
	if err != nil {
		return err
	}
	s.bases = map[crdt.RoomID]*node.RoomBase{s.room: rb}
	shared := crdt.NewMemStore()
	if err := shared.Commit(all); err != nil {
		return err
	}
	shared.Freeze()
	for i := 1; i < s.plan.honest+s.plan.spammers; i++ {
		s.stores[i] = crdt.NewMemStoreOver(shared)
	}
	return nil
}
