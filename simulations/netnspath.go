package simulations

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// PathReport (netns) is the daemons' own timing of the gossip path during
// traffic (parley_gossip_path_seconds, node/gossippath.go), all daemons
// together: the wall time a gossiped event spent in a daemon, by stage.
type PathReport struct {
	// Validate: from gossipsub taking a peer's message for validation to
	// its delivery, when gossipsub also forwards it (each hop's part).
	Validate PathStage `json:"validate"`
	// Apply: from that delivery until the engine took the event into the
	// room (log, state, store commit), just before the watchers are told.
	Apply PathStage `json:"apply"`
	// Hop: each hop's time beyond its link's latency, from the daemons'
	// gossip path traces (nil: no traces): of every copy a node received
	// (the model's hop_ms), and of the first copy at each node.
	Hop      *HopReport `json:"hop,omitempty"`
	HopFirst *HopReport `json:"hop_first,omitempty"`
	// ValidateWall and ApplyWall are the two stages' wall times by the
	// traces, as distributions a model can draw from (CPU.ValidateMS,
	// CPU.ApplyMS).
	ValidateWall *HopReport `json:"validate_wall,omitempty"`
	ApplyWall    *HopReport `json:"apply_wall,omitempty"`
	// Decomposition splits the deliveries' latency along their chains
	// of first copies (nil: no traces).
	Decomposition *Decomposition `json:"decomposition,omitempty"`
}

// PathStage is one stage's distribution, interpolated within the
// histogram's buckets (1.3x apart) as Prometheus' histogram_quantile does.
type PathStage struct {
	Count  int     `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P10MS  float64 `json:"p10_ms"`
	P25MS  float64 `json:"p25_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
}

// pathMetric is the daemons' histogram and its label (node.PathValidate,
// node.PathApply).
const pathMetric, pathStageLabel = "parley_gossip_path_seconds", "stage"

// pathHist is one stage's cumulative histogram as scraped.
type pathHist struct {
	upper []float64 // buckets' upper bounds, seconds, ascending, +Inf last
	cum   []uint64  // cumulative counts per bucket
	sum   float64   // seconds
}

func (h pathHist) count() uint64 {
	if len(h.cum) == 0 {
		return 0
	}
	return h.cum[len(h.cum)-1]
}

// parsePathHists reads the path histogram, by stage, from a Prometheus
// text exposition.
func parsePathHists(in io.Reader) (_ map[string]pathHist, err error) {
	// expfmt v0.70.1's parser panics on some malformed input (a TYPE line
	// followed by a bare label set: FuzzParsePathHists' corpus).
	defer func() {
		if recover() != nil {
			err = errors.New("metrics: malformed exposition")
		}
	}()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(in)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := map[string]pathHist{}
	fam := fams[pathMetric]
	if fam == nil {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		stage := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == pathStageLabel {
				stage = l.GetValue()
			}
		}
		hm := m.GetHistogram()
		if hm == nil || stage == "" {
			continue
		}
		var h pathHist
		for _, b := range hm.GetBucket() {
			h.upper = append(h.upper, b.GetUpperBound())
			h.cum = append(h.cum, b.GetCumulativeCount())
		}
		h.upper = append(h.upper, math.Inf(1))
		h.cum = append(h.cum, hm.GetSampleCount())
		h.sum = hm.GetSampleSum()
		out[stage] = h
	}
	return out, nil
}

// since is h less an earlier scrape of the same daemon (h itself if the
// daemon restarted in between, or had no earlier scrape).
func (h pathHist) since(before pathHist) pathHist {
	if len(before.cum) != len(h.cum) || before.count() > h.count() {
		return h
	}
	d := pathHist{upper: h.upper, cum: make([]uint64, len(h.cum)), sum: h.sum - before.sum}
	for i := range h.cum {
		d.cum[i] = h.cum[i] - min(before.cum[i], h.cum[i])
	}
	return d
}

// plus adds two histograms of the same buckets (an empty one is none).
func (h pathHist) plus(o pathHist) pathHist {
	switch {
	case len(h.cum) == 0:
		return o
	case len(o.cum) == 0:
		return h
	case len(o.cum) != len(h.cum):
		return h // another daemon build's buckets: not comparable
	}
	s := pathHist{upper: h.upper, cum: make([]uint64, len(h.cum)), sum: h.sum + o.sum}
	for i := range h.cum {
		s.cum[i] = h.cum[i] + o.cum[i]
	}
	return s
}

// quantile is the q-quantile in seconds, linear within its bucket; a
// quantile in the +Inf bucket is the last finite bound.
func (h pathHist) quantile(q float64) float64 {
	n := h.count()
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	lower, below := 0.0, uint64(0)
	for i, c := range h.cum {
		if float64(c) >= rank && c > below {
			if math.IsInf(h.upper[i], 1) {
				return lower
			}
			return lower + (h.upper[i]-lower)*(rank-float64(below))/float64(c-below)
		}
		lower, below = h.upper[i], c
	}
	return lower
}

// stage summarises h in milliseconds.
func (h pathHist) stage() PathStage {
	n := h.count()
	if n == 0 {
		return PathStage{}
	}
	r := func(s float64) float64 { return math.Round(s*1e6) / 1e3 }
	return PathStage{Count: int(n), MeanMS: r(h.sum / float64(n)),
		P10MS: r(h.quantile(0.1)), P25MS: r(h.quantile(0.25)), P50MS: r(h.quantile(0.5)), P90MS: r(h.quantile(0.9))}
}
