package rooms

// A snapshot is a room state: a persistent map from state key (type and
// state key) to the index of the event holding it. It is a hash array mapped
// trie, so setting a key copies one path (O(log n)) and two snapshots that
// share history share structure: diff skips equal subtrees by pointer, so its
// cost follows the number of differing keys, not the size of the state.

const (
	snapBits  = 4
	snapWidth = 1 << snapBits
	snapMask  = snapWidth - 1
	maxShift  = 60 // beyond this, keys with equal hashes live in a bucket
)

type snap struct {
	root *hnode
	n    int
}

type hnode struct {
	bitmap uint32
	slots  []hslot // one per set bit, in bit order
	bucket []hleaf // only at maxShift: keys with the same hash, sorted
}

// hslot is a leaf or a child: 16 bytes, so a path copy stays small (a
// room of thousands of members copies a few hundred bytes per state
// event). Leaves are immutable and shared between snapshots.
type hslot struct {
	leaf *hleaf // nil for a child
	node *hnode // nil for a leaf
}

type hleaf struct {
	key  string
	hash uint64
	val  int32
}

var emptySnap = &snap{root: &hnode{}}

func hashKey(k string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(k); i++ {
		h ^= uint64(k[i])
		h *= 1099511628211
	}
	return h
}

func popcount(x uint32) int {
	n := 0
	for x != 0 {
		x &= x - 1
		n++
	}
	return n
}

func (s *snap) get(k string) (int32, bool) {
	h := hashKey(k)
	n := s.root
	for shift := uint(0); ; shift += snapBits {
		if n.bucket != nil {
			for _, l := range n.bucket {
				if l.key == k {
					return l.val, true
				}
			}
			return 0, false
		}
		bit := uint32(1) << ((h >> shift) & snapMask)
		if n.bitmap&bit == 0 {
			return 0, false
		}
		sl := &n.slots[popcount(n.bitmap&(bit-1))]
		if sl.node == nil {
			if sl.leaf.key == k {
				return sl.leaf.val, true
			}
			return 0, false
		}
		n = sl.node
	}
}

// lookup returns the value or -1.
func (s *snap) lookup(k string) int32 {
	if v, ok := s.get(k); ok {
		return v
	}
	return -1
}

func (s *snap) set(k string, v int32) *snap {
	root, added := setNode(s.root, hleaf{key: k, hash: hashKey(k), val: v}, 0)
	n := s.n
	if added {
		n++
	}
	return &snap{root: root, n: n}
}

func setNode(n *hnode, l hleaf, shift uint) (*hnode, bool) {
	if shift >= maxShift || n.bucket != nil {
		c := &hnode{bucket: make([]hleaf, 0, len(n.bucket)+1)}
		added := true
		for _, x := range n.bucket {
			if x.key == l.key {
				added = false
				continue
			}
			c.bucket = append(c.bucket, x)
		}
		c.bucket = append(c.bucket, l)
		for i := len(c.bucket) - 1; i > 0 && c.bucket[i].key < c.bucket[i-1].key; i-- {
			c.bucket[i], c.bucket[i-1] = c.bucket[i-1], c.bucket[i]
		}
		return c, added // buckets (equal 60-bit hashes) are too rare to share
	}
	bit := uint32(1) << ((l.hash >> shift) & snapMask)
	i := popcount(n.bitmap & (bit - 1))
	c := &hnode{bitmap: n.bitmap | bit}
	if n.bitmap&bit == 0 {
		c.slots = make([]hslot, len(n.slots)+1)
		copy(c.slots, n.slots[:i])
		c.slots[i] = hslot{leaf: shareLeaf(&l)}
		copy(c.slots[i+1:], n.slots[i:])
		return shareNode(c), true
	}
	c.slots = make([]hslot, len(n.slots))
	copy(c.slots, n.slots)
	sl := n.slots[i]
	if sl.node != nil {
		child, added := setNode(sl.node, l, shift+snapBits)
		c.slots[i] = hslot{node: child}
		return shareNode(c), added
	}
	if sl.leaf.key == l.key {
		c.slots[i] = hslot{leaf: shareLeaf(&l)}
		return shareNode(c), false
	}
	child, _ := setNode(&hnode{}, *sl.leaf, shift+snapBits)
	child, _ = setNode(child, l, shift+snapBits)
	c.slots[i] = hslot{node: child}
	return shareNode(c), true
}

func (s *snap) del(k string) *snap {
	if _, ok := s.get(k); !ok {
		return s
	}
	return &snap{root: delNode(s.root, k, hashKey(k), 0), n: s.n - 1}
}

func delNode(n *hnode, k string, h uint64, shift uint) *hnode {
	if n.bucket != nil {
		c := &hnode{bucket: make([]hleaf, 0, len(n.bucket))}
		for _, x := range n.bucket {
			if x.key != k {
				c.bucket = append(c.bucket, x)
			}
		}
		return c
	}
	bit := uint32(1) << ((h >> shift) & snapMask)
	i := popcount(n.bitmap & (bit - 1))
	sl := n.slots[i]
	if sl.node == nil {
		c := &hnode{bitmap: n.bitmap &^ bit, slots: make([]hslot, 0, len(n.slots)-1)}
		c.slots = append(c.slots, n.slots[:i]...)
		c.slots = append(c.slots, n.slots[i+1:]...)
		return shareNode(c)
	}
	c := &hnode{bitmap: n.bitmap, slots: make([]hslot, len(n.slots))}
	copy(c.slots, n.slots)
	c.slots[i] = hslot{node: delNode(sl.node, k, h, shift+snapBits)}
	return shareNode(c)
}

// each calls fn for every entry (in no particular order).
func (s *snap) each(fn func(k string, v int32)) { eachNode(s.root, fn) }

func eachNode(n *hnode, fn func(k string, v int32)) {
	for _, l := range n.bucket {
		fn(l.key, l.val)
	}
	for _, sl := range n.slots {
		if sl.node != nil {
			eachNode(sl.node, fn)
		} else {
			fn(sl.leaf.key, sl.leaf.val)
		}
	}
}

// diffKeys calls fn for every key whose value may differ between a and b
// (a superset of the differing keys; callers compare values). Subtrees shared
// by pointer are skipped.
func diffKeys(a, b *snap, fn func(k string)) { diffNode(a.root, b.root, fn) }

func diffNode(a, b *hnode, fn func(k string)) {
	if a == b {
		return
	}
	if a.bucket != nil || b.bucket != nil {
		eachNode(a, func(k string, _ int32) { fn(k) })
		eachNode(b, func(k string, _ int32) { fn(k) })
		return
	}
	all := a.bitmap | b.bitmap
	for all != 0 {
		bit := all & -all
		all &^= bit
		var sa, sb *hslot
		if a.bitmap&bit != 0 {
			sa = &a.slots[popcount(a.bitmap&(bit-1))]
		}
		if b.bitmap&bit != 0 {
			sb = &b.slots[popcount(b.bitmap&(bit-1))]
		}
		switch {
		case sa == nil:
			slotKeys(sb, fn)
		case sb == nil:
			slotKeys(sa, fn)
		case sa.node != nil && sb.node != nil:
			diffNode(sa.node, sb.node, fn)
		case sa.node == nil && sb.node == nil:
			if sa.leaf.key != sb.leaf.key {
				fn(sa.leaf.key)
				fn(sb.leaf.key)
			} else if sa.leaf.val != sb.leaf.val {
				fn(sa.leaf.key)
			}
		default:
			slotKeys(sa, fn)
			slotKeys(sb, fn)
		}
	}
}

func slotKeys(s *hslot, fn func(k string)) {
	if s.node == nil {
		fn(s.leaf.key)
		return
	}
	eachNode(s.node, func(k string, _ int32) { fn(k) })
}
