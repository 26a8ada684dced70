package rooms

import (
	"cmp"
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// State resolution (rule R4): Matrix state resolution v2.1 with depth and
// event ID instead of timestamps.
//
// resolve(S1..Sn):
//  1. Unconflicted keys (same event in every Si) keep their event.
//  2. The full conflicted set F: for every conflicted key, its events in
//     the Si and the events that key held between them and their latest
//     common predecessor (a key's history is a chain: each state event
//     replaces the key's value in the state before it). This stands for
//     v2.1's auth difference and conflicted subgraph, and its size follows
//     the changes since the fork, not the room's history.
//  3. Power events of F (power, join rule, room limits, kicks, bans and
//     device removals) and their ancestors in F are ordered topologically over
//     auth and replacement edges, ties broken by (sender level desc, device
//     removal first, depth asc, ID asc), then
//     auth-checked one by one against a partial state that starts empty
//     (v2.1); a key the partial state lacks is taken from the event's own
//     auth references, unless that reference is itself in F (then it was
//     refused or superseded, and the key counts as absent).
//  4. The other events of F follow in mainline order (position of their
//     power event on the resolved power event's chain, then depth, then
//     ID), auth-checked the same way; the last one allowed wins.
//     A member event is also checked against the join proof of work of
//     the partial state's room.limits (work.go).
//     Encrypted rooms add two checks (strong removal per device): an event
//     whose author device holds a removal in the partial state is refused,
//     and so is an announcement that would replace a removal.
//  5. Conflicted keys take the partial state's value (or none).
//
// The result depends only on the contents of the Si. Results are cached
// per set of snapshots, and an event whose parents share one snapshot
// inherits it, so resolution runs only where branches with different
// states merge.
func (r *Room) resolve(ps []*snap, view *forkView) *snap {
	uniq := ps[:0:0]
	for _, s := range ps {
		if !slices.Contains(uniq, s) {
			uniq = append(uniq, s)
		}
	}
	if len(uniq) == 1 {
		return uniq[0]
	}
	ids := make([]uint64, len(uniq), len(uniq)+1)
	for i, s := range uniq {
		ids[i] = r.snapID(s)
	}
	slices.Sort(ids)
	if view != nil {
		ids = append(ids, view.id)
	} else {
		ids = append(ids, 0)
	}
	// The key is a digest of the IDs: a merge of thousands of heads (a join
	// flood) would otherwise keep kilobytes per entry.
	kb := make([]byte, 8*len(ids))
	for i, id := range ids {
		binary.LittleEndian.PutUint64(kb[8*i:], id)
	}
	key := sha256.Sum256(kb)
	if s, ok := r.resCache[key]; ok {
		return s
	}
	out, changed := r.resolveUncached(uniq, view)
	r.resWeight += 1 + changed
	if len(r.resCache) >= resCacheMax || r.resWeight > resCacheWeight {
		// The cache and the snapshot IDs its keys name go together: the IDs
		// map holds every snapshot it numbered, so clearing only the cache
		// would keep them all. New IDs continue the sequence.
		clear(r.resCache)
		clear(r.snapIDs)
		r.resWeight = 1 + changed
	}
	r.resCache[key] = out
	return out
}

// The resolution cache is bounded in entries and in the keys its results
// changed: each changed key is a path of new snapshot nodes (about a
// kilobyte) that the result may share with no other snapshot. A join flood
// of thousands of heads makes every merge change thousands of keys, and
// an unbounded cache held gigabytes.
const (
	resCacheMax    = 1 << 14
	resCacheWeight = 1 << 16
)

// resolveUncached also returns how many keys the result changed.
func (r *Room) resolveUncached(ss []*snap, view *forkView) (*snap, int) {
	base := ss[0]
	// The distinct values of each key that may differ from base: a
	// snapshot whose diff against base does not name a key holds base's
	// value there. So each key costs the snapshots that changed it, not all
	// of them (a join flood on old parents leaves thousands of heads, each
	// with one new member).
	cand := map[string][]int32{}
	for _, s := range ss[1:] {
		diffKeys(base, s, func(k string) {
			vs, ok := cand[k]
			if !ok {
				vs = []int32{base.lookup(k)}
				r.resLookups++
			}
			r.resLookups++
			if v := s.lookup(k); !slices.Contains(vs, v) {
				vs = append(vs, v)
			}
			cand[k] = vs
		})
	}
	conflicted := map[string]bool{}
	inF := map[int32]bool{}
	for k, vals := range cand {
		if len(vals) == 1 {
			continue
		}
		conflicted[k] = true
		r.chainDiff(vals, inF)
	}
	if len(conflicted) == 0 {
		return base, 0
	}
	F := make([]int32, 0, len(inF))
	for x := range inF {
		F = append(F, x)
	}
	slices.Sort(F)

	// Power events and their ancestors in F.
	isPower := map[int32]bool{}
	var stack []int32
	for _, x := range F {
		if r.ev(x).control {
			isPower[x] = true
			stack = append(stack, x)
		}
	}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		r.eachDep(x, func(a int32) {
			if inF[a] && !isPower[a] {
				isPower[a] = true
				stack = append(stack, a)
			}
		})
	}
	partial := map[string]int32{}
	var powerOrder, others []int32
	for _, x := range F {
		if isPower[x] {
			powerOrder = append(powerOrder, x)
		} else {
			others = append(others, x)
		}
	}
	powerOrder = r.powerSort(powerOrder, isPower)
	for _, x := range powerOrder {
		r.iterCheck(x, partial, inF, view)
	}
	// Mainline order for the rest.
	ml := r.newMainline(partial, conflicted, base)
	type keyed struct {
		x   int32
		pos uint64
	}
	ks := make([]keyed, len(others))
	for i, x := range others {
		ks[i] = keyed{x, ml.pos(r.ev(x).powerRef)}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.pos, b.pos); c != 0 {
			return c
		}
		return r.cmpDepthID(a.x, b.x)
	})
	for _, k := range ks {
		r.iterCheck(k.x, partial, inF, view)
	}
	out := base
	for _, k := range slices.Sorted(mapKeys(conflicted)) {
		if v, ok := partial[k]; ok {
			out = out.set(k, v)
		} else {
			out = out.del(k)
		}
	}
	return out, len(conflicted)
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// chainDiff adds to F the values of one conflicted key and the events the
// key held between them and their latest common predecessor.
func (r *Room) chainDiff(vals []int32, inF map[int32]bool) {
	ptrs := slices.Clone(vals)
	for _, v := range ptrs {
		if v >= 0 {
			inF[v] = true
		}
	}
	for {
		// the deepest pointer, by (depth, ID)
		best := int32(-1)
		allEqual := true
		for _, p := range ptrs {
			if p != ptrs[0] {
				allEqual = false
			}
			if p >= 0 && (best < 0 || r.cmpDepthID(p, best) > 0) {
				best = p
			}
		}
		if allEqual || best < 0 {
			return
		}
		inF[best] = true
		pred := r.ev(best).pred
		for i, p := range ptrs {
			if p == best {
				ptrs[i] = pred
			}
		}
	}
}

func (r *Room) cmpDepthID(a, b int32) int {
	ea, eb := r.ev(a).ev, r.ev(b).ev
	if c := cmp.Compare(ea.Depth, eb.Depth); c != 0 {
		return c
	}
	return cmp.Compare(ea.ID, eb.ID)
}

// eachDep calls fn for the events x depends on for authority: its auth
// references and the event whose key it replaces.
func (r *Room) eachDep(x int32, fn func(int32)) {
	for _, a := range r.ev(x).auth {
		fn(a)
	}
	if p := r.ev(x).pred; p >= 0 {
		fn(p)
	}
}

// powerSort is Kahn's algorithm over dependency edges within set, ties
// broken by (sender level desc, device removal first, depth asc, ID asc).
func (r *Room) powerSort(xs []int32, set map[int32]bool) []int32 {
	indeg := map[int32]int{}
	kids := map[int32][]int32{}
	for _, x := range xs {
		seen := map[int32]bool{}
		r.eachDep(x, func(a int32) {
			if set[a] && !seen[a] {
				seen[a] = true
				indeg[x]++
				kids[a] = append(kids[a], x)
			}
		})
	}
	h := &powerHeap{r: r}
	for _, x := range xs {
		if indeg[x] == 0 {
			h.xs = append(h.xs, x)
		}
	}
	heap.Init(h)
	out := make([]int32, 0, len(xs))
	for h.Len() > 0 {
		x := heap.Pop(h).(int32)
		out = append(out, x)
		for _, k := range kids[x] {
			indeg[k]--
			if indeg[k] == 0 {
				heap.Push(h, k)
			}
		}
	}
	return out
}

type powerHeap struct {
	r  *Room
	xs []int32
}

func (h *powerHeap) Len() int { return len(h.xs) }
func (h *powerHeap) Less(i, j int) bool {
	a, b := h.r.ev(h.xs[i]), h.r.ev(h.xs[j])
	if a.senderPL != b.senderPL {
		return a.senderPL > b.senderPL
	}
	if da, db := h.r.isRemoval(h.xs[i]), h.r.isRemoval(h.xs[j]); da != db {
		return da // a device removal before its user's other power events
	}
	return h.r.cmpDepthID(h.xs[i], h.xs[j]) < 0
}
func (h *powerHeap) Swap(i, j int) { h.xs[i], h.xs[j] = h.xs[j], h.xs[i] }
func (h *powerHeap) Push(x any)    { h.xs = append(h.xs, x.(int32)) }
func (h *powerHeap) Pop() any {
	x := h.xs[len(h.xs)-1]
	h.xs = h.xs[:len(h.xs)-1]
	return x
}

// iterCheck auth-checks x against the partial state and, if allowed,
// makes it the value of its key. Events of the view's void set (R6) are
// never allowed, and an auth reference in it counts as its fallback. In an
// encrypted room, events of a device the partial state holds removed, and
// announcements replacing a removal, are not allowed either.
func (r *Room) iterCheck(x int32, partial map[string]int32, inF map[int32]bool, view *forkView) {
	if view.has(x) {
		return
	}
	ei := r.ev(x)
	refs := map[string]int32{}
	for _, a := range ei.auth {
		if a == 0 {
			refs[kCreate] = 0
		} else {
			refs[r.ev(a).key] = a
		}
	}
	get := func(k string) int32 {
		if v, ok := partial[k]; ok {
			return v
		}
		if v, ok := refs[k]; ok {
			if view.has(v) {
				v = view.fallback(r, v)
			}
			if v >= 0 && !inF[v] {
				return v // from the common history
			}
		}
		return -1 // every candidate in F for this key was refused
	}
	if d := ei.body.device; d != nil && !d.Removed && r.isRemoval(get(ei.key)) {
		return // a removal beats a concurrent announcement of the device
	}
	if r.cbody.E2EE {
		if v, ok := partial[deviceKey(ei.ev.Device)]; ok && r.isRemoval(v) {
			return // the author's device was removed (strong removal per device)
		}
	}
	in := r.inputFrom(ei.ev, ei.body, get, nil)
	if _, err := authorize(ei.ev.User, ei.ev.Type, ei.ev.StateKey, ei.body, &in); err != nil {
		return
	}
	if ei.ev.Type == TypeMember && joinWork(r.create.ID, ei.ev.User, r.limitsIn(get), in.senderMembership(ei.ev.User), ei.body) != "" {
		return // a join without the work a room.limits event of the partial state asks (work.go)
	}
	partial[ei.key] = x
}

// mainline is the chain of power events ending in the resolved one, walked
// lazily from the top.
type mainline struct {
	r   *Room
	on  map[int32]bool
	cur int32
}

func (r *Room) newMainline(partial map[string]int32, conflicted map[string]bool, base *snap) *mainline {
	top := int32(-1)
	if v, ok := partial[kPower]; ok {
		top = v
	} else if !conflicted[kPower] {
		top = base.lookup(kPower)
	}
	return &mainline{r: r, on: map[int32]bool{}, cur: top}
}

// pos is the position (1 + depth) of the nearest mainline event on p's
// power chain, 0 if none.
func (m *mainline) pos(p int32) uint64 {
	for p >= 0 {
		d := m.r.ev(p).ev.Depth
		for m.cur >= 0 && m.r.ev(m.cur).ev.Depth >= d {
			m.on[m.cur] = true
			m.cur = m.r.ev(m.cur).pred
		}
		if m.on[p] {
			return d + 1
		}
		p = m.r.ev(p).pred
	}
	return 0
}
