package simulations

import (
	"context"
	"testing"
	"time"
)

// TestChurnVirtual (issue 16) runs the built-in churn scenario in virtual
// time: 30 % of the nodes go offline and come back (exponential sessions)
// while writers send. Every node, churners included, ends with every
// event (completeness 1, no gaps), and every return is caught up. The
// full scenario (50 nodes, 60 s) runs without -short; -short keeps the
// churn parameters on 20 nodes for 20 s.
func TestChurnVirtual(t *testing.T) {
	sc, err := Load("churn")
	if err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		sc = small(t, "churn", 20, 20*time.Second)
		sc.Room.Writers = 5
	}
	if sc.Churn == nil || sc.Churn.Share == 0 {
		t.Fatalf("the churn scenario has no churn: %+v", sc.Churn)
	}
	p := makePlan(sc)
	offline := 0
	for _, a := range p.actions {
		if a.Kind == actOffline {
			offline++
		}
	}
	if offline == 0 {
		t.Fatalf("seed %d: no node goes offline in the schedule", sc.Seed)
	}
	rep, err := Run(context.Background(), sc, RunOptions{T: t})
	if err != nil {
		t.Fatalf("seed %d: %v", sc.Seed, err)
	}
	t.Logf("seed %d, %d nodes, %d offline periods: published %d, deliveries %d/%d, gaps %d, latency %+v, worst catch-up %v ms, warnings %v",
		sc.Seed, sc.Nodes, offline, rep.EventsPublished, rep.Deliveries, rep.DeliveriesExpected, rep.Gaps, rep.LatencyMS, ptr(rep.CatchupMS), rep.Warnings)
	if rep.EventsPublished == 0 || rep.Completeness != 1 || rep.Gaps != 0 {
		t.Fatalf("seed %d: published %d, completeness %v, gaps %d", sc.Seed, rep.EventsPublished, rep.Completeness, rep.Gaps)
	}
	if rep.CatchupMS == nil {
		t.Fatalf("seed %d: no returning node caught up", sc.Seed)
	}
}

func ptr(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
