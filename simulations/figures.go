package simulations

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// CompareLatency draws the delivery latency CDFs of finished runs (their
// --out folders) on one figure, one line per run labelled with its
// scenario, its completeness and its junk CPU, into out (.png or .svg):
// an attack next to its baseline, for the reports in README.md and
// simulations/README.md.
func CompareLatency(out, title string, dirs []string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "delivery latency (ms)"
	p.Y.Label.Text = "fraction of honest deliveries"
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YPosition = 0.05
	for k, dir := range dirs {
		var r struct { // the fields of a Report the label needs
			Scenario     string    `json:"scenario"`
			Nodes        int       `json:"nodes"`
			Adversaries  int       `json:"adversaries"`
			Completeness float64   `json:"completeness"`
			LatencyMS    Quantiles `json:"latency_ms"`
			JunkCPU      *JunkCPU  `json:"junk_cpu"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "report.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		xs, err := latencies(filepath.Join(dir, "deliveries.csv"))
		if err != nil {
			return err
		}
		if len(xs) == 0 {
			continue
		}
		slices.Sort(xs)
		l, err := plotter.NewLine(cdf(xs))
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(k)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(k)
		label := fmt.Sprintf("%s: %d honest, %d adversaries, completeness %.4f, p99 %.0f ms", r.Scenario, r.Nodes, r.Adversaries, r.Completeness, r.LatencyMS.P99)
		if r.JunkCPU != nil {
			label += fmt.Sprintf(", junk CPU %.0f ms/node", r.JunkCPU.MeanMS)
		}
		p.Add(l)
		p.Legend.Add(label, l)
	}
	p.Legend.TextStyle.Color = color.Black
	return p.Save(10*vg.Inch, 5*vg.Inch, out)
}

// latencies reads the latency_ms column of a deliveries.csv.
func latencies(path string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	col := slices.Index(rows[0], "latency_ms")
	if col < 0 {
		return nil, fmt.Errorf("%s: no latency_ms column", path)
	}
	var xs []float64
	for _, row := range rows[1:] {
		if v, err := strconv.ParseFloat(row[col], 64); err == nil && v >= 0 {
			xs = append(xs, v)
		}
	}
	return xs, nil
}
