// Package simulations runs Parley's real node code (node.Replica: engine,
// gossipsub, pull sync, in-memory stores) as N peers in one process on
// go-libp2p's mocknet, in virtual time (testing/synctest), driven by a
// seeded scenario, and reports delivery latency, completeness, convergence,
// duplicates and bytes. See README.md.
package simulations

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parley-p2p/parley/rooms"
)

//go:embed testdata/scenarios/*.yaml
var builtin embed.FS

// Scenario is one experiment. Times are virtual and measured from the start
// of traffic (after setup and warm-up) unless noted.
type Scenario struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description"`
	Seed        uint64 `yaml:"seed" json:"seed"`
	Nodes       int    `yaml:"nodes" json:"nodes"`
	// Duration is the traffic phase; Warmup runs before it (mesh forming),
	// Drain after it (deliveries still counted; ends early once complete).
	Duration Duration `yaml:"duration" json:"duration"`
	Warmup   Duration `yaml:"warmup" json:"warmup"`
	Drain    Duration `yaml:"drain" json:"drain"`

	Topology Topology `yaml:"topology" json:"topology"`
	Links    Links    `yaml:"links" json:"links"`
	Room     Room     `yaml:"room" json:"room"`

	Partitions  []Partition `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	Churn       *Churn      `yaml:"churn,omitempty" json:"churn,omitempty"`
	Offline     []Offline   `yaml:"offline,omitempty" json:"offline,omitempty"`
	Adversaries []Adversary `yaml:"adversaries,omitempty" json:"adversaries,omitempty"`
	Bans        []Ban       `yaml:"bans,omitempty" json:"bans,omitempty"`
	// CPU, when present, charges nodes virtual CPU time for their work
	// (cpu.go); absent, work is free in virtual time.
	CPU *CPU `yaml:"cpu,omitempty" json:"cpu,omitempty"`
	// Gossipsub changes the honest replicas' gossipsub parameters from
	// Parley's (a simulation choice, documented where a scenario uses it).
	Gossipsub *Gossipsub `yaml:"gossipsub,omitempty" json:"gossipsub,omitempty"`
}

// Gossipsub are gossipsub parameters a scenario may change. Heartbeat is
// the heartbeat interval (Parley's: 1 s); the parameters counted in
// heartbeats (opportunistic grafting every 2, IHAVE gossip of the last 3)
// stretch with it. A longer heartbeat costs less CPU per node and second;
// it delays mesh repair and IHAVE gossip, not first deliveries over a
// formed mesh (simulations/README.md, "Measurements").
type Gossipsub struct {
	Heartbeat Duration `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"`
}

// Topology is how honest nodes are wired.
type Topology struct {
	// Kind: random-regular (each node links to Degree random others; about
	// Degree links each), small-world (ring lattice of Degree, each link
	// rewired with probability Rewire), clusters (Clusters groups, random
	// regular inside, Bridges random links between each pair of groups),
	// line, full.
	Kind     string  `yaml:"kind" json:"kind"`
	Degree   int     `yaml:"degree,omitempty" json:"degree,omitempty"`
	Rewire   float64 `yaml:"rewire,omitempty" json:"rewire,omitempty"`
	Clusters int     `yaml:"clusters,omitempty" json:"clusters,omitempty"`
	Bridges  int     `yaml:"bridges,omitempty" json:"bridges,omitempty"`
}

// Links are the link properties. mocknet latency is per link, so Jitter
// draws each link's latency once, uniformly in Latency±Jitter. Loss is
// modelled as link outages (mocknet streams are reliable): each link is
// down a fraction Loss of the traffic phase, in outages of Outage length.
type Links struct {
	Latency   Duration `yaml:"latency" json:"latency"`
	Jitter    Duration `yaml:"jitter,omitempty" json:"jitter,omitempty"`
	Bandwidth Bytes    `yaml:"bandwidth,omitempty" json:"bandwidth,omitempty"` // bytes per second per link; 0 = unlimited
	Loss      float64  `yaml:"loss,omitempty" json:"loss,omitempty"`
	Outage    Duration `yaml:"outage,omitempty" json:"outage,omitempty"`
}

// Room is the one room every honest node joins.
type Room struct {
	Writers int     `yaml:"writers" json:"writers"` // honest nodes that send (the first Writers after shuffling); 0 = all
	Rate    float64 `yaml:"rate" json:"rate"`       // messages per second, all writers together (Poisson)
	Size    int     `yaml:"size" json:"size"`       // message text bytes
	// Setup is how members come in before the measured phase: "live"
	// (default: every node tracks the room and joins over the network,
	// 100 ms apart) or "preload" (the joins are authored in sequence and
	// every member starts holding them; for large rooms).
	Setup string `yaml:"setup,omitempty" json:"setup,omitempty"`
	// Members is how many honest nodes join the room (the creator and the
	// writers always do); the others track the public room and read it
	// without joining, as lurkers or hosting nodes do. 0 = all.
	Members int `yaml:"members,omitempty" json:"members,omitempty"`
	// JoinWork, when > 0, has the creator set the room's join proof of
	// work (room.limits join_work, in bits) once the members are in,
	// before the warm-up: the room under a join flood asks new joiners
	// for work (rooms/work.go).
	JoinWork int64 `yaml:"join_work,omitempty" json:"join_work,omitempty"`
}

// Room setups.
const (
	SetupLive    = "live"
	SetupPreload = "preload"
)

// Partition splits the honest nodes into Groups contiguous blocks of a
// seeded shuffle at At and heals at Heal.
type Partition struct {
	At     Duration `yaml:"at" json:"at"`
	Heal   Duration `yaml:"heal" json:"heal"`
	Groups int      `yaml:"groups" json:"groups"`
}

// Churn takes a Share of honest nodes through exponential online sessions
// and offline periods during traffic; every churner is back online when
// traffic ends, so completeness is measured against everyone.
type Churn struct {
	Share   float64  `yaml:"share" json:"share"`
	Session Duration `yaml:"session" json:"session"`
	Offline Duration `yaml:"offline" json:"offline"`
}

// Offline takes Count honest non-writer nodes offline at At and brings
// them back at Back (catch-up is by the pull sync on reconnect).
type Offline struct {
	Count int      `yaml:"count" json:"count"`
	At    Duration `yaml:"at" json:"at"`
	Back  Duration `yaml:"back" json:"back"`
}

// adversaryKinds maps each adversary kind to whether it runs a real replica
// (a room member) rather than a bare gossipsub peer.
var adversaryKinds = map[string]bool{"spam-flood": true, "equivocation": true, "forged-events": false, "orphan-flood": false, "banned-spam": true,
	"drop": false, "delay": false, "join-flood": false}

// Adversary is a group of Count extra nodes, linked to Degree random honest
// nodes, each acting at Rate per second from Start to Stop. Kinds:
//   - spam-flood: real replicas that join and send valid messages;
//   - equivocation: real replicas that join and, for each message they
//     send, gossip a second, different event with the same sequence number
//     (a fork of their device's chain, rule R6);
//   - forged-events: bare gossipsub peers that publish events with a broken
//     body hash;
//   - orphan-flood: bare gossipsub peers that publish validly signed events
//     whose parents do not exist, to fill receivers' orphan buffers;
//   - banned-spam: real replicas that join, are banned by the creator at
//     Start, and then publish validly signed messages continuing their
//     device chain, which their own node does not check (bannedspam.go);
//   - drop: bare gossipsub peers that subscribe, take mesh slots and never
//     forward anything (their validator ignores every message);
//   - delay: bare gossipsub peers that forward every message Delay late;
//   - join-flood: bare gossipsub peers that publish, at Rate each, the join
//     of a fresh identity (its own new keys each time) on top of the
//     create event, without proof of work.
//
// With Target set (an honest node's index), each adversary links to that
// node only, instead of Degree random honest nodes: an eclipse attempt.
type Adversary struct {
	Kind   string   `yaml:"kind" json:"kind"`
	Count  int      `yaml:"count" json:"count"`
	Degree int      `yaml:"degree,omitempty" json:"degree,omitempty"`
	Rate   float64  `yaml:"rate" json:"rate"`
	Start  Duration `yaml:"start" json:"start"`
	Stop   Duration `yaml:"stop" json:"stop"`
	Delay  Duration `yaml:"delay,omitempty" json:"delay,omitempty"`   // delay: how late it forwards
	Target *int     `yaml:"target,omitempty" json:"target,omitempty"` // eclipse: the one honest node it links to
}

// Ban has the room creator (node 0) ban the writer with index Target at At
// (a membership state event authored through the engine).
type Ban struct {
	At     Duration `yaml:"at" json:"at"`
	Target int      `yaml:"target" json:"target"`
}

// Duration is a time.Duration written as "20ms", "1m30s".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 20ms, 1m30s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// Bytes is a size or rate written as 1000, "64KiB", "10MB", "1MiB".
type Bytes float64

func (b *Bytes) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(strings.TrimSuffix(n.Value, "/s"))
	mult := 1.0
	for _, u := range []struct {
		suf string
		m   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suf)), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a byte size (e.g. 1MB, 64KiB)", n.Line, n.Value)
	}
	*b = Bytes(v * mult)
	return nil
}

// Info names and describes a scenario.
type Info struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// List returns the built-in scenarios, sorted by name.
func List() []Info {
	var out []Info
	ents, _ := fs.ReadDir(builtin, "testdata/scenarios")
	for _, e := range ents {
		sc, err := parse(mustRead(path.Join("testdata/scenarios", e.Name())))
		if err != nil {
			continue
		}
		out = append(out, Info{Name: sc.Name, Description: sc.Description})
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func mustRead(p string) []byte {
	b, _ := builtin.ReadFile(p)
	return b
}

// Load returns a built-in scenario by name, or parses a YAML file.
func Load(nameOrPath string) (*Scenario, error) {
	if b, err := builtin.ReadFile("testdata/scenarios/" + nameOrPath + ".yaml"); err == nil && !strings.ContainsAny(nameOrPath, "/\\") {
		return parse(b)
	}
	b, err := os.ReadFile(nameOrPath)
	if err != nil {
		var names []string
		for _, i := range List() {
			names = append(names, i.Name)
		}
		return nil, fmt.Errorf("no built-in scenario %q (have: %s) and no such file: %w", nameOrPath, strings.Join(names, ", "), err)
	}
	sc, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nameOrPath, err)
	}
	return sc, nil
}

// Parse reads a scenario from YAML and checks it.
func Parse(b []byte) (*Scenario, error) { return parse(b) }

func parse(b []byte) (*Scenario, error) {
	var sc Scenario
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil {
		return nil, err
	}
	sc.defaults()
	return &sc, sc.Validate()
}

func (sc *Scenario) defaults() {
	if sc.Nodes == 0 {
		sc.Nodes = 20
	}
	if sc.Duration == 0 {
		sc.Duration = Duration(30 * time.Second)
	}
	if sc.Warmup == 0 {
		sc.Warmup = Duration(5 * time.Second)
	}
	if sc.Drain == 0 {
		sc.Drain = Duration(30 * time.Second)
	}
	if sc.Topology.Kind == "" {
		sc.Topology.Kind = "random-regular"
	}
	if sc.Topology.Degree == 0 {
		sc.Topology.Degree = 8
	}
	if sc.Links.Latency == 0 {
		sc.Links.Latency = Duration(20 * time.Millisecond)
	}
	if sc.Links.Outage == 0 {
		sc.Links.Outage = Duration(2 * time.Second)
	}
	if sc.Room.Rate == 0 {
		sc.Room.Rate = 1
	}
	if sc.Room.Size == 0 {
		sc.Room.Size = 200
	}
	if sc.CPU != nil {
		sc.CPU.defaults()
	}
	for i := range sc.Adversaries {
		if sc.Adversaries[i].Degree == 0 {
			sc.Adversaries[i].Degree = 4
		}
		if sc.Adversaries[i].Stop == 0 {
			sc.Adversaries[i].Stop = sc.Duration
		}
	}
}

// Validate checks a scenario's values.
func (sc *Scenario) Validate() error {
	switch {
	case sc.Name == "":
		return fmt.Errorf("scenario has no name")
	case sc.Nodes < 2:
		return fmt.Errorf("nodes: need at least 2, have %d", sc.Nodes)
	case sc.Links.Loss < 0 || sc.Links.Loss >= 1:
		return fmt.Errorf("links.loss: %v is not in [0,1)", sc.Links.Loss)
	case sc.Room.Writers < 0 || sc.Room.Writers > sc.Nodes:
		return fmt.Errorf("room.writers: %d is not in [0,nodes]", sc.Room.Writers)
	case sc.Room.Size < 1 || sc.Room.Size > 60000:
		return fmt.Errorf("room.size: %d is not in [1,60000]", sc.Room.Size)
	}
	switch sc.Topology.Kind {
	case "random-regular", "small-world", "clusters", "line", "full":
	default:
		return fmt.Errorf("topology.kind: unknown %q (random-regular, small-world, clusters, line, full)", sc.Topology.Kind)
	}
	for _, p := range sc.Partitions {
		if p.Groups < 2 || p.Heal <= p.At {
			return fmt.Errorf("partition: need groups >= 2 and heal after at")
		}
	}
	if sc.Room.Setup != "" && sc.Room.Setup != SetupLive && sc.Room.Setup != SetupPreload {
		return fmt.Errorf("room.setup: unknown %q (live, preload)", sc.Room.Setup)
	}
	for _, a := range sc.Adversaries {
		if _, ok := adversaryKinds[a.Kind]; !ok {
			return fmt.Errorf("adversary kind %q: known kinds are spam-flood, equivocation, forged-events, orphan-flood, banned-spam, drop, delay and join-flood", a.Kind)
		}
		if a.Target != nil && (*a.Target < 0 || *a.Target >= sc.Nodes) {
			return fmt.Errorf("adversary target %d: not an honest node (0-%d)", *a.Target, sc.Nodes-1)
		}
	}
	if g := sc.Gossipsub; g != nil && (g.Heartbeat.D() < 0 || g.Heartbeat.D() > time.Minute) {
		return fmt.Errorf("gossipsub.heartbeat: %v is not in [0,1m]", g.Heartbeat.D())
	}
	if sc.CPU != nil {
		if err := sc.CPU.validate(); err != nil {
			return err
		}
	}
	if sc.Room.JoinWork < 0 || sc.Room.JoinWork > rooms.MaxJoinWork {
		return fmt.Errorf("room.join_work: %d is not in [0,%d]", sc.Room.JoinWork, rooms.MaxJoinWork)
	}
	for _, b := range sc.Bans {
		if b.Target <= 0 || (sc.Room.Writers > 0 && b.Target >= sc.Room.Writers) {
			return fmt.Errorf("ban target %d: must be a writer index other than 0", b.Target)
		}
	}
	return nil
}

// with returns a validated copy of sc with the node count and seed a run
// asks for (0: the scenario's own).
func (sc *Scenario) with(nodes int, seed uint64) (Scenario, error) {
	c := *sc
	if nodes > 0 {
		c.Nodes = nodes
		c.Room.Writers = min(c.Room.Writers, nodes)
	}
	if seed != 0 {
		c.Seed = seed
	}
	return c, c.Validate()
}
