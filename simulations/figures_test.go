package simulations

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompareLatency draws two runs' latency CDFs into a PNG.
func TestCompareLatency(t *testing.T) {
	var dirs []string
	for i, name := range []string{"attack", "baseline"} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(Report{Scenario: name, Nodes: 10, Completeness: 1, JunkCPU: &JunkCPU{MeanMS: float64(i)}})
		os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644)
		os.WriteFile(filepath.Join(dir, "deliveries.csv"), []byte("msg,author,node,published_s,latency_ms\n0,1,2,0.5,20\n0,1,3,0.5,40\n1,1,2,0.6,60\n"), 0o644)
		dirs = append(dirs, dir)
	}
	out := filepath.Join(t.TempDir(), "cmp.png")
	if err := CompareLatency(out, "test", dirs); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Fatalf("no PNG written: %v", err)
	}
	if err := CompareLatency(out, "test", []string{t.TempDir()}); err == nil {
		t.Fatal("a folder without a report was drawn")
	}
}

// TestFigure renders a figure from finished runs when asked:
//
//	PARLEY_SIM_FIGURE='docs/figures/x.png|Title|/tmp/a,/tmp/b' go test ./simulations -run TestFigure$
func TestFigure(t *testing.T) {
	spec := os.Getenv("PARLEY_SIM_FIGURE")
	if spec == "" {
		t.Skip("PARLEY_SIM_FIGURE not set")
	}
	parts := strings.SplitN(spec, "|", 3)
	if len(parts) != 3 {
		t.Fatalf("PARLEY_SIM_FIGURE=%q: want OUT|TITLE|DIR,DIR", spec)
	}
	if err := CompareLatency(parts[0], parts[1], strings.Split(parts[2], ",")); err != nil {
		t.Fatal(err)
	}
}
