package rooms

import (
	"cmp"
	"maps"
	"math"
	"slices"

	"github.com/parley-p2p/parley/crdt"
)

// Strong removal (rule R5) and equivocation (rule R6): a deterministic
// overlay over the whole event set that hides accepted events.
//
// Steps, in order (the first step that hides an event gives its reason):
//
//	step 0   R6: the void set Z(G) of all the room's forks (equivocation.go):
//	         a device that signed two events with one seq has forked at the
//	         lowest such seq f; its events with seq >= f are hidden
//	         ("equivocation"), and so are the events that needed one of them
//	         ("depends on an equivocating device's event").
//	step i   the i-th removal in removal order, if it is not hidden by an
//	         earlier step: a ban or kick of U hides every event by U that is
//	         concurrent with it (neither in its past nor after it); a
//	         demotion of U to level b hides U's concurrent events that needed
//	         a level above b; a removal of device D (encrypted rooms) hides
//	         every event by D outside its past, concurrent or after it (a
//	         removed device is never re-added), and no other device's.
//	then     join work (work.go): each room.limits event asking for work,
//	         in (depth, ID) order, if not hidden by an earlier step, hides
//	         strangers' joins and knocks concurrent with it that carry less
//	         work than it asks ("join without the proof of work asked
//	         concurrently").
//	last     encrypted rooms (docs/design.md §5.3 ii): a removal that hides
//	         an add (invite, join, device announcement), directly or
//	         transitively, and is not a key cut already counts as one for
//	         the events with both in their past: a content event or key
//	         forward among them whose epoch's rotation does not descend from
//	         the removal is hidden ("epoch predates the removal of an
//	         invalidated add"). No event depends on those, so nothing
//	         follows.
//
// After each removal step, events whose auth references include an event it
// hid, and which their auth references no longer allow once that event is
// replaced by the one it replaced, are hidden too, transitively, unless the
// removal is in their past (then they were judged against a state that
// already resolved it); prev references do not count. Step 0 needs no such
// exception: the resolved state excludes the same void set (states that know
// a fork), so an event that knows the fork never takes a void event as an
// auth reference, and R6 cannot spread to the rest of the room through the
// forker's power event. Removal order is
// (sender level at the removal desc, depth asc, ID asc). The creator can be
// neither removed nor demoted, so it is never hidden by R5.
//
// Recomputing the overlay from scratch costs O(removals' targets' events);
// it runs only when an accepted removal or a new fork arrives. Other events
// are judged incrementally against the effective removals.

// removalTarget is one user a removal acts on, and the level it leaves them
// at (math.MinInt64 for a ban or kick). A device removal acts on one device
// of the user only (dev set, level math.MinInt64).
type removalTarget struct {
	user  crdt.UserID
	level int64
	kind  string // "banned", "kicked", "demoted", "device removed"
	dev   *crdt.DeviceID
}

// covers reports whether a removal acting on dev (nil: every device of its
// target user) takes in an event by device d.
func covers(dev *crdt.DeviceID, d crdt.DeviceID) bool { return dev == nil || *dev == d }

const kindDeviceRemoved = "device removed"

func (r *Room) removalTargets(e *crdt.Event, p *parsed, before *snap) []removalTarget {
	switch e.Type {
	case TypeDevice:
		// Accepted only in an encrypted room, by a sibling of the device
		// (judgeKeys); a device removal is never undone (a removed device
		// cannot announce itself again), so no re-add exempts anything.
		if p.device != nil && p.device.Removed {
			d, err := crdt.ParseKey(*e.StateKey)
			if err != nil {
				return nil
			}
			dev := crdt.DeviceID(d)
			return []removalTarget{{e.User, math.MinInt64, kindDeviceRemoved, &dev}}
		}
	case TypeMember:
		if p.target == e.User {
			return nil
		}
		switch p.membership {
		case Ban:
			return []removalTarget{{p.target, math.MinInt64, "banned", nil}}
		case Leave:
			if v := before.lookup(r.userKey(p.target)); v >= 0 && r.ev(v).body.membership == Ban {
				return nil // unban
			}
			return []removalTarget{{p.target, math.MinInt64, "kicked", nil}}
		}
	case TypePower:
		old := &PowerLevels{}
		if v := before.lookup(kPower); v >= 0 {
			old = r.ev(v).body.levels
		}
		users := map[string]bool{}
		for u := range old.Users {
			users[u] = true
		}
		for u := range p.levels.Users {
			users[u] = true
		}
		var out []removalTarget
		for _, us := range sortedKeys(users) {
			u, _ := crdt.ParseKey(us)
			if u == e.User || u == r.create.User {
				continue
			}
			if n := p.levels.UserLevel(u); n < old.UserLevel(u) {
				out = append(out, removalTarget{u, n, "demoted", nil})
			}
		}
		return out
	}
	return nil
}

// rmSet is an immutable sorted set of removal event indexes, shared between
// events whose past holds the same removals.
type rmSet struct{ xs []int32 }

func (s *rmSet) has(x int32) bool {
	_, ok := slices.BinarySearch(s.xs, x)
	return ok
}

func union(a, b *rmSet) *rmSet {
	if a == b || len(b.xs) == 0 {
		return a
	}
	if len(a.xs) == 0 {
		return b
	}
	out := make([]int32, 0, len(a.xs)+len(b.xs))
	i, j := 0, 0
	for i < len(a.xs) && j < len(b.xs) {
		switch {
		case a.xs[i] < b.xs[j]:
			out = append(out, a.xs[i])
			i++
		case a.xs[i] > b.xs[j]:
			out = append(out, b.xs[j])
			j++
		default:
			out = append(out, a.xs[i])
			i++
			j++
		}
	}
	out = append(out, a.xs[i:]...)
	out = append(out, b.xs[j:]...)
	if len(out) == len(a.xs) {
		return a
	}
	if len(out) == len(b.xs) {
		return b
	}
	return &rmSet{out}
}

// cause is why the overlay hides an event; lower (step, transitive) wins.
type cause struct {
	step       int
	transitive bool
	reason     string
	rm         int32 // the removal of the step (-1 for step 0)
}

func (c cause) less(d cause) bool {
	if c.step != d.step {
		return c.step < d.step
	}
	return !c.transitive && d.transitive
}

type effRemoval struct {
	step  int
	x     int32
	level int64
	kind  string
	dev   *crdt.DeviceID // a device removal: only this device's events
}

type devInfo struct {
	bySeq  []int32          // first event seen per seq, by seq (-1: none)
	far    map[uint64]int32 // first events of seqs beyond bySeq's end (nil until one)
	events []int32          // causally valid events of the device
	fork   uint64           // lowest forked seq; math.MaxUint64 if none
}

// A device's seqs are dense from 0 (each event's self parent has the seq
// before it), so the first event per seq is a slice: a map per device was
// a tenth of a large room's memory, most devices having one event.
const farSeq = 1 << 16

// firstAt returns the first event seen with seq.
func (d *devInfo) firstAt(seq uint64) (int32, bool) {
	if seq < uint64(len(d.bySeq)) {
		x := d.bySeq[seq]
		return x, x >= 0
	}
	x, ok := d.far[seq]
	return x, ok
}

// setFirst records x as the first event seen with seq.
func (d *devInfo) setFirst(seq uint64, x int32) {
	if seq >= uint64(len(d.bySeq)) && seq < uint64(len(d.bySeq))+farSeq {
		for s := uint64(len(d.bySeq)); s < seq; s++ {
			y, ok := d.far[s]
			if !ok {
				y = -1
			}
			delete(d.far, s)
			d.bySeq = append(d.bySeq, y)
		}
		d.bySeq = append(d.bySeq, x)
		return
	}
	if seq < uint64(len(d.bySeq)) {
		d.bySeq[seq] = x
		return
	}
	if d.far == nil {
		d.far = map[uint64]int32{}
	}
	d.far[seq] = x
}

// invalidAdd is an add (join, invite, device announcement) of an encrypted
// room that strong removal hides, and the removal that hides it, directly
// or through the add's auth references. When that removal is not a key
// cut already, it counts as one (docs/design.md §5.3 ii): see epochCut.
type invalidAdd struct{ add, rm int32 }

type overlay struct {
	invalid  []invalidAdd
	sealed   []int32 // accepted events that use an epoch: content and key forwards
	cause    map[int32]cause
	authKids map[int32][]int32
	byUser   map[crdt.UserID][]int32 // accepted events
	devs     map[crdt.DeviceID]*devInfo
	removals []int32                      // accepted removals
	eff      map[crdt.UserID][]effRemoval // effective removals by target, in step order

	// Join work (work.go): accepted room.limits events asking for work,
	// strangers' joins and knocks, and the work rules not hidden, in step
	// order (level: the join_work asked).
	workRules, joins []int32
	effWork          []effRemoval

	base *overlay // the frozen base room's (base.go); nil: none
}

func (o *overlay) init() {
	o.cause = map[int32]cause{}
	o.authKids = map[int32][]int32{}
	o.byUser = map[crdt.UserID][]int32{}
	o.devs = map[crdt.DeviceID]*devInfo{}
	o.eff = map[crdt.UserID][]effRemoval{}
}

func (o *overlay) hidden(i int32) bool { _, ok := o.cause[i]; return ok }

const reasonEquivocation = "equivocation"

// add registers a causally valid event and returns the timeline change;
// newFork says whether the event revealed a fork (registerSeq).
func (o *overlay) add(r *Room, x int32, newFork bool) Delta {
	ei := r.ev(x)
	e := ei.ev
	// removals in the past
	ei.rmIncl = &rmSet{}
	for _, p := range ei.prev {
		ei.rmIncl = union(ei.rmIncl, r.ev(p).rmIncl)
	}
	if len(ei.targets) > 0 || ei.workReq > 0 {
		ei.rmIncl = union(ei.rmIncl, &rmSet{[]int32{x}})
	}
	if !ei.accepted {
		return Delta{}
	}
	o.byUser[e.User] = append(o.userEvents(e.User), x)
	if _, ok := r.epochUsed(x); ok {
		o.sealed = append(o.sealed, x)
	}
	for _, a := range ei.auth {
		if a != 0 { // the create event is never hidden
			o.authKids[a] = append(o.kidsOf(a), x)
		}
	}
	if ei.work >= 0 {
		o.joins = append(o.joins, x)
	}
	var delta Delta
	if newFork || len(ei.targets) > 0 || ei.workReq > 0 {
		if len(ei.targets) > 0 {
			o.removals = append(o.removals, x)
		}
		if ei.workReq > 0 {
			o.workRules = append(o.workRules, x)
		}
		delta = o.recompute(r, x)
	} else {
		if c, ok := o.judge(r, x); ok {
			o.cause[x] = c
			o.noteInvalidAdd(r, x, c)
		} else {
			delta.Shown = []crdt.EventID{e.ID}
		}
	}
	if e.Type == TypeRedact || len(delta.Shown)+len(delta.Hidden) > 0 {
		r.updateRedactions(&delta)
	}
	return delta
}

// judge decides a new event that is neither a removal nor a new fork.
func (o *overlay) judge(r *Room, x int32) (cause, bool) {
	ei := r.ev(x)
	var best cause
	found := false
	take := func(c cause) {
		if !found || c.less(best) {
			best, found = c, true
		}
	}
	if c, ok := forkCause(r.allView(), x); ok {
		take(c)
	}
	for _, rm := range o.eff[ei.ev.User] {
		if found && !(cause{step: rm.step}).less(best) {
			break
		}
		switch {
		case !covers(rm.dev, ei.ev.Device) || ei.required <= rm.level:
		case rm.dev != nil:
			// x is applied after the removal, so it is not in its past.
			take(cause{rm.step, false, deviceReason(ei.rmIncl.has(rm.x)), rm.x})
		case !ei.rmIncl.has(rm.x):
			take(cause{rm.step, false, "sender " + rm.kind + " concurrently", rm.x})
		}
	}
	for _, w := range o.effWork {
		if found && !(cause{step: w.step}).less(best) {
			break
		}
		if r.workHides(w.x, x) {
			take(cause{w.step, false, reasonJoinWork, w.x})
		}
	}
	for _, a := range ei.auth {
		if c, ok := o.cause[a]; ok && c.rm >= 0 && !ei.rmIncl.has(c.rm) && r.needs(x, a) {
			take(cause{c.step, true, reasonDepends, c.rm})
		}
	}
	if !found {
		if c, ok := o.epochCut(r, x); ok {
			take(c)
		}
	}
	return best, found
}

// stepEpochCut is the overlay step of epochCut: after every removal, so a
// removal's own cause always wins.
const stepEpochCut = math.MaxInt

const reasonEpochCut = "epoch predates the removal of an invalidated add"

// isAdd reports whether x is an add of an encrypted room: a join, an
// invite or a device announcement (what gives a user or device keys).
func (r *Room) isAdd(x int32) bool {
	ei := r.ev(x)
	if !r.cbody.E2EE || ei.body == nil {
		return false
	}
	switch p := ei.body; ei.ev.Type {
	case TypeMember:
		return p.membership == Invite || p.membership == Join && p.target == ei.ev.User
	case TypeDevice:
		return p.device != nil && !p.device.Removed
	}
	return false
}

// noteInvalidAdd records x as an invalidated add when c, the cause that
// hides it, is a removal that is not a key cut already.
func (o *overlay) noteInvalidAdd(r *Room, x int32, c cause) {
	if c.rm >= 0 && c.step != stepEpochCut && !r.ev(c.rm).cuts.has(c.rm) && r.isAdd(x) {
		o.invalid = append(o.invalid, invalidAdd{x, c.rm})
	}
}

// epochCut applies docs/design.md §5.3 (ii) to the removals that count
// as cuts only because they invalidate an add: x, an event that uses an
// epoch, is hidden when its past holds such a removal R together with the
// add it invalidates, and no rotation of x's epoch in x's past descends
// from R. (Removals that are key cuts already are checked when x is
// judged; checkEpochUse.) Whether an add is invalidated depends on the
// whole event set, so this is an overlay step, not an auth rule.
func (o *overlay) epochCut(r *Room, x int32) (cause, bool) {
	if len(o.invalid) == 0 {
		return cause{}, false
	}
	id, ok := r.epochUsed(x)
	if !ok {
		return cause{}, false
	}
	xi := r.ev(x)
	var rots []int32 // rotations of the epoch in x's past
	found := false
	for _, p := range o.invalid {
		if !xi.rmIncl.has(p.rm) {
			continue
		}
		if !found {
			for _, y := range r.keys.epochs[id] {
				if r.isAncestor(y, xi.prev) {
					rots = append(rots, y)
				}
			}
			found = true
		}
		// The cheap test first: the add is usually far back.
		after := slices.ContainsFunc(rots, func(y int32) bool { return r.ev(y).rmIncl.has(p.rm) })
		if !after && r.isAncestor(p.add, xi.prev) {
			return cause{stepEpochCut, true, reasonEpochCut, p.rm}, true
		}
	}
	return cause{}, false
}

// deviceReason is why a device removal hides an event of the removed
// device: it is concurrent with the removal, or after it (the auth rules
// refuse those already when the resolved state before them holds the
// removal; the overlay hides the rest).
func deviceReason(after bool) string {
	if after {
		return "sender device was removed"
	}
	return "sender device removed concurrently"
}

const (
	reasonDepends     = "depends on a hidden event"
	reasonDependsFork = "depends on an equivocating device's event"
)

// forkCause is why R6 hides x, if it does (step 0).
func forkCause(v *forkView, x int32) (cause, bool) {
	switch {
	case !v.has(x):
		return cause{}, false
	case v.void[x]:
		return cause{0, false, reasonEquivocation, -1}, true
	default:
		return cause{0, true, reasonDependsFork, -1}, true
	}
}

// recompute rebuilds the overlay from scratch and returns the change in
// visibility; x is the event being applied (reported as shown if visible).
func (o *overlay) recompute(r *Room, x int32) Delta {
	old := o.cause
	o.cause = make(map[int32]cause, len(old)+8)
	o.eff = map[crdt.UserID][]effRemoval{}
	var frontier []int32
	mark := func(y int32, c cause) {
		if _, ok := o.cause[y]; ok {
			return
		}
		o.cause[y] = c
		frontier = append(frontier, y)
	}
	closure := func(step int, rm int32) {
		for len(frontier) > 0 {
			y := frontier[len(frontier)-1]
			frontier = frontier[:len(frontier)-1]
			for _, k := range o.kidsOf(y) {
				if !r.ev(k).rmIncl.has(rm) && r.needs(k, y) {
					mark(k, cause{step, true, reasonDepends, rm})
				}
			}
		}
	}
	if v := r.allView(); v != nil {
		for y := range v.z {
			c, _ := forkCause(v, y)
			mark(y, c)
		}
	}
	frontier = frontier[:0] // Z(G) is closed under its own dependency rule
	order := slices.Clone(o.removals)
	slices.SortFunc(order, func(a, b int32) int {
		if c := cmp.Compare(r.ev(b).senderPL, r.ev(a).senderPL); c != 0 {
			return c
		}
		return r.cmpDepthID(a, b)
	})
	for i, rm := range order {
		step := i + 1
		if _, ok := o.cause[rm]; ok {
			continue
		}
		re := r.ev(rm)
		vv := r.versionVector(rm)
		for _, t := range re.targets {
			o.eff[t.user] = append(o.eff[t.user], effRemoval{step, rm, t.level, t.kind, t.dev})
			for _, y := range o.userEvents(t.user) {
				if y == rm {
					continue
				}
				ye := r.ev(y)
				if ye.required <= t.level || !covers(t.dev, ye.ev.Device) {
					continue
				}
				if vv[ye.ev.Device] >= ye.ev.Seq+1 {
					continue // in the removal's past
				}
				after := ye.rmIncl.has(rm)
				switch {
				case t.dev != nil:
					// No re-announcement can follow a device removal, so
					// every event of the device outside its past goes.
					mark(y, cause{step, false, deviceReason(after), rm})
				case !after: // after it: R3 judged the event, re-add included
					mark(y, cause{step, false, "sender " + t.kind + " concurrently", rm})
				}
			}
		}
		closure(step, rm)
	}
	// Join work rules after every removal, in (depth, ID) order.
	o.effWork = o.effWork[:0]
	rules := slices.Clone(o.workRules)
	slices.SortFunc(rules, r.cmpDepthID)
	for i, l := range rules {
		step := len(order) + 1 + i
		if _, ok := o.cause[l]; ok {
			continue
		}
		o.effWork = append(o.effWork, effRemoval{step: step, x: l, level: r.ev(l).workReq, kind: reasonJoinWork})
		vv := r.versionVector(l)
		for _, y := range o.joins {
			ye := r.ev(y)
			if vv[ye.ev.Device] < ye.ev.Seq+1 && r.workHides(l, y) {
				mark(y, cause{step, false, reasonJoinWork, l})
			}
		}
		closure(step, l)
	}
	o.invalid = o.invalid[:0]
	for _, y := range slices.Sorted(maps.Keys(o.cause)) {
		o.noteInvalidAdd(r, y, o.cause[y])
	}
	for _, y := range o.sealed {
		if _, ok := o.cause[y]; !ok {
			if c, ok := o.epochCut(r, y); ok {
				o.cause[y] = c
			}
		}
	}
	var d Delta
	for y := range o.cause {
		if _, was := old[y]; !was && y != x {
			d.Hidden = append(d.Hidden, r.ev(y).ev.ID)
		}
	}
	for y := range old {
		if _, is := o.cause[y]; !is {
			d.Shown = append(d.Shown, r.ev(y).ev.ID)
		}
	}
	if _, is := o.cause[x]; !is {
		d.Shown = append(d.Shown, r.ev(x).ev.ID)
	}
	slices.Sort(d.Hidden)
	slices.Sort(d.Shown)
	return d
}

// needs reports whether y's auth references allow it only thanks to x:
// with x replaced by the event x replaced (or by nothing), y is refused.
func (r *Room) needs(y, x int32) bool { return r.needsWithout(y, x, nil) }

// needsWithout is needs with x replaced by the latest event of its key
// history outside skip.
func (r *Room) needsWithout(y, x int32, skip map[int32]bool) bool {
	ei := r.ev(y)
	refs := map[string]int32{}
	for _, a := range ei.auth {
		k := r.ev(a).key
		if a == 0 {
			k = kCreate
		}
		if a == x {
			a = r.ev(x).pred
			for a >= 0 && skip[a] {
				a = r.ev(a).pred
			}
		}
		if a >= 0 {
			refs[k] = a
		}
	}
	var target *evInfo
	if ei.ev.Type == TypeRedact {
		if t, ok := r.idx(ei.body.redactTarget); ok {
			target = r.ev(t)
		}
	}
	in := r.inputFrom(ei.ev, ei.body, func(k string) int32 {
		if v, ok := refs[k]; ok {
			return v
		}
		return -1
	}, target)
	_, err := authorize(ei.ev.User, ei.ev.Type, ei.ev.StateKey, ei.body, &in)
	return err != nil
}

// versionVector returns, for a removal, 1 + the highest seq of each device
// in its past (0: none), computed once.
func (r *Room) versionVector(x int32) map[crdt.DeviceID]uint64 {
	ei := r.ev(x)
	if ei.vv != nil {
		return ei.vv
	}
	vv := map[crdt.DeviceID]uint64{}
	stack := r.scratch(ei.prev)
	for len(stack) > 0 {
		y := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ye := r.ev(y)
		if s := ye.ev.Seq + 1; s > vv[ye.ev.Device] {
			vv[ye.ev.Device] = s
		}
		for _, p := range ye.prev {
			if r.visited[p] != r.stamp {
				r.visited[p] = r.stamp
				stack = append(stack, p)
			}
		}
	}
	r.evMut(x).vv = vv
	return vv
}
