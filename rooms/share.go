package rooms

import (
	"hash/maphash"
	"maps"
	"runtime"
	"sync"
	"sync/atomic"
	"unique"
	"weak"

	"github.com/parley-p2p/parley/crdt"
)

// Sharing between the Rooms of one process. A simulation runs thousands of
// replicas of the same room in one process; replicas that applied the same
// events hold equal snapshots, equal decoded bodies and equal state keys.
// With sharing on, the snapshot nodes are hash-consed (a node is built, then
// replaced by the live node with the same content if there is one: its
// children are already shared, so equal content means equal pointers, and
// equal nodes are found by a hash of the bitmap and the children's
// addresses), decoded bodies are kept once per event, state keys are
// interned strings, and equal guards (the summary the gossip validator
// reads) are kept once. Shared values are immutable and equal to what a Room
// builds without sharing, so no Room computes anything different (a
// property test compares both); they are held weakly and go when no Room
// uses them. Sharing costs a hash and a lookup under a lock per node built,
// which a daemon (one replica per room) does not need: it is off unless
// ShareBetweenRooms turns it on.

var sharing atomic.Bool

// ShareBetweenRooms turns sharing of immutable state between the Rooms of
// this process on or off (off by default). It may be called at any time:
// state built while it was off is simply not shared.
func ShareBetweenRooms(on bool) { sharing.Store(on) }

var shared struct {
	mu     sync.Mutex
	seed   maphash.Seed
	nodes  map[uint64][]weak.Pointer[hnode]            // guarded by mu
	leaves map[leafKey]weak.Pointer[hleaf]             // guarded by mu
	bodies map[bodyKey]weak.Pointer[parsed]            // guarded by mu
	guards map[weak.Pointer[hnode]]weak.Pointer[Guard] // by the state's root; guarded by mu
	users  sync.Map                                    // crdt.UserID → member state key
}

type leafKey struct {
	key string
	val int32
}

type bodyKey struct {
	id        crdt.EventID
	encrypted bool
	body      bool // a purged event is held without its body
}

func init() { shared.seed = maphash.MakeSeed() }

func nodeHash(n *hnode) uint64 {
	var h maphash.Hash
	h.SetSeed(shared.seed)
	maphash.WriteComparable(&h, n.bitmap)
	for i := range n.slots {
		maphash.WriteComparable(&h, n.slots[i].leaf)
		maphash.WriteComparable(&h, n.slots[i].node)
	}
	return h.Sum64()
}

func sameNode(a, b *hnode) bool {
	if a.bitmap != b.bitmap || len(a.slots) != len(b.slots) || a.bucket != nil || b.bucket != nil {
		return false
	}
	for i := range a.slots {
		if a.slots[i] != b.slots[i] {
			return false
		}
	}
	return true
}

// shareNode returns the live node with n's content, or n after recording
// it. n's children must be shared already (setNode and delNode build
// bottom-up).
func shareNode(n *hnode) *hnode {
	if !sharing.Load() || n.bucket != nil {
		return n
	}
	h := nodeHash(n)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.nodes == nil {
		shared.nodes = map[uint64][]weak.Pointer[hnode]{}
	}
	for _, p := range shared.nodes[h] {
		if old := p.Value(); old != nil && sameNode(old, n) {
			return old
		}
	}
	shared.nodes[h] = append(shared.nodes[h], weak.Make(n))
	runtime.AddCleanup(n, forgetNode, h)
	return n
}

func forgetNode(h uint64) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	ps := shared.nodes[h][:0]
	for _, p := range shared.nodes[h] {
		if p.Value() != nil {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		delete(shared.nodes, h)
	} else {
		shared.nodes[h] = ps
	}
}

func shareLeaf(l *hleaf) *hleaf {
	if !sharing.Load() {
		return l
	}
	k := leafKey{l.key, l.val}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.leaves == nil {
		shared.leaves = map[leafKey]weak.Pointer[hleaf]{}
	}
	if p, ok := shared.leaves[k]; ok {
		if old := p.Value(); old != nil {
			return old
		}
	}
	shared.leaves[k] = weak.Make(l)
	runtime.AddCleanup(l, forgetLeaf, k)
	return l
}

func forgetLeaf(k leafKey) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if p, ok := shared.leaves[k]; ok && p.Value() == nil {
		delete(shared.leaves, k)
	}
}

// shareBody returns the body already decoded for the same event (with the
// same presence of its body, and the same encryption, which replaces some
// bodies by placeholders), or the one
// parse returns after recording it. Errors are not kept.
func shareBody(e *crdt.Event, encrypted bool, parse func() (*parsed, error)) (*parsed, error) {
	if !sharing.Load() {
		return parse()
	}
	k := bodyKey{e.ID, encrypted, e.Body != nil}
	shared.mu.Lock()
	if p, ok := shared.bodies[k]; ok {
		if old := p.Value(); old != nil {
			shared.mu.Unlock()
			return old, nil
		}
	}
	shared.mu.Unlock()
	p, err := parse()
	if err != nil {
		return p, err
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.bodies == nil {
		shared.bodies = map[bodyKey]weak.Pointer[parsed]{}
	}
	if q, ok := shared.bodies[k]; ok {
		if old := q.Value(); old != nil {
			return old, nil
		}
	}
	shared.bodies[k] = weak.Make(p)
	runtime.AddCleanup(p, forgetBody, k)
	return p, nil
}

func forgetBody(k bodyKey) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if p, ok := shared.bodies[k]; ok && p.Value() == nil {
		delete(shared.bodies, k)
	}
}

// shareKey returns an interned copy of a state key.
func shareKey(k string) string {
	if !sharing.Load() {
		return k
	}
	return unique.Make(k).Value()
}

// shareGuard returns a live guard equal to g built from a state with the
// same root, or g after recording it. Replicas number events in the order
// they applied them, so an equal root does not prove an equal guard: the
// contents are compared.
func shareGuard(root *hnode, g *Guard) *Guard {
	if !sharing.Load() {
		return g
	}
	k := weak.Make(root)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.guards == nil {
		shared.guards = map[weak.Pointer[hnode]]weak.Pointer[Guard]{}
	}
	if p, ok := shared.guards[k]; ok {
		if old := p.Value(); old != nil && sameGuard(old, g) {
			return old
		}
	}
	shared.guards[k] = weak.Make(g)
	runtime.AddCleanup(g, forgetGuard, k)
	return g
}

func sameGuard(a, b *Guard) bool {
	return a.Creator == b.Creator && a.Limit == b.Limit && a.Bytes == b.Bytes && a.Work == b.Work &&
		maps.Equal(a.Members, b.Members) && maps.Equal(a.Removed, b.Removed) && maps.Equal(a.Exempt, b.Exempt)
}

func forgetGuard(k weak.Pointer[hnode]) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if p, ok := shared.guards[k]; ok && p.Value() == nil {
		delete(shared.guards, k)
	}
}

// sharedUserKey returns the member state key of u from a table of the
// process (a few hundred bytes per user of any room, never dropped: a
// simulation's users), and false when sharing is off.
func sharedUserKey(u crdt.UserID) (string, bool) {
	if !sharing.Load() {
		return "", false
	}
	if k, ok := shared.users.Load(u); ok {
		return k.(string), true
	}
	k := shareKey(stateKey(TypeMember, u.String()))
	shared.users.Store(u, k)
	return k, true
}
