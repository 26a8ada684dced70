package simulations

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestListAndLoadBuiltins(t *testing.T) {
	want := []string{"ban-under-partition", "banned-spammer", "churn", "eclipse", "gossip-latency", "join-flood", "join-flood-baseline", "join-flood-nopow", "large-room", "lossy-links", "misbehaving-peers", "offline-catchup", "partition-heal", "spam-flood", "sybil-flood", "sybil-flood-1000", "sybil-flood-1000-baseline", "sybil-flood-baseline"}
	list := List()
	if len(list) != len(want) {
		t.Fatalf("List() = %v, want %v", list, want)
	}
	for i, s := range list {
		if s.Name != want[i] || s.Description == "" {
			t.Errorf("scenario %d = %+v, want name %s with a description", i, s, want[i])
		}
		if _, err := Load(s.Name); err != nil {
			t.Errorf("Load(%s): %v", s.Name, err)
		}
	}
	if _, err := Load("no-such-scenario"); err == nil {
		t.Error("Load of an unknown name succeeded")
	}
	if _, err := Parse([]byte("name: x\nnodes: 5\nbogus: 1\n")); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestPlanIsSeeded(t *testing.T) {
	sc, _ := Load("churn")
	a, b := makePlan(sc), makePlan(sc)
	if a.hash != b.hash {
		t.Fatal("same seed, different schedule")
	}
	sc.Seed++
	if makePlan(sc).hash == a.hash {
		t.Fatal("different seed, same schedule")
	}
}

func small(t *testing.T, name string, nodes int, dur time.Duration) *Scenario {
	sc, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	sc.Nodes = nodes
	sc.Duration = Duration(dur)
	sc.Drain = Duration(20 * time.Second)
	sc.Warmup = Duration(2 * time.Second)
	if sc.Room.Writers > nodes {
		sc.Room.Writers = nodes
	}
	return sc
}

func TestGossipSmallVirtual(t *testing.T) {
	sc := small(t, "gossip-latency", 15, 10*time.Second)
	sc.Room.Rate = 2
	out := t.TempDir()
	var reps []*Report
	for range 2 {
		rep, err := Run(context.Background(), sc, RunOptions{T: t, Out: out})
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	a, b := reps[0], reps[1]
	t.Logf("published %d, deliveries %d/%d, latency %+v, dups %.2f, wall %.2fs", a.EventsPublished, a.Deliveries, a.DeliveriesExpected, a.LatencyMS, a.DuplicatesPerDelivery, a.WallS)
	if a.TimeMode != "virtual" || a.Completeness != 1 || a.EventsPublished == 0 {
		t.Fatalf("mode %s, completeness %v, published %d", a.TimeMode, a.Completeness, a.EventsPublished)
	}
	// 20 ms links: every latency is a whole number of hops in virtual time
	if a.LatencyMS.P50 < 20 || a.LatencyMS.Max > 200 {
		t.Errorf("latency %+v out of the expected hop range", a.LatencyMS)
	}
	if a.EventsPublished != b.EventsPublished || a.Deliveries != b.Deliveries || a.ScheduleSHA256 != b.ScheduleSHA256 {
		t.Errorf("same seed, different counts: %d/%d vs %d/%d", a.EventsPublished, a.Deliveries, b.EventsPublished, b.Deliveries)
	}
	if a.LatencyMS.P50 != b.LatencyMS.P50 {
		t.Logf("p50 differs between reruns: %v vs %v", a.LatencyMS.P50, b.LatencyMS.P50)
	}
	for _, f := range []string{"report.json", "deliveries.csv", "timeseries.csv", "bandwidth.csv", "per_node.csv", "latency_cdf.svg", "coverage.svg", "bandwidth.svg"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("output %s missing or empty", f)
		}
	}
}

func TestPartitionHealSmallVirtual(t *testing.T) {
	sc := small(t, "partition-heal", 12, 14*time.Second)
	sc.Partitions = []Partition{{At: Duration(3 * time.Second), Heal: Duration(9 * time.Second), Groups: 2}}
	var steps int
	var last, total time.Duration
	step := func(d, tot time.Duration, note string) { // the command's bar (cmd/parley simProgress)
		if d < last || note == "" {
			t.Errorf("step %v of %v after %v, note %q", d, tot, last, note)
		}
		steps, last, total = steps+1, d, tot
	}
	rep, err := Run(context.Background(), sc, RunOptions{T: t, Progress: testWriter{t}, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	if steps < 2 || total != 14*time.Second || last != total {
		t.Fatalf("progress: %d steps, last %v of %v (want the end of 14 s)", steps, last, total)
	}
	if rep.Completeness != 1 || rep.ConvergenceMS == nil {
		t.Fatalf("completeness %v, convergence %v, warnings %v", rep.Completeness, rep.ConvergenceMS, rep.Warnings)
	}
	t.Logf("convergence %.0f ms after heal, published %d", *rep.ConvergenceMS, rep.EventsPublished)
}

func TestAdversariesSmallVirtual(t *testing.T) {
	sc := small(t, "spam-flood", 10, 8*time.Second)
	sc.Adversaries = []Adversary{
		{Kind: "spam-flood", Count: 1, Degree: 3, Rate: 20, Start: Duration(time.Second), Stop: Duration(6 * time.Second)},
		{Kind: "forged-events", Count: 1, Degree: 3, Rate: 10, Start: Duration(time.Second), Stop: Duration(6 * time.Second)},
	}
	rep, err := Run(context.Background(), sc, RunOptions{T: t, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completeness != 1 || rep.Forged == nil || rep.Forged.Published == 0 || rep.Forged.AcceptedHonest != 0 || rep.Forged.RejectedGossip == 0 {
		t.Fatalf("completeness %v, forged %+v", rep.Completeness, rep.Forged)
	}
	if rep.Spam == nil || rep.Spam.Published == 0 {
		t.Fatalf("spam %+v", rep.Spam)
	}
}

func TestMisbehavingPeersSmallVirtual(t *testing.T) {
	sc := small(t, "misbehaving-peers", 10, 8*time.Second)
	sc.Adversaries = []Adversary{
		{Kind: "equivocation", Count: 1, Degree: 3, Rate: 2, Start: Duration(time.Second), Stop: Duration(6 * time.Second)},
		{Kind: "orphan-flood", Count: 1, Degree: 3, Rate: 50, Start: Duration(time.Second), Stop: Duration(6 * time.Second)},
	}
	rep, err := Run(context.Background(), sc, RunOptions{T: t, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completeness != 1 {
		t.Fatalf("completeness %v, warnings %v", rep.Completeness, rep.Warnings)
	}
	o, q := rep.Orphans, rep.Equivocation
	if o == nil || o.Published < 100 || o.AcceptedHonest != 0 || o.PendingAtEndMax == nil {
		t.Fatalf("orphans %+v", o)
	}
	if q == nil || q.Published == 0 || q.VisibleAtEndMax == nil || *q.VisibleAtEndMax != 0 {
		t.Fatalf("equivocation %+v", q)
	}
	t.Logf("orphans %d published, at most %d held at the end; %d forks, none visible", o.Published, *o.PendingAtEndMax, q.Published)
}

func TestReadersVirtual(t *testing.T) {
	for _, setup := range []string{SetupLive, SetupPreload} {
		t.Run(setup, func(t *testing.T) {
			sc := small(t, "gossip-latency", 15, 6*time.Second)
			sc.Room.Writers, sc.Room.Members, sc.Room.Setup = 3, 5, setup
			rep, err := Run(context.Background(), sc, RunOptions{T: t})
			if err != nil {
				t.Fatal(err)
			}
			if rep.RoomMembers != 5 || rep.Completeness != 1 || rep.EventsPublished == 0 {
				t.Fatalf("members %d, completeness %v, published %d", rep.RoomMembers, rep.Completeness, rep.EventsPublished)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// TestBannedSpamSmallVirtual (issue 15): a member banned at 1 s floods
// validly signed messages its node does not check; no honest node forwards
// any of them once it holds the ban, and honest delivery is complete.
func TestBannedSpamSmallVirtual(t *testing.T) {
	sc := small(t, "banned-spammer", 10, 8*time.Second)
	sc.Adversaries = []Adversary{{Kind: "banned-spam", Count: 1, Degree: 3, Rate: 20, Start: Duration(time.Second), Stop: Duration(6 * time.Second)}}
	rep, err := Run(context.Background(), sc, RunOptions{T: t, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	b := rep.BannedSpam
	if rep.Completeness != 1 || b == nil || b.Published < 50 || rep.BansApplied != 1 {
		t.Fatalf("completeness %v, bans %d, banned spam %+v", rep.Completeness, rep.BansApplied, b)
	}
	if b.SentBytesAfterBanSeen != 0 {
		t.Fatalf("honest nodes forwarded %d bytes of the banned member's events after they held the ban: %+v", b.SentBytesAfterBanSeen, b)
	}
	if b.RejectedGossip == 0 {
		t.Fatalf("no honest validator rejected the banned member's events: %+v", b)
	}
	t.Logf("banned spam: %+v", *b)
}

// TestRelaySybilsSmallVirtual (issue 15): Sybils that prove the room and
// take mesh slots but forward nothing (drop) or forward late (delay), and
// an eclipse attempt on node 1, leave honest delivery complete; junk CPU
// is measured.
func TestRelaySybilsSmallVirtual(t *testing.T) {
	sc := small(t, "sybil-flood", 10, 8*time.Second)
	target := 1
	sc.Adversaries = []Adversary{
		{Kind: "drop", Count: 4, Degree: 3},
		{Kind: "delay", Count: 4, Degree: 3, Delay: Duration(2 * time.Second)},
		{Kind: "drop", Count: 10, Target: &target},
		{Kind: "forged-events", Count: 2, Degree: 3, Rate: 5, Start: Duration(time.Second), Stop: Duration(6 * time.Second)},
	}
	rep, err := Run(context.Background(), sc, RunOptions{T: t, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completeness != 1 || rep.Adversaries != 20 {
		t.Fatalf("completeness %v, adversaries %d, warnings %v", rep.Completeness, rep.Adversaries, rep.Warnings)
	}
	if rep.JunkCPU == nil {
		t.Fatal("no junk CPU measured")
	}
	t.Logf("latency %+v, junk CPU %+v", rep.LatencyMS, *rep.JunkCPU)
}

// TestJoinFloodSmallVirtual (issue 15): fresh identities' joins without
// proof of work in a room that asks for it are taken in by no honest node,
// and honest delivery stays complete.
func TestJoinFloodSmallVirtual(t *testing.T) {
	sc := small(t, "join-flood", 10, 8*time.Second)
	sc.Adversaries = []Adversary{{Kind: "join-flood", Count: 2, Degree: 3, Rate: 20, Start: Duration(time.Second), Stop: Duration(6 * time.Second)}}
	rep, err := Run(context.Background(), sc, RunOptions{T: t, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	j := rep.JoinFlood
	if rep.Completeness != 1 || j == nil || j.Published < 100 || j.AcceptedHonest != 0 {
		t.Fatalf("completeness %v, join flood %+v", rep.Completeness, j)
	}
	t.Logf("join flood %+v, latency %+v", *j, rep.LatencyMS)
}

// TestPreloadBaseSameResults: replicas that share the preloaded prefix
// (frozen stores, logs and rooms, each replica an overlay) deliver exactly
// what replicas that hold their own copy deliver.
func TestPreloadBaseSameResults(t *testing.T) {
	run := func(noBase string) *Report {
		t.Setenv("PARLEY_SIM_NO_BASE", noBase)
		sc := small(t, "gossip-latency", 15, 6*time.Second)
		sc.Room.Writers, sc.Room.Setup = 3, SetupPreload
		rep, err := Run(context.Background(), sc, RunOptions{T: t})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	shared, own := run(""), run("1")
	if shared.Completeness != 1 || shared.EventsPublished == 0 || shared.Deliveries != own.Deliveries ||
		shared.EventsPublished != own.EventsPublished || shared.ScheduleSHA256 != own.ScheduleSHA256 {
		t.Fatalf("shared base: completeness %v, %d published, %d deliveries; own copies: %v, %d, %d",
			shared.Completeness, shared.EventsPublished, shared.Deliveries, own.Completeness, own.EventsPublished, own.Deliveries)
	}
}

// TestGossipsubHeartbeatSameDeliveries: a longer gossipsub heartbeat (a
// scenario's gossipsub.heartbeat) delivers the same messages as the
// default over a formed mesh, and a heartbeat out of range is refused.
func TestGossipsubHeartbeatSameDeliveries(t *testing.T) {
	sc := small(t, "gossip-latency", 15, 10*time.Second)
	sc.Room.Rate = 2
	def, err := Run(context.Background(), sc, RunOptions{T: t})
	if err != nil {
		t.Fatal(err)
	}
	sc.Gossipsub = &Gossipsub{Heartbeat: Duration(3 * time.Second)}
	slow, err := Run(context.Background(), sc, RunOptions{T: t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1 s: %d deliveries, %+v; 3 s: %d deliveries, %+v", def.Deliveries, def.LatencyMS, slow.Deliveries, slow.LatencyMS)
	if slow.Completeness != 1 || slow.Deliveries != def.Deliveries || slow.LatencyMS.P50 != def.LatencyMS.P50 {
		t.Errorf("heartbeat 3 s: completeness %v, %d deliveries, p50 %v; default: %d, p50 %v", slow.Completeness, slow.Deliveries, slow.LatencyMS.P50, def.Deliveries, def.LatencyMS.P50)
	}
	sc.Gossipsub.Heartbeat = Duration(-time.Second)
	if sc.Validate() == nil {
		t.Error("a negative heartbeat was accepted")
	}
}
