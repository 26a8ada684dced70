package rooms

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// roomFacts is what a room answers about a set of events.
type roomFacts struct {
	StateHash, VisibleHash [32]byte
	KeyState               string
	State                  State
	Timeline, Heads        []crdt.EventID
	Redactions             []crdt.EventID
	Guard                  Guard
	Events                 []string
}

func factsOfRoom(r *Room, evs []*crdt.Event) roomFacts {
	f := roomFacts{StateHash: r.StateHash(), VisibleHash: r.VisibleHash(), KeyState: r.KeyStateHash(), State: r.State(),
		Timeline: r.Timeline(), Heads: r.Heads(), Redactions: r.Redactions(), Guard: *r.Guard()}
	for _, e := range evs {
		i, ok := r.idx(e.ID)
		if !ok {
			f.Events = append(f.Events, "unknown")
			continue
		}
		ei := r.ev(i)
		vis, why := r.Visible(e.ID)
		f.Events = append(f.Events, fmt.Sprint(ei.accepted, vis, why, r.Redacted(e.ID), r.Accepted(e.ID), ei.senderPL,
			snapMap(ei.before), snapMap(ei.after), ei.rmIncl.xs, ei.reach.xs, ei.cuts.xs, ei.vv))
	}
	return f
}

// fingerprint prints a frozen room's own bookkeeping (with the addresses
// of what its entries point to), to see that nothing changed it.
func fingerprint(r *Room) string {
	s := fmt.Sprint(len(r.evs), len(r.ids), r.heads, r.ov.byUser, r.ov.authKids, r.ov.joins, r.fk.judged, r.fk.all, r.fk.allOK)
	for _, e := range r.evs {
		s += fmt.Sprint(*e)
	}
	devs := slices.SortedFunc(maps.Keys(r.ov.devs), func(a, b crdt.DeviceID) int { return slices.Compare(a[:], b[:]) })
	for _, d := range devs {
		s += fmt.Sprint(*r.ov.devs[d])
	}
	return s
}

// TestOverlayComputesTheSame: rooms over a frozen base (the longest plain
// prefix of a random history with forks, removals and redactions after it)
// compute exactly what a room that applied the prefix itself computes,
// event by event (every Delta) and at the end (state, timeline, visibility
// and reasons, each event's state before and after), in the generation
// order and in random causal orders, with and without sharing; and no
// overlay changes the base or another overlay.
func TestOverlayComputesTheSame(t *testing.T) {
	for _, share := range []bool{false, true} {
		for _, seed := range []uint64{3, 11} {
			if *seedFlag != 0 {
				seed = *seedFlag
			}
			t.Run(fmt.Sprintf("share=%v/seed=%d", share, seed), func(t *testing.T) { testOverlay(t, seed, share) })
		}
	}
}

func testOverlay(t *testing.T, seed uint64, share bool) {
	rng := rand.New(rand.NewPCG(seed, 43))
	w, _ := genRoom(t, rng, genConfig{events: 1500, authors: 10, stale: 0.3, equivocate: 0.002, forkers: 3})
	ShareBetweenRooms(share)
	defer ShareBetweenRooms(false)
	probe := replay(t, w.create, nil)
	cut := 0
	for i, e := range w.events {
		probe.Apply(e)
		if probe.plain() != nil {
			break
		}
		cut = i + 1
	}
	prefix, rest := w.events[:cut], w.events[cut:]
	t.Logf("seed %d: a plain prefix of %d events, %d after it", seed, len(prefix), len(rest))
	if len(prefix) < 20 || len(rest) < 500 {
		t.Fatalf("seed %d: prefix %d, rest %d: the generator changed", seed, len(prefix), len(rest))
	}
	base := replay(t, w.create, prefix)
	if err := base.Freeze(); err != nil {
		t.Fatal(err)
	}
	before := fingerprint(base)
	fresh := factsOfRoom(replay(t, w.create, prefix), w.events)
	ref := replay(t, w.create, prefix)
	o1, o2, idle := base.Overlay(), base.Overlay(), base.Overlay()
	// Overlays that hold nothing of their own share the base's guard,
	// computed once, which is the guard of a room that applied the prefix.
	if g := idle.Guard(); g != base.Overlay().Guard() || !reflect.DeepEqual(*g, *ref.Guard()) {
		t.Fatalf("seed %d: a fresh overlay's guard is not the base's, or differs from the prefix's", seed)
	}
	if got := factsOfRoom(o1, w.events); !reflect.DeepEqual(got, fresh) {
		t.Fatalf("seed %d: a fresh overlay differs from a room that applied the prefix", seed)
	}
	for _, e := range rest {
		want, got := ref.Apply(e), o1.Apply(e)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: %s: overlay delta %+v, want %+v", seed, w.nameOf(e.ID), got, want)
		}
	}
	want := factsOfRoom(ref, w.events)
	if got := factsOfRoom(o1, w.events); !reflect.DeepEqual(got, want) {
		for i := range got.Events {
			if got.Events[i] != want.Events[i] {
				t.Errorf("seed %d: %s: overlay %s, want %s", seed, w.nameOf(w.events[i].ID), got.Events[i], want.Events[i])
				break
			}
		}
		t.Fatalf("seed %d: the overlay differs from the reference at the end", seed)
	}
	for k := range 3 {
		order := causalOrder(rest, rand.New(rand.NewPCG(seed, uint64(k))))
		o := o2
		if k > 0 {
			o = base.Overlay()
		}
		for _, e := range order {
			o.Apply(e)
		}
		if o.StateHash() != ref.StateHash() || o.VisibleHash() != ref.VisibleHash() || o.KeyStateHash() != ref.KeyStateHash() {
			t.Fatalf("seed %d, causal order %d: the overlay's hashes differ from the reference", seed, k)
		}
	}
	if fingerprint(base) != before {
		t.Fatalf("seed %d: the base changed", seed)
	}
	if got := factsOfRoom(idle, w.events); !reflect.DeepEqual(got, fresh) {
		t.Fatalf("seed %d: an overlay that applied nothing changed", seed)
	}
	if base.Overlay().Len() != len(prefix)+1 {
		t.Fatalf("seed %d: overlay length", seed)
	}
	if !panics(func() { base.Apply(rest[0]) }) {
		t.Fatal("Apply to a frozen room did not panic")
	}
	if err := probe.Freeze(); err == nil {
		t.Fatalf("seed %d: froze a room that is not a plain prefix", seed)
	}
}

// TestOverlayForkOfBaseEvents: forks and a removal after the base that
// reach back into it (a fork group whose first member, and the events
// after it, are the base's; a ban of a user with base events) are
// computed as a room alone computes them, and leave the base unchanged.
func TestOverlayForkOfBaseEvents(t *testing.T) {
	w := newWorld(t, "u0", CreateBody{JoinRule: Public})
	msg := func(name, text string, o opts) *crdt.Event {
		e, _ := w.emit(name, TypeMessage, nil, Encode(MessageBody{Text: text}), o)
		return e
	}
	for _, u := range []string{"u1", "u2"} {
		w.emit(u, TypeMember, ptr(w.user(u).String()), Encode(MemberBody{Membership: Join}), opts{})
	}
	m1 := msg("u1", "m1", opts{})
	for i := range 5 {
		msg("u2", fmt.Sprint("a", i), opts{})
		msg("u1", fmt.Sprint("b", i), opts{})
	}
	cut := len(w.events)
	// u1 forks m1 on a branch that does not know it, then the branches merge
	self := w.byID[m1.Self]
	msg("u1", "fork of m1", opts{forkOf: m1, prev: []*crdt.Event{self}})
	msg("u2", "merge", opts{})
	msg("u0", "after", opts{})
	w.emit("u0", TypeMember, ptr(w.user("u2").String()), Encode(MemberBody{Membership: Ban}), opts{})
	msg("u1", "last", opts{})
	prefix, rest := w.events[:cut], w.events[cut:]
	base := replay(t, w.create, prefix)
	if err := base.Freeze(); err != nil {
		t.Fatal(err)
	}
	before := fingerprint(base)
	ref, o := replay(t, w.create, prefix), base.Overlay()
	for _, e := range rest {
		if want, got := ref.Apply(e), o.Apply(e); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: overlay delta %+v, want %+v", w.nameOf(e.ID), got, want)
		}
	}
	if got, want := factsOfRoom(o, w.events), factsOfRoom(ref, w.events); !reflect.DeepEqual(got, want) {
		t.Fatalf("the overlay differs from the reference:\n%+v\nwant:\n%+v", got, want)
	}
	if got, want := factsOfRoom(w.room, w.events), factsOfRoom(ref, w.events); !reflect.DeepEqual(got, want) {
		t.Fatal("the reference differs from the world's room")
	}
	if ok, why := ref.Visible(m1.ID); ok || why != reasonEquivocation {
		t.Fatalf("m1 visible %v (%s): the fork was not seen", ok, why)
	}
	if len(o.mod) == 0 {
		t.Fatal("no base entry was copied: the fork did not reach into the base")
	}
	if fingerprint(base) != before {
		t.Fatal("the base changed")
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}
