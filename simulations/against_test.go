package simulations

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	base := &Report{Scenario: "x-baseline", Seed: 1, Completeness: 1, LatencyMS: Quantiles{P50: 80, P99: 100}}
	for _, c := range []struct {
		name         string
		completeness float64
		p50, p99     float64
		met          bool
		why          string
	}{
		{"within", 1, 80, 120, true, ""},
		{"at 2x", 0.99, 100, 200, true, ""},
		{"slow", 1, 120, 201, false, "p99 201 ms is 2.01x"},
		{"lossy", 0.989, 80, 100, false, "completeness 0.9890"},
	} {
		r := &Report{Completeness: c.completeness, LatencyMS: Quantiles{P50: c.p50, P99: c.p99}}
		a := Compare(r, base)
		if a.Met != c.met || !strings.Contains(a.Why, c.why) || (c.why == "") != (a.Why == "") {
			t.Errorf("%s: met %v, why %q; want %v, %q", c.name, a.Met, a.Why, c.met, c.why)
		}
		if a.Scenario != "x-baseline" || a.P99Ratio != float64(int(c.p99/100*100+0.5))/100 {
			t.Errorf("%s: %+v", c.name, a)
		}
	}
}

func TestLoadReport(t *testing.T) {
	dir := t.TempDir()
	b, _ := json.Marshal(&Report{Scenario: "b", Seed: 2, Completeness: 1, LatencyMS: Quantiles{P50: 1, P99: 2}, PathLatencyMS: &Quantiles{P50: 0.5}})
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "report.json")} {
		if r, err := LoadReport(p); err != nil || r.Scenario != "b" || r.Seed != 2 || r.PathLatencyMS == nil || r.PathLatencyMS.P50 != 0.5 {
			t.Errorf("%s: %+v, %v", p, r, err)
		}
	}
	bad := filepath.Join(dir, "bad.json")
	for content, want := range map[string]string{"{": "baseline report", `{"scenario":"b"}`: "no latency"} {
		os.WriteFile(bad, []byte(content), 0o600)
		if _, err := LoadReport(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
	if _, err := LoadReport(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing report loaded")
	}
	// The committed sybil-flood-1000 reports are what the README cites.
	attack, err := LoadReport("examples/sybil-flood-1000.report.json")
	if err != nil {
		t.Fatal(err)
	}
	base, err := LoadReport("examples/sybil-flood-1000-baseline.report.json")
	if err != nil {
		t.Fatal(err)
	}
	if a := Compare(attack, base); !a.Met {
		t.Errorf("the committed sybil-flood-1000 run misses its goal: %s", a.Why)
	}
}
