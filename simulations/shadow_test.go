package simulations

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestShadowExport exports a 10-node scenario and reads the config back:
// hosts, the GML graph's edges and latencies against the plan, process
// schedule and stop time.
func TestShadowExport(t *testing.T) {
	sc, err := Load("offline-catchup")
	if err != nil {
		t.Fatal(err)
	}
	sc.Nodes = 10
	sc.Room.Writers = min(sc.Room.Writers, 5)
	sc.Offline = []Offline{{Count: 1, At: Duration(5 * time.Second), Back: Duration(15 * time.Second)}}
	out := t.TempDir()
	ex, err := ExportShadow(sc, ShadowOptions{Out: out, Binary: "/opt/parley/parley"})
	if err != nil {
		t.Fatal(err)
	}
	p := makePlan(sc)
	b, err := os.ReadFile(filepath.Join(out, "shadow.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		General struct {
			StopTime string `yaml:"stop_time"`
			Seed     uint64 `yaml:"seed"`
		} `yaml:"general"`
		Network struct {
			Graph struct {
				Type   string `yaml:"type"`
				Inline string `yaml:"inline"`
			} `yaml:"graph"`
		} `yaml:"network"`
		Hosts map[string]struct {
			NetworkNodeID int    `yaml:"network_node_id"`
			IPAddr        string `yaml:"ip_addr"`
			Processes     []struct {
				Path         string   `yaml:"path"`
				Args         []string `yaml:"args"`
				StartTime    string   `yaml:"start_time"`
				ShutdownTime string   `yaml:"shutdown_time"`
			} `yaml:"processes"`
		} `yaml:"hosts"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Hosts) != 10 || ex.Hosts != 10 {
		t.Fatalf("%d hosts (export says %d), want 10", len(cfg.Hosts), ex.Hosts)
	}
	if cfg.Network.Graph.Type != "gml" || cfg.General.Seed != sc.Seed {
		t.Errorf("graph type %q, seed %d", cfg.Network.Graph.Type, cfg.General.Seed)
	}
	// GML: every node has host bandwidths, every edge is a plan edge with its latency
	gml := cfg.Network.Graph.Inline
	if n := strings.Count(gml, "host_bandwidth_up"); n != 10 || strings.Count(gml, "host_bandwidth_down") != 10 {
		t.Errorf("%d nodes with host bandwidths, want 10", n)
	}
	want := map[[2]int]time.Duration{}
	for k, e := range p.edges {
		want[[2]int{e.a, e.b}] = p.latency[k]
	}
	re := regexp.MustCompile(`edge \[\s*source (\d+)\s*target (\d+)\s*latency "(\d+) us"\s*packet_loss ([0-9.]+)\s*\]`)
	edges := re.FindAllStringSubmatch(gml, -1)
	if len(edges) != len(p.edges) || ex.Edges != len(p.edges) || strings.Count(gml, "edge [") != len(p.edges) {
		t.Fatalf("%d GML edges (export says %d), plan has %d", len(edges), ex.Edges, len(p.edges))
	}
	for _, m := range edges {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		us, _ := strconv.ParseInt(m[3], 10, 64)
		l, ok := want[[2]int{a, b}]
		if !ok {
			t.Errorf("edge %d-%d is not in the plan", a, b)
			continue
		}
		if l.Microseconds() != us || us <= 0 {
			t.Errorf("edge %d-%d latency %d us, plan %v", a, b, us, l)
		}
	}
	// processes: a daemon per host (and a second one for the offline node),
	// one connect per edge, one send per planned send; every time before stop
	stop := parseShadowTime(t, cfg.General.StopTime)
	var daemons, connects, sends, joins int
	ips := map[string]bool{}
	for name, h := range cfg.Hosts {
		if h.IPAddr == "" || ips[h.IPAddr] || name != "node"+strconv.Itoa(h.NetworkNodeID) {
			t.Errorf("host %s: node %d, ip %q (duplicate or empty)", name, h.NetworkNodeID, h.IPAddr)
		}
		ips[h.IPAddr] = true
		for _, pr := range h.Processes {
			if st := parseShadowTime(t, pr.StartTime); st >= stop {
				t.Errorf("host %s: process starts at %v, after the stop time %v", name, st, stop)
			}
			line := strings.Join(pr.Args, " ")
			switch {
			case pr.Path == "/opt/parley/parley" && strings.Contains(line, " daemon "):
				daemons++
				if !strings.Contains(line, "--no-mdns --no-dht") || !strings.Contains(line, "/tcp/4001") {
					t.Errorf("daemon args %q", line)
				}
			case pr.Path == "/opt/parley/parley" && strings.Contains(line, " connect "):
				connects++
			case strings.Contains(line, " send "):
				sends++
			case strings.Contains(line, " room join "):
				joins++
			}
		}
	}
	var planSends int
	for _, a := range p.actions {
		if a.Kind == actSend {
			planSends++
		}
	}
	if daemons != 11 || connects != len(p.edges) || sends != planSends || joins != 9 || ex.Sends != planSends {
		t.Errorf("daemons %d (want 11), connects %d (want %d), sends %d (want %d), joins %d (want 9)", daemons, connects, len(p.edges), sends, planSends, joins)
	}
	// the stop time covers setup, warm-up, traffic and drain
	if min := sc.Warmup.D() + sc.Duration.D() + sc.Drain.D() + shadowJoinStart; stop < min || stop != ex.StopTime {
		t.Errorf("stop time %v, want at least %v (export says %v)", stop, min, ex.StopTime)
	}
	for i := range 10 {
		if _, err := os.Stat(filepath.Join(out, "homes", "node"+strconv.Itoa(i), "identity.json")); err != nil {
			t.Errorf("no identity in the exported home: %v", err)
		}
	}
}

func parseShadowTime(t *testing.T, s string) time.Duration {
	t.Helper()
	v, ok := strings.CutSuffix(s, " ms")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		t.Fatalf("time %q is not N ms", s)
	}
	return time.Duration(n) * time.Millisecond
}
