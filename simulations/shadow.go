package simulations

// The Shadow exporter: a scenario's seeded plan as a Shadow 3.x
// configuration (shadow.yaml with an inline GML network graph) that runs
// real `parley` daemons and drives them with the CLI at the plan's times,
// for runs beyond one machine. See README.md.

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"gopkg.in/yaml.v3"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node"
)

// ShadowOptions configure ExportShadow.
type ShadowOptions struct {
	Nodes  int    // honest nodes; 0 = the scenario's
	Seed   uint64 // 0 = the scenario's
	Out    string // output directory (required)
	Binary string // absolute path of the parley binary in the Shadow config; "" = this executable
	Shell  string // the shell for driver commands; "" = /bin/sh
}

// ShadowExport says what ExportShadow wrote.
type ShadowExport struct {
	Config   string        `json:"config"` // DIR/shadow.yaml
	Hosts    int           `json:"hosts"`
	Edges    int           `json:"edges"`
	Sends    int           `json:"sends"`
	StopTime time.Duration `json:"stop_time_ns"`
	Warnings []string      `json:"warnings,omitempty"`
}

// Shadow's config (the subset written here; field names as in Shadow 3.x
// docs/shadow_config_spec.md).
type shadowConfig struct {
	General shadowGeneral         `yaml:"general"`
	Network shadowNetwork         `yaml:"network"`
	Hosts   map[string]shadowHost `yaml:"hosts"`
}

type shadowGeneral struct {
	StopTime                     string `yaml:"stop_time"`
	Seed                         uint64 `yaml:"seed"`
	ModelUnblockedSyscallLatency bool   `yaml:"model_unblocked_syscall_latency"`
}

type shadowNetwork struct {
	Graph shadowGraph `yaml:"graph"`
}

type shadowGraph struct {
	Type   string `yaml:"type"`
	Inline string `yaml:"inline"`
}

type shadowHost struct {
	NetworkNodeID int             `yaml:"network_node_id"`
	IPAddr        string          `yaml:"ip_addr"`
	Processes     []shadowProcess `yaml:"processes"`
}

type shadowProcess struct {
	Path               string            `yaml:"path"`
	Args               []string          `yaml:"args"`
	Environment        map[string]string `yaml:"environment,omitempty"`
	StartTime          string            `yaml:"start_time"`
	ShutdownTime       string            `yaml:"shutdown_time,omitempty"`
	ShutdownSignal     string            `yaml:"shutdown_signal,omitempty"`
	ExpectedFinalState any               `yaml:"expected_final_state,omitempty"`
}

// Shadow schedule of the exported run (simulated time from 0).
const (
	shadowDaemonStart = 1 * time.Second  // every daemon starts
	shadowConnect     = 5 * time.Second  // connects along the topology edges
	shadowCreate      = 8 * time.Second  // node 0 creates the room
	shadowJoinStart   = 10 * time.Second // joins start, joinSpacing apart
	shadowJoinSpacing = 100 * time.Millisecond
)

// shadowAPI is where every daemon serves its API, on its own Shadow host.
const shadowAPI = "127.0.0.1:4080"

func shadowTime(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
}

// shadowMS reads back a shadowTime.
func shadowMS(s string) int64 {
	v, _ := strconv.ParseInt(strings.TrimSuffix(s, " ms"), 10, 64)
	return v
}

// ExportShadow writes DIR/shadow.yaml (hosts, an inline GML graph with the
// plan's per-edge latency and host bandwidth) and DIR/homes/nodeN (each
// node's identity, made here so that peer IDs are known in advance). Node 0
// writes the room ID to DIR/room.id; the other hosts read it from there.
func ExportShadow(sc0 *Scenario, opts ShadowOptions) (*ShadowExport, error) {
	sc, err := sc0.with(opts.Nodes, opts.Seed)
	if err != nil {
		return nil, err
	}
	if opts.Out == "" {
		return nil, fmt.Errorf("shadow export: no output directory")
	}
	out, err := filepath.Abs(opts.Out)
	if err != nil {
		return nil, fmt.Errorf("shadow export: %w", err)
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("shadow export: find the parley binary: %w", err)
		}
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return nil, fmt.Errorf("shadow export: %w", err)
	}
	sh := opts.Shell
	if sh == "" {
		sh = "/bin/sh"
	}
	p := makePlan(&sc)
	ex := &ShadowExport{Config: filepath.Join(out, "shadow.yaml"), Hosts: p.honest}
	if p.total-p.honest > 0 {
		ex.Warnings = append(ex.Warnings, fmt.Sprintf("adversaries are not exported: %d adversary nodes left out", p.total-p.honest))
	}
	if len(sc.Bans) > 0 {
		ex.Warnings = append(ex.Warnings, "bans are not exported")
	}
	if err := os.MkdirAll(filepath.Join(out, "homes"), 0o755); err != nil {
		return nil, fmt.Errorf("shadow export: %w", err)
	}
	roomFile := filepath.Join(out, "room.id")
	os.Remove(roomFile)

	homes := make([]string, p.honest)
	peers := make([]string, p.honest)
	ips := make([]string, p.honest)
	for i := range p.honest {
		homes[i] = filepath.Join(out, "homes", fmt.Sprintf("node%d", i))
		res, err := node.Init(homes[i], fmt.Sprintf("node%d", i))
		if err != nil {
			return nil, fmt.Errorf("shadow export: identity of node %d: %w", i, err)
		}
		if peers[i], err = devicePeerID(res.Device); err != nil {
			return nil, fmt.Errorf("shadow export: node %d: %w", i, err)
		}
		ips[i] = fmt.Sprintf("11.%d.%d.%d", (i+1)>>16&255, (i+1)>>8&255, (i+1)&255)
	}

	// the graph: one network node per host, an edge per topology link
	var g strings.Builder
	g.WriteString("graph [\n  directed 0\n")
	bw := "1 Gbit"
	if b := float64(sc.Links.Bandwidth); b > 0 {
		bw = fmt.Sprintf("%d Kibit", max(1, int64(b*8/1024)))
	}
	for i := range p.honest {
		fmt.Fprintf(&g, "  node [\n    id %d\n    host_bandwidth_up \"%s\"\n    host_bandwidth_down \"%s\"\n  ]\n", i, bw, bw)
	}
	for k, e := range p.edges {
		if e.a >= p.honest || e.b >= p.honest {
			continue
		}
		// packet loss 0: the plan models loss as outages, which Shadow
		// cannot switch on and off (see README)
		fmt.Fprintf(&g, "  edge [\n    source %d\n    target %d\n    latency \"%d us\"\n    packet_loss 0.0\n  ]\n", e.a, e.b, p.latency[k].Microseconds())
		ex.Edges++
	}
	g.WriteString("]\n")

	cfg := shadowConfig{
		General: shadowGeneral{Seed: sc.Seed, ModelUnblockedSyscallLatency: true},
		Network: shadowNetwork{Graph: shadowGraph{Type: "gml", Inline: g.String()}},
		Hosts:   map[string]shadowHost{},
	}
	parley := func(home string, args ...string) []string { return append([]string{"--home", home}, args...) }
	cli := func(home, cmd string) []string {
		return []string{"-c", fmt.Sprintf("%s --home %s %s", bin, home, cmd)}
	}
	room := "\"$(cat " + roomFile + ")\""
	joinsDone := shadowJoinStart + time.Duration(p.honest)*shadowJoinSpacing
	t0 := joinsDone + 5*time.Second + sc.Warmup.D() // traffic start
	end := t0 + sc.Duration.D() + sc.Drain.D()
	hosts := make([]shadowHost, p.honest)
	for i := range p.honest {
		hosts[i] = shadowHost{NetworkNodeID: i, IPAddr: ips[i]}
		hosts[i].Processes = append(hosts[i].Processes, shadowProcess{
			Path: bin,
			Args: parley(homes[i], "daemon", "--listen", "/ip4/0.0.0.0/tcp/4001", "--api", shadowAPI,
				"--no-mdns", "--no-dht", "--log-level", "warn"),
			Environment: map[string]string{"GOMAXPROCS": "1"},
			StartTime:   shadowTime(shadowDaemonStart), ShutdownTime: shadowTime(end), ShutdownSignal: "SIGTERM",
			ExpectedFinalState: map[string]any{"exited": 0}, // the daemon exits cleanly on SIGTERM
		})
	}
	// offline periods: the daemon stops and starts again
	for _, a := range p.actions {
		if a.A >= p.honest && (a.Kind == actOffline || a.Kind == actOnline || a.Kind == actSend) {
			continue
		}
		switch a.Kind {
		case actOffline:
			// the running daemon process gets a shutdown at this time
			procs := hosts[a.A].Processes
			for j := len(procs) - 1; j >= 0; j-- {
				if procs[j].Path == bin && procs[j].Args[2] == "daemon" {
					procs[j].ShutdownTime = shadowTime(t0 + a.At)
					break
				}
			}
		case actOnline:
			hosts[a.A].Processes = append(hosts[a.A].Processes, shadowProcess{
				Path: bin,
				Args: parley(homes[a.A], "daemon", "--listen", "/ip4/0.0.0.0/tcp/4001", "--api", shadowAPI,
					"--no-mdns", "--no-dht", "--log-level", "warn"),
				Environment: map[string]string{"GOMAXPROCS": "1"},
				StartTime:   shadowTime(t0 + a.At), ShutdownTime: shadowTime(end), ShutdownSignal: "SIGTERM",
				ExpectedFinalState: map[string]any{"exited": 0}, // the daemon exits cleanly on SIGTERM
			})
		case actSend:
			text := fmt.Sprintf("send %d from %d at %v", ex.Sends, a.A, a.At)
			if n := sc.Room.Size - len(text) - 1; n > 0 {
				text += " " + strings.Repeat("x", n)
			}
			hosts[a.A].Processes = append(hosts[a.A].Processes, shadowProcess{
				Path: sh, Args: cli(homes[a.A], "send "+room+" '"+text+"'"), StartTime: shadowTime(t0 + a.At),
				ExpectedFinalState: map[string]any{"exited": 0},
			})
			ex.Sends++
		case actPartition, actHeal, actLinkDown, actLinkUp, actSpam, actForge, actBan:
			// not expressible as a static Shadow graph (see README)
		}
	}
	hasPart, hasLoss := len(sc.Partitions) > 0, sc.Links.Loss > 0
	if hasPart {
		ex.Warnings = append(ex.Warnings, "partitions are not exported: Shadow's graph is static")
	}
	if hasLoss {
		ex.Warnings = append(ex.Warnings, "link outages (loss) are not exported: Shadow's graph is static; packet_loss is 0")
	}
	// setup: connects along edges (a dials b), room creation, joins
	for k, e := range p.edges {
		if e.a >= p.honest || e.b >= p.honest {
			continue
		}
		addr := fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", ips[e.b], peers[e.b])
		hosts[e.a].Processes = append(hosts[e.a].Processes, shadowProcess{
			Path: bin, Args: parley(homes[e.a], "connect", addr),
			StartTime:          shadowTime(shadowConnect + time.Duration(k%10)*10*time.Millisecond),
			ExpectedFinalState: map[string]any{"exited": 0},
		})
	}
	hosts[0].Processes = append(hosts[0].Processes, shadowProcess{
		Path: sh, Args: cli(homes[0], "--json room create --public --name '"+sc.Name+"' | sed -n 's/.*\"room\": *\"\\([^\"]*\\)\".*/\\1/p' > "+roomFile+".tmp && mv "+roomFile+".tmp "+roomFile),
		StartTime:          shadowTime(shadowCreate),
		ExpectedFinalState: map[string]any{"exited": 0},
	})
	for i := 1; i < p.honest; i++ {
		hosts[i].Processes = append(hosts[i].Processes, shadowProcess{
			Path: sh, Args: cli(homes[i], "room join "+room), StartTime: shadowTime(shadowJoinStart + time.Duration(i-1)*shadowJoinSpacing),
			ExpectedFinalState: map[string]any{"exited": 0},
		})
	}
	for i := range p.honest {
		slices.SortStableFunc(hosts[i].Processes, func(x, y shadowProcess) int { return cmp.Compare(shadowMS(x.StartTime), shadowMS(y.StartTime)) })
		cfg.Hosts[fmt.Sprintf("node%d", i)] = hosts[i]
	}
	ex.StopTime = end + 5*time.Second
	cfg.General.StopTime = shadowTime(ex.StopTime)
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("shadow export: %w", err)
	}
	head := fmt.Sprintf("# Shadow 3.x configuration exported by `parley sim export-shadow` from scenario %q (seed %d, %d nodes).\n"+
		"# Schedule (simulated): daemons at %v, connects at %v, room created at %v, joins from %v, traffic from %v to %v, stop at %v.\n"+
		"# Run: shadow --data-directory shadow.data shadow.yaml (TCP only; the parley binary must be dynamically linked).\n",
		sc.Name, sc.Seed, p.honest, shadowDaemonStart, shadowConnect, shadowCreate, shadowJoinStart, t0, t0+sc.Duration.D(), ex.StopTime)
	if err := os.WriteFile(ex.Config, append([]byte(head), b...), 0o644); err != nil {
		return nil, fmt.Errorf("shadow export: %w", err)
	}
	sched, _ := yaml.Marshal(map[string]any{"traffic_start": t0.String(), "schedule_sha256": p.hash, "warnings": ex.Warnings})
	if err := os.WriteFile(filepath.Join(out, "export.yaml"), sched, 0o644); err != nil {
		return nil, fmt.Errorf("shadow export: %w", err)
	}
	return ex, nil
}

// devicePeerID is the libp2p peer ID of a device key (the node's host key).
func devicePeerID(device string) (string, error) {
	k, err := crdt.ParseKey(device)
	if err != nil {
		return "", err
	}
	pk, err := crypto.UnmarshalEd25519PublicKey(k[:])
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPublicKey(pk)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}
