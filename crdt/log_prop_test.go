package crdt

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

var dagSeed = flag.Uint64("dag.seed", 0, "seed of TestLogDeliveryOrder (0 = random)")

// genDAG makes a random room: nAuthors devices writing n events, each on its
// own chain plus, most of the time, a few recent events of others, so that
// roughly a third of the events have concurrent siblings. About 1% of the
// events carry a wrong depth (rejected), and nobody builds on those.
func genDAG(t testing.TB, r *rand.Rand, nAuthors, n int) []*Event {
	t.Helper()
	ids := make([]*Identity, nAuthors)
	for i := range ids {
		ids[i] = scriptIdentity(t, fmt.Sprintf("prop-%d", i))
	}
	create, err := Sign(ids[0], Draft{Type: TypeCreate, TS: 1, Body: []byte("prop room")})
	if err != nil {
		t.Fatal(err)
	}
	evs := []*Event{create}
	valid := []*Event{create}
	self := make([]*Event, nAuthors)
	for len(evs) < n {
		w := r.IntN(nAuthors)
		set := map[EventID]*Event{}
		if self[w] != nil {
			set[self[w].ID] = self[w]
		}
		if self[w] == nil || r.Float64() < 0.3 {
			for range 1 + r.IntN(2) {
				k := min(len(valid), 8)
				p := valid[len(valid)-1-r.IntN(k)]
				set[p.ID] = p
			}
		}
		d := Draft{Room: create.ID, Type: "message", Auth: []EventID{create.ID}, Body: fmt.Appendf(nil, "m%d", len(evs))}
		for id, p := range set {
			d.Prev = append(d.Prev, id)
			d.Depth = max(d.Depth, p.Depth+1)
			d.TS = max(d.TS, p.TS+int64(r.IntN(3)))
		}
		if self[w] != nil {
			d.Self, d.Seq = self[w].ID, self[w].Seq+1
		}
		bad := r.IntN(100) == 0
		if bad {
			d.Depth += 1 + uint64(r.IntN(3))
		}
		ev, err := Sign(ids[w], d)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		if !bad {
			valid = append(valid, ev)
			self[w] = ev
		}
	}
	return evs
}

type logView struct {
	heads, order []EventID
	len          int
}

func viewOf(l *Log) logView { return logView{l.Heads(), l.Order(), l.Len()} }

func (v logView) equal(o logView) bool {
	return v.len == o.len && slices.Equal(v.heads, o.heads) && slices.Equal(v.order, o.order)
}

// dagRand returns the seed of -dag.seed (a random one when 0), logged, and
// a generator seeded with it.
func dagRand(t *testing.T) (uint64, *rand.Rand) {
	seed := *dagSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -dag.seed=%d)", seed, seed)
	return seed, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func TestLogDeliveryOrder(t *testing.T) {
	seed, r := dagRand(t)
	n := 3000
	if testing.Short() {
		n = 800
	}
	evs := genDAG(t, r, 6, n)
	merges := 0
	for _, e := range evs {
		if len(e.Prev) > 1 {
			merges++
		}
	}
	t.Logf("%d events, %.0f%% merges", len(evs), 100*float64(merges)/float64(len(evs)))

	ref := NewLog(evs[0].ID, LogConfig{})
	wantEq := checkFeed(t, seed, "topological", ref, [][]*Event{evs})
	want := viewOf(ref)
	if len(wantEq) == 0 {
		t.Fatalf("seed %d: no equivocation in the generated DAG", seed)
	}

	orders := map[string][][]*Event{}
	rev := slices.Clone(evs)
	slices.Reverse(rev)
	orders["reverse"] = [][]*Event{rev}
	orders["reverse one by one"] = chunks(rev, 1)
	for i := range 20 {
		sh := slices.Clone(evs)
		r.Shuffle(len(sh), func(a, b int) { sh[a], sh[b] = sh[b], sh[a] })
		size := []int{1, 7, 100, len(sh)}[i%4]
		orders[fmt.Sprintf("shuffle %d chunks of %d", i, size)] = chunks(sh, size)
	}
	// Nearly in order: local swaps, so few orphans at a time.
	near := slices.Clone(evs)
	for i := range near {
		j := min(len(near)-1, i+r.IntN(10))
		near[i], near[j] = near[j], near[i]
	}
	orders["nearly in order"] = chunks(near, 1)
	// Everything twice, the second time reversed.
	orders["twice"] = [][]*Event{evs, rev}

	for name, order := range orders {
		l := NewLog(evs[0].ID, LogConfig{})
		eq := checkFeed(t, seed, name, l, order)
		if !slices.Equal(eq, wantEq) {
			t.Fatalf("seed %d, order %q: %d forks, want %d", seed, name, len(eq), len(wantEq))
		}
		if got := viewOf(l); !got.equal(want) {
			t.Fatalf("seed %d, order %q: heads %d/%d, order %d/%d, len %d/%d differ from the topological feed",
				seed, name, len(got.heads), len(want.heads), len(got.order), len(want.order), got.len, want.len)
		}
	}
}

func chunks(evs []*Event, size int) [][]*Event {
	var out [][]*Event
	for len(evs) > 0 {
		k := min(size, len(evs))
		out = append(out, evs[:k])
		evs = evs[k:]
	}
	return out
}

// checkFeed feeds calls to l and checks the invariants of every Ready and of
// the end state, committing the batches to a MemStore and restoring a log
// from it. It returns the (device, seq) pairs with equivocation evidence,
// sorted (which pairs of events are reported depends on arrival order when
// three events share a seq; the set of forks does not).
func checkFeed(t *testing.T, seed uint64, name string, l *Log, calls [][]*Event) []string {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, order %q: %s", seed, name, fmt.Sprintf(format, args...))
	}
	store := NewMemStore()
	processed := map[EventID]bool{}
	var eqs []Equivocation
	total := 0
	for _, call := range calls {
		total += len(call)
		rd := l.Add(call...)
		acc := 0
		for i, s := range rd.Batch.Events {
			if processed[s.Event.ID] {
				fail("%s processed twice", s.Event.ID)
			}
			processed[s.Event.ID] = true
			if i > 0 {
				p := rd.Batch.Events[i-1].Event
				if cmpItem(Item{p.Depth, p.ID}, Item{s.Event.Depth, s.Event.ID}) >= 0 {
					fail("batch not in (depth, id) order")
				}
			}
			if s.Status == StatusAccepted {
				if rd.Accepted[acc] != s.Event {
					fail("Accepted does not mirror the batch")
				}
				acc++
			}
		}
		if acc != len(rd.Accepted) {
			fail("Accepted has %d events, batch %d accepted", len(rd.Accepted), acc)
		}
		if rd.Dropped > 0 || rd.Foreign > 0 {
			fail("unexpected dropped %d, foreign %d", rd.Dropped, rd.Foreign)
		}
		eqs = append(eqs, rd.Equivocations...)
		if err := store.Commit(rd.Batch); err != nil {
			fail("commit: %v", err)
		}
	}
	if l.Pending() != 0 || l.MissingCount() != 0 {
		fail("pending %d, missing %d after all events", l.Pending(), l.MissingCount())
	}
	if len(processed) != l.Len() {
		fail("%d processed, %d held", len(processed), l.Len())
	}
	heads, _ := store.Heads(l.Room())
	if !slices.Equal(heads, l.Heads()) {
		fail("store heads from the batches differ from the log's")
	}
	// Order is a topological order of the accepted events.
	pos := map[EventID]int{}
	for i, id := range l.Order() {
		pos[id] = i
	}
	for id, i := range pos {
		for _, p := range l.entries[id].prev {
			if j, ok := pos[p]; !ok || j >= i {
				fail("order puts %s before its parent %s", id, p)
			}
		}
	}
	if got := len(l.Since(nil)); got != l.Len() {
		fail("Since(nil) has %d of %d events", got, l.Len())
	}
	if s := l.Since(l.Heads()); len(s) != l.Len()-len(l.Order()) {
		fail("Since(heads) has %d events, want the %d rejected", len(s), l.Len()-len(l.Order()))
	}
	// A log restored from the store is the same.
	re := NewLog(l.Room(), LogConfig{})
	store.Scan(l.Room(), 0, func(s Stored) bool { re.Restore(s); return true })
	if !viewOf(re).equal(viewOf(l)) || re.MissingCount() != 0 {
		fail("restored log differs")
	}
	_ = total
	var forks []string
	for _, q := range eqs {
		forks = append(forks, fmt.Sprintf("%s/%d", q.Device, q.Seq))
	}
	slices.Sort(forks)
	return slices.Compact(forks)
}

func TestPrepareRespectsMaxPrev(t *testing.T) {
	a, b := scriptIdentity(t, "a"), scriptIdentity(t, "b")
	create, _ := Sign(a, Draft{Type: TypeCreate, Body: []byte("wide")})
	l := NewLog(create.ID, LogConfig{})
	l.Add(create)
	// 30 devices write concurrently on the create event: 30 heads.
	evs := []*Event{}
	for i := range 30 {
		id := scriptIdentity(t, fmt.Sprintf("w%d", i))
		d := Draft{Room: create.ID, Type: "message", Prev: []EventID{create.ID}, Depth: 1, TS: int64(i), Body: []byte{byte(i)}}
		ev, _ := Sign(id, d)
		evs = append(evs, ev)
	}
	l.Add(evs...)
	if len(l.Heads()) != 30 {
		t.Fatalf("%d heads", len(l.Heads()))
	}
	// b has a first event on the create event only.
	b0, _ := Sign(b, Draft{Room: create.ID, Type: "message", Prev: []EventID{create.ID}, Depth: 1, TS: 50, Body: []byte("b0")})
	l.Add(b0)
	d := l.Prepare(b.Device.Public(), 10, Draft{Type: "message", Auth: []EventID{create.ID}, Body: []byte("merge")})
	if len(d.Prev) != MaxPrev || !slices.Contains(d.Prev, b0.ID) || d.Seq != 1 || d.Self != b0.ID || d.Depth != 2 || d.TS != 50 {
		t.Fatalf("prepare: %d prev, self in prev %v, seq %d, depth %d, ts %d", len(d.Prev), slices.Contains(d.Prev, b0.ID), d.Seq, d.Depth, d.TS)
	}
	if !slices.IsSorted(d.Prev) {
		t.Fatal("prev not sorted")
	}
	ev, err := Sign(b, d)
	if err != nil {
		t.Fatal(err)
	}
	rd := l.Add(ev)
	if len(rd.Accepted) != 1 {
		t.Fatalf("the prepared event was not accepted: %+v", rd.Batch.Events)
	}
	if len(l.Heads()) != 31-MaxPrev+1 {
		t.Fatalf("%d heads after the merge, want %d", len(l.Heads()), 31-MaxPrev+1)
	}
	// Deterministic: the same log state gives the same draft.
	if d2 := l.Prepare(b.Device.Public(), 10, Draft{}); d2.Seq != 2 || d2.Self != ev.ID {
		t.Fatalf("second prepare: seq %d self %s", d2.Seq, d2.Self)
	}
}

// TestAddQueuedParents: an event whose references were queued earlier in
// the same Add (a sync page in (depth, id) order) is queued at once instead
// of waiting as an orphan (Log.Add, earlier), and that changes nothing but
// the orphan buffer's arrival counter: each page gives the same Ready and
// the same log as the page reversed, where every such event waits as an
// orphan for its parent. Some events claim a depth at or below a parent's
// (they are rejected), so that they wait as orphans either way.
func TestAddQueuedParents(t *testing.T) {
	seed, r := dagRand(t)
	evs := genDAG(t, r, 4, 1500)
	id := scriptIdentity(t, "prop-liar")
	for i := 0; i < 40; i++ { // events that lie about their depth: at or below their parent's
		p := evs[1+r.IntN(len(evs)-1)]
		ev, err := Sign(id, Draft{Room: evs[0].ID, Type: "message", Prev: []EventID{p.ID}, Auth: []EventID{evs[0].ID},
			Depth: p.Depth - uint64(r.IntN(2)), TS: p.TS, Body: fmt.Appendf(nil, "liar %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	page := slices.Clone(evs)
	slices.SortFunc(page, func(a, b *Event) int { return cmpItem(Item{a.Depth, a.ID}, Item{b.Depth, b.ID}) })
	room := evs[0].ID
	a, b := NewLog(room, LogConfig{}), NewLog(room, LogConfig{})
	for i, call := range chunks(page, 1+r.IntN(200)) {
		rev := slices.Clone(call)
		slices.Reverse(rev)
		ra, rb := a.Add(call...), b.Add(rev...)
		if !reflect.DeepEqual(ra, rb) {
			t.Fatalf("seed %d page %d: Ready differs from the reversed page:\n%+v\n%+v", seed, i, ra, rb)
		}
		sa, sb := stateOfLog(a), stateOfLog(b)
		sa.Arrivals, sb.Arrivals, sa.Fifo, sb.Fifo = 0, 0, nil, nil
		for id, o := range sa.Orphans {
			sa.Orphans[id] = [2]uint64{o[0], 0}
		}
		for id, o := range sb.Orphans {
			sb.Orphans[id] = [2]uint64{o[0], 0}
		}
		if diff := diffState(sa, sb); diff != "" {
			t.Fatalf("seed %d page %d: the log differs from the reversed page's: %s", seed, i, diff)
		}
	}
	if a.Len() != b.Len() || a.Pending() != b.Pending() {
		t.Fatalf("seed %d: %d held, %d pending; reversed %d, %d", seed, a.Len(), a.Pending(), b.Len(), b.Pending())
	}
	if a.arrivals >= b.arrivals {
		t.Fatalf("seed %d: %d orphans arrived in order, %d reversed: the pages in order should queue most at once", seed, a.arrivals, b.arrivals)
	}
	t.Logf("%d events held, %d pending; %d orphans arrived in order, %d reversed", a.Len(), a.Pending(), a.arrivals, b.arrivals)
}
