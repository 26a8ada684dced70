package simulations

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is report.json.
type Report struct {
	Scenario           string    `json:"scenario"`
	Description        string    `json:"description"`
	Seed               uint64    `json:"seed"`
	Nodes              int       `json:"nodes"`
	RoomMembers        int       `json:"room_members"` // honest nodes that joined; the rest read only
	Adversaries        int       `json:"adversaries"`
	Links              int       `json:"links"`
	Backend            string    `json:"backend"`
	TimeMode           string    `json:"time_mode"`
	VirtualDurationS   float64   `json:"virtual_duration_s"`
	SetupS             float64   `json:"setup_virtual_s"`
	WallS              float64   `json:"wall_s"`
	PeakRSSMB          float64   `json:"peak_rss_mb"`
	EventsPublished    int       `json:"events_published"`
	SendsRefused       int       `json:"sends_refused"`
	DeliveriesExpected int       `json:"deliveries_expected"`
	Deliveries         int       `json:"deliveries"`
	Completeness       float64   `json:"completeness"`
	Gaps               int       `json:"gaps"`
	LatencyMS          Quantiles `json:"latency_ms"`
	// PathLatencyMS (netns): from the author publishing each message to
	// each other node taking it into its room, by the daemons' gossip path
	// traces on the host's one clock: the virtual-time backend's latency,
	// without the watch stream and the simulator's reading of it that
	// LatencyMS includes.
	PathLatencyMS         *Quantiles        `json:"path_latency_ms,omitempty"`
	ConvergenceMS         *float64          `json:"convergence_ms"`
	CatchupMS             *float64          `json:"catchup_ms"`
	DuplicatesPerDelivery float64           `json:"duplicates_per_delivery"`
	BytesPerNode          BytesPerNode      `json:"bytes_per_node"`
	SyncRoundsPerNode     float64           `json:"sync_rounds_per_node"`
	DroppedRPCs           int64             `json:"dropped_rpcs"`
	Spam                  *AdversaryReport  `json:"spam,omitempty"`
	Forged                *AdversaryReport  `json:"forged,omitempty"`
	Orphans               *AdversaryReport  `json:"orphans,omitempty"`
	JoinFlood             *AdversaryReport  `json:"join_flood,omitempty"`
	JunkCPU               *JunkCPU          `json:"junk_cpu,omitempty"`
	CPU                   *CPUReport        `json:"cpu,omitempty"`
	Equivocation          *AdversaryReport  `json:"equivocation,omitempty"`
	BannedSpam            *BannedSpamReport `json:"banned_spam,omitempty"`
	BansApplied           int               `json:"bans_applied,omitempty"`
	Against               *Against          `json:"against,omitempty"`       // the run held against a baseline (--against)
	CrossBackend          *CrossBackend     `json:"cross_backend,omitempty"` // the run held against the netns run its CPU model came from (--cpu-from)
	ScheduleSHA256        string            `json:"schedule_sha256"`
	Versions              map[string]string `json:"versions"`
	Params                *Scenario         `json:"params"`
	Notes                 []string          `json:"notes"`
	Warnings              []string          `json:"warnings,omitempty"`
}

// Quantiles of a latency distribution in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// BytesPerNode is gossipsub RPC traffic per honest node over the whole run
// (setup included): RPC sizes from the router's trace; pull-sync streams
// are not counted.
type BytesPerNode struct {
	SentMean float64 `json:"sent_mean"`
	RecvMean float64 `json:"recv_mean"`
	SentP50  float64 `json:"sent_p50"`
	SentMax  float64 `json:"sent_max"`
	Scope    string  `json:"scope"`
}

// AdversaryReport counts what adversaries did and what honest nodes took in.
type AdversaryReport struct {
	Published      int   `json:"published"`
	AcceptedHonest int   `json:"accepted_by_honest"`
	RejectedGossip int64 `json:"rejected_by_gossip_validation"`
	// Orphan floods: the most events any honest node still held back at
	// the end, waiting for parents that do not exist (bounded per peer).
	PendingAtEndMax *int `json:"pending_at_end_max,omitempty"`
	// Equivocation: the most forked events any honest node still showed
	// in its timeline at the end (R6 voids a device's events from the fork on).
	VisibleAtEndMax *int `json:"visible_at_end_max,omitempty"`
}

func quantiles(xs []float64) Quantiles {
	if len(xs) == 0 {
		return Quantiles{}
	}
	slices.Sort(xs)
	q := func(p float64) float64 { return xs[min(len(xs)-1, int(math.Ceil(p*float64(len(xs))))-1)] }
	return Quantiles{P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: xs[len(xs)-1]}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func (s *sim) report(mode string, wall time.Duration) *Report {
	c, p := s.col, s.plan
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &Report{
		Scenario: s.sc.Name, Description: s.sc.Description, Seed: s.sc.Seed, Nodes: p.honest, RoomMembers: p.members(),
		Adversaries: p.spammers + p.forgers, Links: len(p.edges),
		Backend: "mocknet (in-process, real node.Replica, in-memory stores)", TimeMode: mode,
		VirtualDurationS: c.end.Sub(c.begin).Seconds(), SetupS: c.t0.Sub(c.begin).Seconds(),
		WallS: math.Round(wall.Seconds()*100) / 100, PeakRSSMB: peakRSSMB(),
		SendsRefused: s.refused, DeliveriesExpected: c.expected, Deliveries: c.delivered,
		ScheduleSHA256: p.hash, Versions: versions(), Params: s.sc, BansApplied: s.bans,
	}
	var lat []float64
	for _, m := range c.order {
		if m.spam {
			continue
		}
		r.EventsPublished++
		for n := range p.honest {
			if n == m.author {
				continue
			}
			if m.at[n] >= 0 {
				lat = append(lat, ms(m.at[n]-m.pub))
			} else {
				r.Gaps++
			}
		}
	}
	r.LatencyMS = quantiles(lat)
	r.Completeness = 1
	if r.DeliveriesExpected > 0 {
		r.Completeness = float64(r.Deliveries) / float64(r.DeliveriesExpected)
	}
	// convergence after the last heal: when every honest node held every
	// honest event published before the heal
	if len(s.heals) > 0 {
		h := s.heals[len(s.heals)-1]
		if v, ok := c.coverAfter(h, func(n int) bool { return n < p.honest }); ok {
			r.ConvergenceMS = &v
		} else {
			r.Warnings = append(r.Warnings, "no convergence after the heal within the run")
		}
	}
	// catch-up: nodes that were offline, from their return until they held
	// every honest event published before it
	var worst float64
	seen := false
	for _, oc := range c.onlineLog {
		if !oc.on || oc.n >= p.honest {
			continue
		}
		if v, ok := c.coverAfter(oc.at, func(n int) bool { return n == oc.n }); ok {
			worst, seen = max(worst, v), true
		}
	}
	if seen {
		r.CatchupMS = &worst
	}
	var dups, gdel, drops, syncs int64
	var sent []float64
	var sentSum, recvSum float64
	for n := range p.honest {
		st := &c.nodes[n]
		dups += st.dups.Load()
		gdel += st.gossipDelivered.Load()
		drops += st.dropped.Load()
		syncs += st.syncRounds.Load()
		sent = append(sent, float64(st.sent.Load()))
		sentSum += float64(st.sent.Load())
		recvSum += float64(st.recv.Load())
	}
	if gdel > 0 {
		r.DuplicatesPerDelivery = math.Round(float64(dups)/float64(gdel)*100) / 100
	}
	r.DroppedRPCs = drops
	r.SyncRoundsPerNode = float64(syncs) / float64(p.honest)
	slices.Sort(sent)
	r.BytesPerNode = BytesPerNode{SentMean: math.Round(sentSum / float64(p.honest)), RecvMean: math.Round(recvSum / float64(p.honest)),
		SentP50: sent[len(sent)/2], SentMax: sent[len(sent)-1], Scope: "gossipsub RPC bytes (events, heads, control), whole run incl. setup; pull-sync streams not counted"}
	if p.spammers > 0 {
		a := &AdversaryReport{}
		for _, m := range c.order {
			if m.spam {
				a.Published++
				a.AcceptedHonest += m.got
			}
		}
		r.Spam = a
	}
	if len(c.forgedIDs) > 0 {
		var rej int64
		for n := range p.honest {
			rej += c.nodes[n].rejected.Load()
		}
		r.Forged = &AdversaryReport{Published: len(c.forgedIDs), AcceptedHonest: c.forgedAcc, RejectedGossip: rej}
	}
	if len(c.orphanIDs) > 0 {
		r.Orphans = &AdversaryReport{Published: len(c.orphanIDs), AcceptedHonest: c.orphanAcc, PendingAtEndMax: &c.pendingMax}
	}
	if len(c.joinIDs) > 0 {
		r.JoinFlood = &AdversaryReport{Published: len(c.joinIDs), AcceptedHonest: c.joinAcc}
	}
	r.JunkCPU = s.junkCPU()
	r.CPU = s.cpu.report(p.honest, r.EventsPublished, c.end.Sub(c.t0), c.floods())
	r.BannedSpam = c.bannedSpamReport()
	if c.forkPairs > 0 {
		r.Equivocation = &AdversaryReport{Published: c.forkPairs, VisibleAtEndMax: &c.forkVisibleMax}
	}
	r.Notes = []string{
		"latency: from the author's acceptance of its own event to acceptance at each honest node (gossip or pull sync), in " + mode + " time",
		"completeness: honest messages accepted by honest nodes / (honest messages x (honest nodes - 1)); nodes offline at a message's time count as expected (they must catch up)",
		"mocknet links: fixed latency per link (jitter draws it per link), per-link bandwidth, no packet loss (loss is modelled as link outages)",
		"reproducibility: same seed gives the same schedule (schedule_sha256), keys, topology and counts; gossipsub's own randomness and goroutine scheduling are not seeded, so latencies and duplicates vary slightly",
	}
	if mode == "real" {
		r.Notes = append(r.Notes, "REAL TIME: latencies include scheduling delay of the host machine and are not valid above a few hundred nodes")
	}
	return r
}

// coverAfter: the time after at when every node selected by who held every
// honest event published before at (0 if they already did).
func (c *collector) coverAfter(at time.Duration, who func(int) bool) (float64, bool) {
	var last time.Duration
	for _, m := range c.order {
		if m.spam || m.pub >= at {
			continue
		}
		for n, t := range m.at {
			if !who(n) {
				continue
			}
			if t < 0 {
				return 0, false
			}
			last = max(last, t-at)
		}
	}
	return ms(last), true
}

func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return math.Round(kb / 1024)
			}
		}
	}
	return 0
}

func versions() map[string]string {
	v := map[string]string{"go": runtime.Version(), "gomaxprocs": strconv.Itoa(runtime.GOMAXPROCS(0))}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v["parley"] = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				v[s.Key] = s.Value
			}
		}
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/libp2p/go-libp2p", "github.com/libp2p/go-libp2p-pubsub":
				v[d.Path] = d.Version
			}
		}
	}
	return v
}

// writeReport creates dir and puts report.json and schedule.json in it;
// both backends start their outputs with it.
func writeReport(dir string, r *Report, actions []action) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	sched, _ := json.MarshalIndent(actions, "", " ")
	return os.WriteFile(filepath.Join(dir, "schedule.json"), sched, 0o644)
}

// write puts report.json, the CSV series and the plots in dir.
func (s *sim) write(dir string, r *Report) error {
	if err := writeReport(dir, r, s.plan.actions); err != nil {
		return err
	}
	c, p := s.col, s.plan
	c.mu.Lock()
	defer c.mu.Unlock()
	// deliveries.csv
	var del [][]string
	var lat []float64
	for k, m := range c.order {
		if m.spam {
			continue
		}
		for n := range p.honest {
			if n != m.author && m.at[n] >= 0 {
				l := ms(m.at[n] - m.pub)
				lat = append(lat, l)
				del = append(del, []string{strconv.Itoa(k), strconv.Itoa(m.author), strconv.Itoa(n), f3(m.pub.Seconds()), f3(l)})
			}
		}
	}
	if err := writeCSV(filepath.Join(dir, "deliveries.csv"), []string{"msg", "author", "node", "published_s", "latency_ms"}, del); err != nil {
		return err
	}
	// timeseries.csv: per 100 ms of traffic time
	step := 100 * time.Millisecond
	span := c.end.Sub(c.t0)
	nb := int(span/step) + 1
	delivered := make([]int, nb)
	expected := make([]int, nb)
	var pre []time.Duration // deliveries of pre-heal events after the heal
	heal := time.Duration(-1)
	if len(s.heals) > 0 {
		heal = s.heals[len(s.heals)-1]
	}
	for _, m := range c.order {
		if m.spam {
			continue
		}
		if k := int(m.pub / step); k < nb {
			expected[k] += p.honest - 1
		}
		for n := range p.honest {
			if n != m.author && m.at[n] >= 0 {
				if k := int(m.at[n] / step); k < nb {
					delivered[k]++
				}
				if heal >= 0 && m.pub < heal {
					pre = append(pre, max(m.at[n]-heal, 0))
				}
			}
		}
	}
	var ts [][]string
	var tx, cov []float64
	cd, ce := 0, 0
	for k := range nb {
		cd += delivered[k]
		ce += expected[k]
		cv := 1.0
		if ce > 0 {
			cv = float64(cd) / float64(ce)
		}
		t := (time.Duration(k) * step).Seconds()
		tx, cov = append(tx, t), append(cov, cv)
		ts = append(ts, []string{f3(t), strconv.Itoa(ce), strconv.Itoa(cd), f3(cv)})
	}
	if err := writeCSV(filepath.Join(dir, "timeseries.csv"), []string{"t_s", "expected_cum", "delivered_cum", "coverage"}, ts); err != nil {
		return err
	}
	// bandwidth.csv: per second since setup began
	var bw [][]string
	var bx, by []float64
	for k := 0; k <= int(c.end.Sub(c.begin)/time.Second) && k < len(c.buckets); k++ {
		sent := c.buckets[k].sent.Load()
		bw = append(bw, []string{strconv.Itoa(k), strconv.FormatInt(sent, 10), strconv.FormatInt(c.buckets[k].recv.Load(), 10)})
		bx, by = append(bx, float64(k)), append(by, float64(sent)/float64(p.total)/1024)
	}
	if err := writeCSV(filepath.Join(dir, "bandwidth.csv"), []string{"t_s_since_setup", "sent_bytes_all_nodes", "recv_bytes_all_nodes"}, bw); err != nil {
		return err
	}
	var pn [][]string
	for n := range p.total {
		role := "honest"
		if n >= p.honest+p.spammers {
			role = "forger"
		} else if n >= p.honest {
			role = "spammer"
		}
		st := &c.nodes[n]
		pn = append(pn, []string{strconv.Itoa(n), role, strconv.FormatInt(st.sent.Load(), 10), strconv.FormatInt(st.recv.Load(), 10),
			strconv.FormatInt(st.dups.Load(), 10), strconv.FormatInt(st.rejected.Load(), 10), strconv.FormatInt(st.syncRounds.Load(), 10)})
	}
	if err := writeCSV(filepath.Join(dir, "per_node.csv"), []string{"node", "role", "gossip_bytes_sent", "gossip_bytes_recv", "duplicates", "rejected", "sync_rounds"}, pn); err != nil {
		return err
	}
	return plots(dir, r, lat, tx, cov, bx, by, pre, s.heals)
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

func writeCSV(path string, head []string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(head)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
