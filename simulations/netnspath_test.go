package simulations

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/parley-p2p/parley/node"
)

// expose renders a registry holding a path histogram with the daemons'
// buckets, fed with the given seconds per stage.
func expose(t *testing.T, obs map[string][]float64) *bytes.Buffer {
	t.Helper()
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: pathMetric, Help: "x",
		Buckets: prometheus.ExponentialBucketsRange(20e-6, 2, 45)}, []string{pathStageLabel})
	reg.MustRegister(h)
	for stage, xs := range obs {
		for _, x := range xs {
			h.WithLabelValues(stage).Observe(x)
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return &b
}

// TestPathHists: scraped histograms parse by stage, subtract an earlier
// scrape, add across daemons, and give quantiles within a bucket's width
// (1.3x) of the exact ones.
func TestPathHists(t *testing.T) {
	var early, late []float64
	for i := range 100 {
		early = append(early, 0.010)           // 10 ms: before traffic, must not count
		late = append(late, float64(i+1)*1e-4) // 0.1 .. 10 ms
	}
	before, err := parsePathHists(expose(t, map[string][]float64{node.PathValidate: early}))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parsePathHists(expose(t, map[string][]float64{node.PathValidate: append(early, late...), node.PathApply: late}))
	if err != nil {
		t.Fatal(err)
	}
	v := after[node.PathValidate].since(before[node.PathValidate])
	if v.count() != 100 {
		t.Fatalf("validate since the first scrape: %d, want 100", v.count())
	}
	a := after[node.PathApply].since(before[node.PathApply]) // no earlier stage: all of it
	both := v.plus(a)
	if both.count() != 200 {
		t.Fatalf("two daemons: %d, want 200", both.count())
	}
	st := both.stage()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p10", st.P10MS, 1.0}, {"p25", st.P25MS, 2.5}, {"p50", st.P50MS, 5.0}, {"p90", st.P90MS, 9.0}, {"mean", st.MeanMS, 5.05}} {
		if math.Abs(c.got-c.want)/c.want > 0.3 {
			t.Errorf("%s = %.3f ms, want about %.3f", c.name, c.got, c.want)
		}
	}
	// A daemon that restarted between the scrapes counts from its restart.
	if r := before[node.PathValidate].since(after[node.PathValidate]); r.count() != 100 {
		t.Errorf("after a restart: %d, want the later scrape's 100", r.count())
	}
	if none := (pathHist{}).stage(); none != (PathStage{}) {
		t.Errorf("empty: %+v", none)
	}
}

// FuzzParsePathHists: any exposition parses or fails with an error, and
// what parses gives quantiles and buckets without a panic.
func FuzzParsePathHists(f *testing.F) {
	var b bytes.Buffer
	b.WriteString("# TYPE parley_gossip_path_seconds histogram\n")
	b.WriteString(`parley_gossip_path_seconds_bucket{stage="apply",le="0.001"} 3` + "\n")
	b.WriteString(`parley_gossip_path_seconds_bucket{stage="apply",le="+Inf"} 5` + "\n")
	b.WriteString(`parley_gossip_path_seconds_sum{stage="apply"} 0.02` + "\n")
	b.WriteString(`parley_gossip_path_seconds_count{stage="apply"} 5` + "\n")
	f.Add(b.Bytes())
	f.Add([]byte("go_goroutines 12\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		hs, err := parsePathHists(bytes.NewReader(in))
		if err != nil {
			return
		}
		for _, h := range hs {
			st := h.plus(h).since(h).stage()
			if st.Count < 0 {
				t.Fatalf("count %d", st.Count)
			}
		}
	})
}
