package rooms

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// world builds events for tests: named users with one device each, a room
// fed in generation order, and labels for events.
type world struct {
	t       testing.TB
	ids     map[string]*crdt.Identity
	names   map[crdt.UserID]string
	create  *crdt.Event
	room    *Room
	events  []*crdt.Event
	labels  map[string]*crdt.Event
	labelOf map[crdt.EventID]string
	last    map[crdt.DeviceID]*crdt.Event
	byID    map[crdt.EventID]*crdt.Event
	ts      int64
	keys    *worldKeys // encrypted rooms (keys_test.go)
}

// identity derives a named identity; "bob.2" is a second device of bob.
func identity(t testing.TB, name string) *crdt.Identity {
	user, _, _ := strings.Cut(name, ".")
	ms := sha256.Sum256([]byte("user:" + user))
	ds := sha256.Sum256([]byte("device:" + name))
	master, err := crdt.SecretKeyFromSeed(ms[:])
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crdt.SecretKeyFromSeed(ds[:])
	if err != nil {
		t.Fatal(err)
	}
	return &crdt.Identity{User: master.Public(), Device: dev, Cert: crdt.CertifyDevice(master, dev.Public())}
}

func newWorld(t testing.TB, creator string, body CreateBody) *world {
	w := &world{t: t, ids: map[string]*crdt.Identity{}, names: map[crdt.UserID]string{},
		labels: map[string]*crdt.Event{}, labelOf: map[crdt.EventID]string{}, last: map[crdt.DeviceID]*crdt.Event{}, byID: map[crdt.EventID]*crdt.Event{}}
	id := w.id(creator)
	if body.History == "" {
		body.History = HistoryShared
	}
	c, err := crdt.Sign(id, crdt.Draft{Type: TypeCreate, TS: 1, Body: Encode(body)})
	if err != nil {
		t.Fatal(err)
	}
	w.create = c
	if body.E2EE {
		w.keys = newWorldKeys(w)
	}
	w.room, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	w.last[id.Device.Public()] = c
	w.byID[c.ID] = c
	w.label("create", c)
	return w
}

func (w *world) id(name string) *crdt.Identity {
	if id, ok := w.ids[name]; ok {
		return id
	}
	id := identity(w.t, name)
	w.ids[name] = id
	if _, ok := w.names[id.User]; !ok {
		user, _, _ := strings.Cut(name, ".")
		w.names[id.User] = user
	}
	return id
}

func (w *world) user(name string) crdt.UserID { return w.id(name).User }

func (w *world) label(l string, e *crdt.Event) {
	w.labels[l] = e
	w.labelOf[e.ID] = l
}

func (w *world) nameOf(id crdt.EventID) string {
	if l, ok := w.labelOf[id]; ok {
		return l
	}
	return fmt.Sprintf("%x", id.Digest()[:4])
}

// opts shape an event beyond its content.
type opts struct {
	prev   []*crdt.Event // default: the room's heads
	forkOf *crdt.Event   // equivocate: reuse this event's seq and self
	after  *crdt.Event   // continue this event's device chain (seq+1), e.g. a fork's other branch
	auth   []crdt.EventID
	noAuth bool // use auth exactly (possibly empty)
	ts     *int64
	room   crdt.RoomID // default: the world's room
	depth  *uint64
	noBLen bool           // omit blen where the room limits bytes (BodyLenAt)
	epoch  []byte         // the envelope's epoch field
	seal   *e2ee.EpochKey // seal the body under this key (keys_test.go)
}

// draft builds and signs an event.
func (w *world) draft(name, typ string, skey *string, body []byte, o opts) *crdt.Event {
	id := w.id(name)
	dev := id.Device.Public()
	var seq uint64
	var self crdt.EventID
	if o.forkOf != nil {
		seq, self = o.forkOf.Seq, o.forkOf.Self
	} else if o.after != nil {
		seq, self = o.after.Seq+1, o.after.ID
	} else if l := w.last[dev]; l != nil {
		seq, self = l.Seq+1, l.ID
		if l.Type == TypeCreate {
			seq, self = 1, l.ID
		}
	}
	var prev []crdt.EventID
	if o.prev != nil {
		for _, p := range o.prev {
			prev = append(prev, p.ID)
		}
	} else {
		prev = w.room.Heads()
	}
	if self != "" && !slices.Contains(prev, self) {
		prev = append(prev, self)
	}
	var depth uint64
	for _, p := range prev {
		if e := w.byID[p]; e != nil {
			depth = max(depth, e.Depth)
		}
	}
	depth++
	if o.depth != nil {
		depth = *o.depth
	}
	auth := o.auth
	if auth == nil && !o.noAuth {
		auth = w.room.AuthRefsAt(prev, id.User, typ, skey)
	}
	w.ts++
	ts := w.ts
	if o.ts != nil {
		ts = *o.ts
	}
	room := w.create.ID
	if o.room != "" {
		room = o.room
	}
	d := crdt.Draft{Room: room, Type: typ, StateKey: skey, Seq: seq, Self: self,
		Prev: prev, Auth: auth, Depth: depth, TS: ts, Epoch: o.epoch, Body: body}
	d.SignBodyLen = !o.noBLen && w.room.BodyLenAt(prev)
	if o.seal != nil {
		ep := o.seal.ID()
		d.Epoch = ep[:]
		h, err := e2ee.DraftHeader(id.User, dev, d)
		if err != nil {
			w.t.Fatal(err)
		}
		if d.Body, err = o.seal.Seal(w.rng(), h, body); err != nil {
			w.t.Fatal(err)
		}
	}
	e, err := crdt.Sign(id, d)
	if err != nil {
		w.t.Fatal(err)
	}
	return e
}

// emit builds an event, applies it to the world's room and records it.
func (w *world) emit(name, typ string, skey *string, body []byte, o opts) (*crdt.Event, Delta) {
	e := w.draft(name, typ, skey, body, o)
	return e, w.apply(e)
}

func (w *world) apply(e *crdt.Event) Delta {
	w.events = append(w.events, e)
	w.byID[e.ID] = e
	if l := w.last[e.Device]; l == nil || e.Seq > l.Seq || l.Type == TypeCreate {
		w.last[e.Device] = e
	}
	return w.room.Apply(e)
}

func ptr(s string) *string { return &s }

// causalOrder returns the events in a random causal order: each after its
// prev and auth references (Kahn's algorithm with random choice).
func causalOrder(evs []*crdt.Event, rng *rand.Rand) []*crdt.Event {
	idx := map[crdt.EventID]int{}
	for i, e := range evs {
		idx[e.ID] = i
	}
	indeg := make([]int, len(evs))
	kids := make([][]int, len(evs))
	for i, e := range evs {
		seen := map[int]bool{}
		for _, ref := range slices.Concat(e.Prev, e.Auth) {
			if j, ok := idx[ref]; ok && !seen[j] {
				seen[j] = true
				indeg[i]++
				kids[j] = append(kids[j], i)
			}
		}
	}
	var ready []int
	for i := range evs {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	out := make([]*crdt.Event, 0, len(evs))
	for len(ready) > 0 {
		k := rng.IntN(len(ready))
		i := ready[k]
		ready[k] = ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		out = append(out, evs[i])
		for _, c := range kids[i] {
			indeg[c]--
			if indeg[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	return out
}

// replay feeds events to a fresh room and returns it.
func replay(t testing.TB, create *crdt.Event, evs []*crdt.Event) *Room {
	r, err := New(create)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		r.Apply(e)
	}
	return r
}

// checkConverges replays the world's events in n random causal orders and
// compares hashes and visibility with the world's room.
func (w *world) checkConverges(n int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	wantS, wantV := w.room.StateHash(), w.room.VisibleHash()
	for i := 0; i < n; i++ {
		order := causalOrder(w.events, rng)
		if len(order) != len(w.events) {
			return fmt.Errorf("order %d: cycle", i)
		}
		r := replay(w.t, w.create, order)
		if r.StateHash() != wantS {
			return fmt.Errorf("seed %d order %d: state hash differs", seed, i)
		}
		if r.KeyStateHash() != w.room.KeyStateHash() {
			return fmt.Errorf("seed %d order %d: key state differs", seed, i)
		}
		if r.VisibleHash() != wantV {
			for _, e := range w.events {
				v1, r1 := w.room.Visible(e.ID)
				v2, r2 := r.Visible(e.ID)
				if v1 != v2 {
					return fmt.Errorf("seed %d order %d: %s visible %v (%s) in generation order, %v (%s) here", seed, i, w.nameOf(e.ID), v1, r1, v2, r2)
				}
			}
			return fmt.Errorf("seed %d order %d: visible hash differs", seed, i)
		}
		for _, e := range w.events {
			_, r1 := w.room.Visible(e.ID)
			_, r2 := r.Visible(e.ID)
			if r1 != r2 {
				return fmt.Errorf("seed %d order %d: %s reason %q vs %q", seed, i, w.nameOf(e.ID), r1, r2)
			}
		}
	}
	return nil
}
