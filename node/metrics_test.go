package node

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// TestMetricsCount: on two replicas on mocknet, each with its own
// registry, messages move the ingested, gossip and sync counters, and each
// kind of bad event offered by a peer is counted under its reason: a wrong
// depth (invalid), a non-member's message (unauthorized), and events over
// a peer's orphan budget.
func TestMetricsCount(t *testing.T) {
	ms := []*Metrics{NewMetrics(), NewMetrics()}
	traces := []*lockedBuffer{{}, {}}
	tn := newTracedTestNet(t, 2, func(i int) p2p.Tracer { return ms[i] })
	for i, m := range ms {
		m.path.traceTo(traces[i], tn.reps[i].Host().ID())
	}
	tn.link(0, 1)
	room := setupRoom(t, tn)
	send(t, tn, 0, room, 5, "hello")
	tn.converged(room, 7, convergeWithin, 0, 1)
	eventually(t, convergeWithin, "gossip delivery counted", func() (bool, string) {
		got := counterValue(ms[1].delivered.WithLabelValues("events"))
		if got == 0 {
			send(t, tn, 0, room, 1, "more") // the mesh may form after the first sends
		}
		return got > 0, fmt.Sprintf("delivered %v", got)
	})
	// The delivered gossip was timed through both stages of its path.
	eventually(t, convergeWithin, "gossip path timed", func() (bool, string) {
		v, a := histCount(ms[1].path.hist, PathValidate), histCount(ms[1].path.hist, PathApply)
		return v > 0 && a > 0, fmt.Sprintf("validate %d, apply %d", v, a)
	})
	// The gossip path traces: a node's own messages (from itself, taken
	// when delivered) and those taken from the other, each taken after
	// the other sent it.
	self := func(i int) string { return tn.reps[i].Host().ID().String() }
	own := []map[string]int64{{}, {}}
	applied := []int{0, 0}
	lines := func(i int) [][]string {
		var out [][]string
		for _, l := range strings.Split(strings.TrimSpace(traces[i].String()), "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && f[1] == appliedMark {
				applied[i]++
				continue
			}
			if len(f) != 4 || f[1] != self(0) && f[1] != self(1) {
				t.Fatalf("node %d's trace line %q", i, l)
			}
			if f[1] == self(i) {
				if f[2] != f[3] {
					t.Errorf("node %d's own line %q: taken is not delivered", i, l)
				}
				own[i][f[0]], _ = strconv.ParseInt(f[3], 10, 64)
			}
			out = append(out, f)
		}
		return out
	}
	all := [][][]string{lines(0), lines(1)}
	var hops int
	for i, ls := range all {
		for _, f := range ls {
			if f[1] == self(i) {
				continue
			}
			in, _ := strconv.ParseInt(f[2], 10, 64)
			valid, _ := strconv.ParseInt(f[3], 10, 64)
			if f[3] == "-" { // a duplicate
				valid = in
			}
			if sent, ok := own[1-i][f[0]]; !ok || in < sent || valid < in {
				t.Errorf("node %d's trace line %q: not a hop from node %d", i, f, 1-i)
			}
			hops++
		}
	}
	if len(own[0]) == 0 || hops == 0 || applied[1] == 0 {
		t.Errorf("traced %d own messages of node 0, %d hops, %d events node 1 applied", len(own[0]), hops, applied[1])
	}
	ms[0].path.close()
	if !traces[0].closed {
		t.Error("the trace was not closed")
	}
	for i, m := range ms { // only events from peers, not a node's own
		if a, peer := histCount(m.path.hist, PathApply), counterValue(m.ingested.WithLabelValues("peer")); float64(a) > peer {
			t.Errorf("node %d timed %d applies, but took %v events from peers", i, a, peer)
		}
	}
	if got := counterValue(ms[0].ingested.WithLabelValues("local")); got < 6 {
		t.Errorf("node 0 local ingested %v, want 6 or more (create and messages)", got)
	}
	if got := counterValue(ms[1].ingested.WithLabelValues("peer")); got < 6 {
		t.Errorf("node 1 peer ingested %v", got)
	}
	if s := counterValue(ms[0].syncs.WithLabelValues("server")) + counterValue(ms[1].syncs.WithLabelValues("client")); s == 0 {
		t.Errorf("no sync session counted")
	}

	rid, _ := crdt.ParseID(room)
	rejected := func(reason string) float64 { return counterValue(ms[0].rejected.WithLabelValues(reason)) }
	for _, r := range []string{RejectInvalid, RejectUnauthorized, RejectOrphanBudget} {
		if rejected(r) != 0 {
			t.Fatalf("%s = %v before any bad event", r, rejected(r))
		}
	}
	heads, _, _ := tn.reps[0].Engine.Heads(tn.ctx, rid)
	top, _ := tn.reps[0].Engine.MaxDepth(tn.ctx, rid)
	const peerX = "peer-x"
	// Causally invalid: parents held, depth wrong.
	bad := forge(t, tn.ids[1], rid, heads, []crdt.EventID{rid}, top+5, "wrong depth")
	if err := tn.reps[0].Engine.Ingest(tn.ctx, peerX, []*crdt.Event{bad}); err != nil {
		t.Fatal(err)
	}
	if rejected(RejectInvalid) != 1 {
		t.Errorf("invalid = %v, want 1", rejected(RejectInvalid))
	}
	// Unauthorized: a stranger's message.
	master, _ := crdt.GenerateKey(rand.Reader)
	stranger, _ := crdt.NewIdentity(master, rand.Reader)
	intruder, err := crdt.Sign(stranger, crdt.Draft{Room: rid, Type: rooms.TypeMessage, Prev: heads, Auth: []crdt.EventID{rid}, Depth: top + 1,
		TS: time.Now().UnixMilli() + 60_000, Body: rooms.Encode(rooms.MessageBody{Text: "not a member"})})
	if err != nil {
		t.Fatal(err)
	}
	if err := tn.reps[0].Engine.Ingest(tn.ctx, peerX, []*crdt.Event{intruder}); err != nil {
		t.Fatal(err)
	}
	if rejected(RejectUnauthorized) != 1 {
		t.Errorf("unauthorized = %v, want 1", rejected(RejectUnauthorized))
	}
	// Orphans over one peer's budget.
	var flood []*crdt.Event
	for i := range maxPeerOrphans + 20 {
		fake := crdt.IDOf([]byte(fmt.Sprint("missing ", i)))
		flood = append(flood, forge(t, tn.ids[1], rid, []crdt.EventID{fake}, []crdt.EventID{rid}, 7, fmt.Sprint("orphan ", i)))
	}
	if err := tn.reps[0].Engine.Ingest(tn.ctx, peerX, flood); err != nil {
		t.Fatal(err)
	}
	if err := tn.reps[0].Engine.Ingest(tn.ctx, peerX, flood[maxPeerOrphans:]); err != nil {
		t.Fatal(err)
	}
	if got := rejected(RejectOrphanBudget); got != 20 {
		t.Errorf("orphan_budget = %v, want 20", got)
	}
	if got := rejected(RejectInvalid); got != 1 {
		t.Errorf("invalid = %v after the flood, want still 1", got)
	}

	// The exposition: the registry is the node's own, with the standard
	// collectors; API latency is observed per known method only.
	ms[0].ObserveAPI("send", 1000)
	ms[0].ObserveAPI("no/such/method\n", 1000)
	rec := httptest.NewRecorder()
	ms[0].Handler().ServeHTTP(rec, httptest.NewRequest("GET", api.MetricsPath, nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`parley_events_rejected_total{reason="orphan_budget"} 20`, "go_goroutines", "process_cpu_seconds_total",
		`parley_api_request_duration_seconds_count{method="send"} 1`, `parley_gossip_path_seconds_bucket{stage="apply"`, `parley_api_request_duration_seconds_count{method="other"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// lockedBuffer is a gossip path trace in memory.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	closed bool
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// histCount reads how many observations a histogram's stage holds.
func histCount(h *prometheus.HistogramVec, stage string) uint64 {
	var m dto.Metric
	if err := h.WithLabelValues(stage).(prometheus.Histogram).Write(&m); err != nil {
		panic(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
