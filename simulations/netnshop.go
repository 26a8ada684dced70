package simulations

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// traceMark is one line of a daemon's gossip path trace (parley daemon
// --gossip-trace, docs/operators.md): the peer a gossiped event came from
// (the daemon's own ID for its own), when the daemon took it for
// validation or dropped it as a duplicate, and when it delivered and
// forwarded it (0 for a duplicate), Unix nanoseconds.
type traceMark struct {
	from      string
	in, valid int64
}

// gossipTrace is a daemon's trace: the first copy of each event, by
// message ID in hex, and the later copies dropped as duplicates.
type gossipTrace struct {
	first   map[string]traceMark
	dups    []traceCopy
	applied map[string]int64 // when a peer's event was taken into its room
}

// traceCopy is a duplicate: its message ID in hex and its mark.
type traceCopy struct {
	id string
	traceMark
}

// maxTraceLine bounds a trace line: a 32-byte ID in hex, a peer ID and
// two times fit in far less.
const maxTraceLine = 512

// parseGossipTrace reads a gossip path trace. A message whose first copy
// is traced twice keeps its first line (a daemon traces each at most once,
// but for its own after a restart).
func parseGossipTrace(in io.Reader) (*gossipTrace, error) {
	out := &gossipTrace{first: map[string]traceMark{}, applied: map[string]int64{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, maxTraceLine), maxTraceLine)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) != 4 {
			return nil, fmt.Errorf("gossip trace: line %d: %d fields, want 4", line, len(f))
		}
		if _, err := hex.DecodeString(f[0]); err != nil || f[0] == "" {
			return nil, fmt.Errorf("gossip trace: line %d: message ID is not hex", line)
		}
		tin, err1 := strconv.ParseInt(f[2], 10, 64)
		if f[1] == "applied" {
			if err1 != nil || tin <= 0 || f[3] != f[2] {
				return nil, fmt.Errorf("gossip trace: line %d: bad time", line)
			}
			if _, ok := out.applied[f[0]]; !ok {
				out.applied[f[0]] = tin
			}
			continue
		}
		if f[3] == "-" {
			if err1 != nil || tin <= 0 {
				return nil, fmt.Errorf("gossip trace: line %d: bad time", line)
			}
			out.dups = append(out.dups, traceCopy{f[0], traceMark{from: f[1], in: tin}})
			continue
		}
		tvalid, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil || tin <= 0 || tvalid < tin {
			return nil, fmt.Errorf("gossip trace: line %d: bad times", line)
		}
		if _, ok := out.first[f[0]]; !ok {
			out.first[f[0]] = traceMark{from: f[1], in: tin, valid: tvalid}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gossip trace: %w", err)
	}
	return out, nil
}

// HopReport (netns) is the time of a gossip hop beyond its link's
// latency, from the daemons' traces: for each copy of a traffic message
// a node received (Copies: all; First: the first at each node), the time
// from the sending peer delivering and forwarding it to the receiver
// taking it for validation or dropping it as a duplicate, less the
// latency of the link between them. It is what a hop costs outside the
// two timed stages: the sender's queue, Noise, yamux, the kernel, the
// forwarder's lateness, the receiver's read loop and pubsub's event loop.
type HopReport struct {
	Count  int     `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	// PercentilesMS are the 0th to the 100th percentile (101 values):
	// the distribution a virtual-time run draws each hop's extra delay
	// from (CPU.Hop).
	PercentilesMS []float64 `json:"percentiles_ms"`
}

// hopExcess returns, in milliseconds, each traced hop's time beyond its
// link's latency for the messages with the given IDs (hex): of the first
// copy each node took, and with copies also of every duplicate. A hop is
// the time from the sending peer delivering and forwarding the message to
// the receiver taking it (or dropping it as a duplicate). traces[i] is
// node i's trace (nil: none), node maps a peer ID to its node, and link
// gives the latency between two neighbours. A hop whose sender's line is
// missing (it was not traced) is skipped.
func hopExcess(traces []*gossipTrace, node map[string]int, link func(a, b int) (time.Duration, bool), ids []string, copies bool) []float64 {
	var want map[string]bool
	if copies {
		want = make(map[string]bool, len(ids))
		for _, id := range ids {
			want[id] = true
		}
	}
	var out []float64
	hop := func(v int, id string, m traceMark) {
		u, ok := node[m.from]
		if !ok || u == v || traces[u] == nil {
			return // its own, or from a peer not traced
		}
		s, ok := traces[u].first[id]
		if !ok {
			return
		}
		if lat, ok := link(u, v); ok {
			out = append(out, max(ms(time.Duration(m.in-s.valid)-lat), 0))
		}
	}
	for v, tr := range traces {
		if tr == nil {
			continue
		}
		for _, id := range ids {
			if m, ok := tr.first[id]; ok {
				hop(v, id, m)
			}
		}
		if copies {
			for _, c := range tr.dups {
				if want[c.id] {
					hop(v, c.id, c.traceMark)
				}
			}
		}
	}
	return out
}

// hopReport summarises hop excesses (milliseconds); nil for none.
func hopReport(x []float64) *HopReport {
	if len(x) == 0 {
		return nil
	}
	x = slices.Clone(x)
	slices.Sort(x)
	r2 := func(v float64) float64 { return math.Round(v*100) / 100 }
	at := func(q float64) float64 { return r2(x[min(int(q*float64(len(x)-1)+0.5), len(x)-1)]) }
	var sum float64
	for _, v := range x {
		sum += v
	}
	h := &HopReport{Count: len(x), MeanMS: r2(sum / float64(len(x))), P50MS: at(0.5), P90MS: at(0.9), P99MS: at(0.99)}
	for k := 0; k <= 100; k++ {
		h.PercentilesMS = append(h.PercentilesMS, at(float64(k)/100))
	}
	return h
}

// validHop checks a distribution given to the CPU model: none, or 101
// non-decreasing, non-negative percentiles in milliseconds below a minute.
func validHop(name string, p []float64) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) != 101 {
		return fmt.Errorf("cpu.%s: %d percentiles, want 101 (0th to 100th)", name, len(p))
	}
	for k, v := range p {
		if !(v >= 0 && v < 60e3) || k > 0 && v < p[k-1] {
			return fmt.Errorf("cpu.%s: percentiles must be non-decreasing milliseconds in [0, 60000)", name)
		}
	}
	return nil
}

// drawHop draws from percentiles p (validHop) at uniform u in [0,1),
// linear between neighbouring percentiles.
func drawHop(p []float64, u float64) time.Duration {
	if len(p) == 0 {
		return 0
	}
	x := u * float64(len(p)-1)
	k := min(int(x), len(p)-2)
	v := p[k] + (p[k+1]-p[k])*(x-float64(k))
	return time.Duration(v * 1e6)
}

// duplicatesPer is the traced duplicates of the messages with the given
// IDs (hex) per first copy taken from a peer, all nodes; 0 for none.
func duplicatesPer(traces []*gossipTrace, self []string, ids []string) float64 {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var dups, firsts int
	for i, tr := range traces {
		if tr == nil {
			continue
		}
		for id, m := range tr.first {
			if want[id] && m.from != self[i] {
				firsts++
			}
		}
		for _, c := range tr.dups {
			if want[c.id] {
				dups++
			}
		}
	}
	if firsts == 0 {
		return 0
	}
	return math.Round(float64(dups)/float64(firsts)*100) / 100
}

// pathLatency is, for the messages with the given IDs (hex) and authors,
// each other node's time from the author publishing the message to taking
// it into its room, in milliseconds, by the daemons' traces (one clock):
// what the virtual-time backend measures, without the watch stream.
func pathLatency(traces []*gossipTrace, ids []string, authors []int) []float64 {
	var out []float64
	for k, id := range ids {
		a := authors[k]
		if traces[a] == nil {
			continue
		}
		pub, ok := traces[a].first[id]
		if !ok {
			continue
		}
		for v, tr := range traces {
			if v == a || tr == nil {
				continue
			}
			if t, ok := tr.applied[id]; ok {
				out = append(out, max(ms(time.Duration(t-pub.valid)), 0))
			}
		}
	}
	return out
}

// Decomposition (netns) splits each delivery's latency along the chain of
// first copies that brought the message from its author, by the daemons'
// traces: what the links, the hops beyond them and the validate stages
// took, and what came after the receiver validated it (apply, the watch
// stream, the simulator's reader).
type Decomposition struct {
	Deliveries int `json:"deliveries"` // with a whole chain traced
	// Longer counts deliveries whose chain had more hops than the
	// shortest path in the topology.
	Longer     int       `json:"longer"`
	LatencyMS  Quantiles `json:"latency_ms"`  // at the watch line, as the report's
	PathMS     Quantiles `json:"path_ms"`     // published to validated at the receiver
	LinksMS    Quantiles `json:"links_ms"`    // the chain's link latencies
	HopsMS     Quantiles `json:"hops_ms"`     // the chain's hops beyond the links
	ValidateMS Quantiles `json:"validate_ms"` // the chain's validate stages
	AfterMS    Quantiles `json:"after_ms"`    // validated to the watch line
}

// traceMsg is a traffic message: its number (deliveries.csv's), its ID
// in hex, its author, and each node's watch-line time (zero: none).
type traceMsg struct {
	k      int
	id     string
	author int
	watch  []time.Time
}

// decompose computes the Decomposition of msgs; nil when no delivery has
// a whole chain. dist gives the topology's hop distance between nodes.
func decompose(traces []*gossipTrace, node map[string]int, link func(a, b int) (time.Duration, bool), dist func(a, b int) int, msgs []traceMsg) *Decomposition {
	var lat, path, links, hops, val, after []float64
	d := &Decomposition{}
	for _, m := range msgs {
		a := m.author
		if a >= len(traces) || traces[a] == nil || m.watch[a].IsZero() {
			continue
		}
		pub, ok := traces[a].first[m.id]
		if !ok {
			continue
		}
	deliveries:
		for v, tr := range traces {
			if v == a || tr == nil || m.watch[v].IsZero() {
				continue
			}
			last, ok := tr.first[m.id]
			if !ok {
				continue
			}
			var l, h, vs time.Duration
			n := 0
			for x, mk := v, last; x != a; n++ {
				u, ok := node[mk.from]
				if !ok || u == x || n >= len(traces) || traces[u] == nil {
					continue deliveries
				}
				s, ok := traces[u].first[m.id]
				lk, linked := link(u, x)
				if !ok || !linked {
					continue deliveries
				}
				l += lk
				h += time.Duration(mk.in-s.valid) - lk
				vs += time.Duration(mk.valid - mk.in)
				x, mk = u, s
			}
			d.Deliveries++
			if n > dist(a, v) {
				d.Longer++
			}
			total := m.watch[v].Sub(m.watch[a])
			p := time.Duration(last.valid - pub.valid)
			lat, path, links = append(lat, ms(total)), append(path, ms(p)), append(links, ms(l))
			hops, val, after = append(hops, ms(h)), append(val, ms(vs)), append(after, ms(total-p))
		}
	}
	if d.Deliveries == 0 {
		return nil
	}
	d.LatencyMS, d.PathMS, d.LinksMS = quantiles(lat), quantiles(path), quantiles(links)
	d.HopsMS, d.ValidateMS, d.AfterMS = quantiles(hops), quantiles(val), quantiles(after)
	return d
}

// stageWalls returns, in milliseconds, the wall time of the validate
// stage of every first copy of the messages with the given IDs (hex) a
// node took from a peer, and of the apply stage (validated to taken in)
// of those that came by gossip, by the daemons' traces.
func stageWalls(traces []*gossipTrace, self []string, ids []string) (validate, apply []float64) {
	for i, tr := range traces {
		if tr == nil {
			continue
		}
		for _, id := range ids {
			m, ok := tr.first[id]
			if !ok || m.from == self[i] {
				continue
			}
			validate = append(validate, ms(time.Duration(m.valid-m.in)))
			if t, ok := tr.applied[id]; ok && t >= m.valid {
				apply = append(apply, ms(time.Duration(t-m.valid)))
			}
		}
	}
	return validate, apply
}
