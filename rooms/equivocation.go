package rooms

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Equivocation in the resolved state (rule R6 seen by R4).
//
// A fork group is the set of causally valid events of one device with one
// seq, once it has two members. A state knows the forks whose groups have
// two members in its past: S(E) knows the forks in past(E), the state at
// the heads knows every fork in the room. For a set of known forks K (per
// device, the lowest forked seq f_d), the void set Z(K) is the least set
// holding
//
//   - every accepted event of a device d of K with seq >= f_d, and
//   - every accepted event y with an auth reference a in Z(K) that y needs:
//     y's auth references do not allow y once a is replaced by the latest
//     event of a's key history (a's pred chain) outside Z(K), or by nothing.
//
// A state that knows K excludes Z(K): before resolution, every parent
// snapshot value in Z(K) is replaced by the latest event of its key history
// outside Z(K) (or removed), and the iterative auth checks of resolve skip
// events of Z(K). Each event's membership in Z(K) depends only on its past,
// so S(E) stays a pure function of past(E) and the heads' state a pure
// function of the event set. The overlay hides Z(G), G being all forks, so
// the timeline and the state agree.
//
// Why this does not blow up: an event that knows the fork was judged (R3)
// against a state that already excludes Z, and honest clients take auth
// references from that state, so it never references a void event; and an
// event that does not know the fork is pulled into Z only if it needed the
// void event's authority (a message that merely references the forker's
// power event still passes with the previous power event).

// forkView is what a state knows of forks: the forked devices with their
// lowest forked seq, and the void set Z(K), kept up to date as events arrive.
type forkView struct {
	id     uint64
	fork   map[crdt.DeviceID]uint64
	z      map[int32]bool // Z(K)
	void   map[int32]bool // the forked devices' own events in Z(K)
	zState []int32        // state events in Z(K), in application order
}

func (v *forkView) has(x int32) bool { return v != nil && v.z[x] }

// forkKey names a fork point: a device's events with one seq and one self
// event. Two events with one (device, seq) but different self events imply
// a fork point at a lower seq in the past of both (their self chains meet),
// so only fork points decide which forks a state knows, and what it knows
// per device (the lowest forked seq) is the same.
type forkKey struct {
	dev  crdt.DeviceID
	seq  uint64
	self crdt.EventID
}

type cleanKey struct {
	s *snap
	v *forkView
}

var noSet = &rmSet{}

// forkState is the Room's bookkeeping of forks and views.
type forkState struct {
	groups   map[forkKey][]int32 // fork groups (two members or more)
	member   map[int32]forkKey   // fork group of each member
	others   map[forkKey]int32   // first event of a (device, seq, self) that is not the first of its (device, seq)
	views    map[string]*forkView
	viewList []*forkView
	memo     map[*rmSet]*forkView // view of a reach set
	clean    map[cleanKey]*snap
	all      *forkView // view of every fork (nil: none)
	allOK    bool
	judged   int32 // events [0, judged) are fully judged
}

func (f *forkState) init() {
	f.groups = map[forkKey][]int32{}
	f.member = map[int32]forkKey{}
	f.others = map[forkKey]int32{}
	f.views = map[string]*forkView{}
	f.memo = map[*rmSet]*forkView{}
	f.clean = map[cleanKey]*snap{}
	f.judged = 1
}

// registerSeq records a causally valid event's (device, seq) and reports
// whether its device now has a lower forked seq than before. When a fork
// group appears, the reach sets of the events after its first member are
// recomputed (their state was judged already and does not change: the new
// member is not in their past).
func (r *Room) registerSeq(x int32) (newFork bool) {
	e := r.ev(x).ev
	o := &r.ov
	d := o.devToChange(e.Device)
	if d == nil {
		d = &devInfo{fork: math.MaxUint64}
		o.devs[e.Device] = d
	}
	d.events = append(d.events, x)
	first, ok := d.firstAt(e.Seq)
	if !ok {
		d.setFirst(e.Seq, x)
		return false
	}
	f := &r.fk
	k := forkKey{e.Device, e.Seq, e.Self}
	if r.ev(first).ev.Self != e.Self {
		// A fork point lower down is in the past of both events.
		if o, ok := f.others[k]; !ok {
			f.others[k] = x
			return false
		} else if _, ok := f.groups[k]; !ok {
			first = o
		}
	}
	if g := f.groups[k]; g == nil {
		f.groups[k] = []int32{first, x}
		f.member[first] = k
		f.member[x] = k
		r.recomputeReach(first, x)
	} else {
		f.groups[k] = append(g, x)
		f.member[x] = k
	}
	if e.Seq < d.fork {
		d.fork = e.Seq
		f.allOK = false
		return true
	}
	return false
}

// pastReach is the set of fork-group members in the past of prev.
func (r *Room) pastReach(prev []int32) *rmSet {
	s := noSet
	for _, p := range prev {
		if pr := r.ev(p).reach; pr != nil {
			s = union(s, pr)
		}
	}
	return s
}

func (r *Room) reachOf(x int32, past *rmSet) *rmSet {
	if _, ok := r.fk.member[x]; ok {
		return union(past, &rmSet{[]int32{x}})
	}
	return past
}

func (r *Room) recomputeReach(from, to int32) {
	for y := from; y < to; y++ {
		ei := r.ev(y)
		if !ei.causalOK {
			continue
		}
		reach := r.reachOf(y, r.pastReach(ei.prev))
		if y < r.nb && ei.reach != nil && slices.Equal(reach.xs, ei.reach.xs) {
			continue // a base event keeps its equal set: no copy
		}
		r.evMut(y).reach = reach
	}
}

// viewOf returns the view of the forks whose groups have two members in
// set (nil: none).
func (r *Room) viewOf(set *rmSet) *forkView {
	if len(set.xs) < 2 {
		return nil
	}
	f := &r.fk
	if v, ok := f.memo[set]; ok {
		return v
	}
	count := map[forkKey]int{}
	for _, y := range set.xs {
		count[f.member[y]]++
	}
	fork := map[crdt.DeviceID]uint64{}
	for k, n := range count {
		if n < 2 {
			continue
		}
		if s, ok := fork[k.dev]; !ok || k.seq < s {
			fork[k.dev] = k.seq
		}
	}
	v := r.internView(fork)
	f.memo[set] = v
	return v
}

// allView returns the view of every fork in the room.
func (r *Room) allView() *forkView {
	f := &r.fk
	if !f.allOK {
		fork := map[crdt.DeviceID]uint64{}
		r.ov.eachDev(func(dv crdt.DeviceID, d *devInfo) {
			if d.fork != math.MaxUint64 {
				fork[dv] = d.fork
			}
		})
		f.all, f.allOK = r.internView(fork), true
	}
	return f.all
}

func (r *Room) internView(fork map[crdt.DeviceID]uint64) *forkView {
	if len(fork) == 0 {
		return nil
	}
	devs := make([]crdt.DeviceID, 0, len(fork))
	for d := range fork {
		devs = append(devs, d)
	}
	slices.SortFunc(devs, func(a, b crdt.DeviceID) int { return slices.Compare(a[:], b[:]) })
	var kb []byte
	for _, d := range devs {
		kb = append(kb, d[:]...)
		kb = binary.BigEndian.AppendUint64(kb, fork[d])
	}
	f := &r.fk
	if v, ok := f.views[string(kb)]; ok {
		return v
	}
	v := &forkView{id: uint64(len(f.viewList)) + 1, fork: fork, z: map[int32]bool{}, void: map[int32]bool{}}
	// Application order is causal: each event's past is decided before it.
	for y := int32(0); y < f.judged; y++ {
		r.viewAdd(v, y)
	}
	f.views[string(kb)] = v
	f.viewList = append(f.viewList, v)
	return v
}

// viewAdd decides whether a judged event belongs to v's void set.
func (r *Room) viewAdd(v *forkView, y int32) {
	ei := r.ev(y)
	if !ei.accepted {
		return
	}
	in := false
	if s, ok := v.fork[ei.ev.Device]; ok && ei.ev.Seq >= s {
		in = true
		v.void[y] = true
	} else {
		for _, a := range ei.auth {
			if v.z[a] && r.needsWithout(y, a, v.z) {
				in = true
				break
			}
		}
	}
	if in {
		v.z[y] = true
		if ei.key != "" {
			v.zState = append(v.zState, y)
		}
	}
}

// viewsAdd brings every view up to date with the event just judged.
func (r *Room) viewsAdd(x int32) {
	for _, v := range r.fk.viewList {
		r.viewAdd(v, x)
	}
	r.fk.judged = x + 1
}

// fallback is the latest event of z's key history outside v's void set.
func (v *forkView) fallback(r *Room, z int32) int32 {
	for z >= 0 && v.z[z] {
		z = r.ev(z).pred
	}
	return z
}

// cleanAfter is S'(p) as seen by a state that knows v's forks: the values
// in v's void set are replaced by their fallbacks. When S(p) knows the same
// forks it holds no such value, and only p itself needs a look.
func (r *Room) cleanAfter(p int32, v *forkView) *snap {
	ei := r.ev(p)
	if v == nil || len(v.zState) == 0 {
		return ei.after
	}
	if ei.view == v {
		if v.z[p] {
			return ei.before // p's fallback is its pred, the value in S(p)
		}
		return ei.after
	}
	return r.cleanSnap(ei.after, v)
}

// cleanSnap replaces the values of s in v's void set by their fallbacks.
func (r *Room) cleanSnap(s *snap, v *forkView) *snap {
	if v == nil || len(v.zState) == 0 {
		return s
	}
	f := &r.fk
	ck := cleanKey{s, v}
	if c, ok := f.clean[ck]; ok {
		return c
	}
	out := s
	for _, z := range v.zState {
		k := r.ev(z).key
		if out.lookup(k) != z {
			continue
		}
		if fb := v.fallback(r, z); fb >= 0 {
			out = out.set(k, fb)
		} else {
			out = out.del(k)
		}
	}
	if len(f.clean) > 1<<16 {
		clear(f.clean)
	}
	f.clean[ck] = out
	return out
}
