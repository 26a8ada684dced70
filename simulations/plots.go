package simulations

import (
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// plots draws the SVGs: latency CDF, coverage over time, bandwidth over
// time and (with a partition) coverage of pre-heal events after the heal.
func plots(dir string, r *Report, lat, tx, cov, bx, by []float64, pre []time.Duration, heals []time.Duration) error {
	title := fmt.Sprintf("%s, %d nodes, seed %d (%s time)", r.Scenario, r.Nodes, r.Seed, r.TimeMode)
	if len(lat) > 0 {
		xs := slices.Clone(lat)
		slices.Sort(xs)
		if err := line(filepath.Join(dir, "latency_cdf.svg"), "Delivery latency CDF: "+title, "latency (ms)", "fraction of deliveries", cdf(xs)); err != nil {
			return err
		}
	}
	pts := make(plotter.XYs, len(tx))
	for i := range tx {
		pts[i] = plotter.XY{X: tx[i], Y: cov[i]}
	}
	if err := line(filepath.Join(dir, "coverage.svg"), "Coverage over time: "+title, "virtual time since traffic start (s)", "delivered / expected so far", pts); err != nil {
		return err
	}
	bw := make(plotter.XYs, len(bx))
	for i := range bx {
		bw[i] = plotter.XY{X: bx[i], Y: by[i]}
	}
	if err := line(filepath.Join(dir, "bandwidth.svg"), "Gossip bytes sent per node per second: "+title, "virtual time since setup start (s)", "KiB/s per node", bw); err != nil {
		return err
	}
	if len(heals) > 0 && len(pre) > 0 {
		xs := make([]float64, len(pre))
		for i, d := range pre {
			xs[i] = float64(d) / 1e6
		}
		slices.Sort(xs)
		if err := line(filepath.Join(dir, "convergence.svg"), "Convergence after heal: "+title, "time since heal (ms)", "fraction of pre-heal deliveries held", cdf(xs)); err != nil {
			return err
		}
	}
	return nil
}

func cdf(sorted []float64) plotter.XYs {
	pts := make(plotter.XYs, 0, len(sorted)+1)
	pts = append(pts, plotter.XY{X: sorted[0], Y: 0})
	step := max(1, len(sorted)/2000) // keep SVGs small
	for i := 0; i < len(sorted); i += step {
		pts = append(pts, plotter.XY{X: sorted[i], Y: float64(i+1) / float64(len(sorted))})
	}
	pts = append(pts, plotter.XY{X: sorted[len(sorted)-1], Y: 1})
	return pts
}

func line(path, title, x, y string, pts plotter.XYs) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Add(plotter.NewGrid())
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	p.Add(l)
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
