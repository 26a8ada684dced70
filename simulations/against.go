package simulations

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// The goal an attack run is held to against the same run without the
// attack (issue 15's acceptance, gossipsub v1.1's evaluation): honest
// delivery at least AgainstMinCompleteness, and p99 latency at most
// AgainstMaxP99Ratio times the baseline's.
const (
	AgainstMinCompleteness = 0.99
	AgainstMaxP99Ratio     = 2.0
)

// Against compares a run with a baseline run (report.json's "against"):
// the same scenario without its adversaries, at the same seed.
type Against struct {
	Scenario     string    `json:"scenario"` // the baseline's
	Seed         uint64    `json:"seed"`
	Completeness float64   `json:"completeness"`
	LatencyMS    Quantiles `json:"latency_ms"`
	P50Ratio     float64   `json:"p50_ratio"` // this run's p50 / the baseline's
	P99Ratio     float64   `json:"p99_ratio"`
	Goal         string    `json:"goal"`
	Met          bool      `json:"met"`
	Why          string    `json:"why,omitempty"` // what missed the goal
}

// LoadReport reads a report.json, or the report.json in a directory, as
// far as Compare and CPUFrom need it (scenario, seed, backend, nodes,
// published, completeness, latency, cpu).
func LoadReport(path string) (*Report, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "report.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline report: %w", err)
	}
	// Only what Compare reads: the rest (params) has types that are
	// written for people, not read back.
	var r struct {
		Scenario        string     `json:"scenario"`
		Seed            uint64     `json:"seed"`
		Backend         string     `json:"backend"`
		Nodes           int        `json:"nodes"`
		EventsPublished int        `json:"events_published"`
		Completeness    float64    `json:"completeness"`
		LatencyMS       Quantiles  `json:"latency_ms"`
		PathLatencyMS   *Quantiles `json:"path_latency_ms"`
		CPU             *CPUReport `json:"cpu"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("baseline report %s: %w", path, err)
	}
	if r.Scenario == "" || r.LatencyMS.P99 <= 0 {
		return nil, fmt.Errorf("baseline report %s: no scenario or no latency", path)
	}
	return &Report{Scenario: r.Scenario, Seed: r.Seed, Backend: r.Backend, Nodes: r.Nodes, EventsPublished: r.EventsPublished,
		Completeness: r.Completeness, LatencyMS: r.LatencyMS, PathLatencyMS: r.PathLatencyMS, CPU: r.CPU}, nil
}

// Compare holds r against base: completeness and the p99 ratio against
// the goal above.
func Compare(r, base *Report) *Against {
	a := &Against{
		Scenario:     base.Scenario,
		Seed:         base.Seed,
		Completeness: base.Completeness,
		LatencyMS:    base.LatencyMS,
		Goal:         fmt.Sprintf("completeness >= %.2f and p99 <= %.0fx the baseline's", AgainstMinCompleteness, AgainstMaxP99Ratio),
	}
	ratio := func(x, y float64) float64 {
		if y <= 0 {
			return 0
		}
		return float64(int(x/y*100+0.5)) / 100
	}
	a.P50Ratio = ratio(r.LatencyMS.P50, base.LatencyMS.P50)
	a.P99Ratio = ratio(r.LatencyMS.P99, base.LatencyMS.P99)
	switch {
	case r.Completeness < AgainstMinCompleteness:
		a.Why = fmt.Sprintf("completeness %.4f", r.Completeness)
	case r.LatencyMS.P99 > AgainstMaxP99Ratio*base.LatencyMS.P99:
		a.Why = fmt.Sprintf("p99 %.0f ms is %.2fx the baseline's %.0f ms", r.LatencyMS.P99, r.LatencyMS.P99/base.LatencyMS.P99, base.LatencyMS.P99)
	default:
		a.Met = true
	}
	return a
}
