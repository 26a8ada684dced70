package rooms

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

var seedFlag = flag.Uint64("rooms.seed", 0, "seed for the random DAG tests (0: the fixed seeds)")

// genConfig shapes a random room history.
type genConfig struct {
	events     int
	authors    int
	stale      float64 // probability that an author writes on a stale view (concurrency)
	equivocate float64 // probability that an author forks its own chain
	forkers    int     // this many authors (an admin, a moderator, members) fork once and keep both branches going
}

// genRoom generates a random history: 10 authors, several admins, random
// invites, joins, leaves, kicks, bans, unbans, power and name changes,
// profiles, redactions and messages, written on views that are often stale
// (concurrent branches). Many actions are refused; that is part of the test.
func genRoom(t testing.TB, rng *rand.Rand, cfg genConfig) (*world, float64) {
	w := newWorld(t, "u0", CreateBody{JoinRule: Private})
	users := make([]string, cfg.authors)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i)
	}
	member := func(target, m string) (string, *string, []byte) {
		return TypeMember, ptr(w.user(target).String()), Encode(MemberBody{Membership: m})
	}
	// bootstrap: everyone invited and joined, three admins, a moderator
	for _, u := range users[1:] {
		typ, sk, b := member(u, Invite)
		w.emit("u0", typ, sk, b, opts{})
		typ, sk, b = member(u, Join)
		w.emit(u, typ, sk, b, opts{})
	}
	pl := PowerLevels{Users: map[string]int64{w.user("u1").String(): 100, w.user("u2").String(): 100, w.user("u3").String(): 50}}
	w.emit("u0", TypePower, ptr(""), Encode(pl), opts{})

	stale := 0
	var msgs []*crdt.Event
	// Forkers: each forks its chain once, at a random point, then writes on
	// either branch; the other branch grows on stale views (its own tip).
	forkAt := map[string]int{}
	alt := map[string]*crdt.Event{}
	for i, u := range []string{"u2", "u3", "u5", "u7", "u9"} {
		if i < cfg.forkers && i+1 < len(users) {
			forkAt[u] = cfg.events/10 + rng.IntN(cfg.events/2)
		}
	}
	for len(w.events) < cfg.events {
		a := users[rng.IntN(len(users))]
		var o opts
		useAlt := false
		if at, ok := forkAt[a]; ok && len(w.events) >= at && len(w.events) < at+300 {
			self := w.last[w.id(a).Device.Public()]
			switch {
			case alt[a] == nil && self != nil && self.Seq > 0:
				o.forkOf = self
				o.prev = []*crdt.Event{w.byID[self.Self]}
				useAlt = true
			case alt[a] != nil && rng.IntN(2) == 0:
				o.after = alt[a]
				o.prev = []*crdt.Event{alt[a]}
				useAlt = true
			}
		}
		isStale := rng.Float64() < cfg.stale && len(w.events) > 40
		if useAlt {
			// the branch's own view
		} else if isStale {
			// write on an older view: one random recent event (plus self),
			// sometimes a forker's other branch
			o.prev = []*crdt.Event{w.events[len(w.events)-1-rng.IntN(30)]}
			for u, e := range alt {
				if len(w.events) < forkAt[u]+300 && rng.IntN(4) == 0 {
					o.prev = []*crdt.Event{e}
				}
			}
		} else {
			heads := w.room.Heads()
			if len(heads) > 15 {
				heads = heads[:15]
			}
			for _, h := range heads {
				o.prev = append(o.prev, w.byID[h])
			}
		}
		if self := w.last[w.id(a).Device.Public()]; !useAlt && a != "u0" && self != nil && rng.Float64() < cfg.equivocate && self.Seq > 0 {
			o.forkOf = self
		}
		st := w.room.State()
		if o.prev != nil && (useAlt || isStale) {
			st = w.room.stateOf(w.room.stateAt([]int32{w.room.ids[o.prev[0].ID]}))
		}
		mine := st.Member(w.user(a)).Membership
		pick := func(want ...string) string { // a target, preferring these memberships
			for range 5 {
				u := users[rng.IntN(len(users))]
				m := st.Member(w.user(u)).Membership
				for _, x := range want {
					if m == x {
						return u
					}
				}
			}
			return users[rng.IntN(len(users))]
		}
		var typ string
		var sk *string
		var body []byte
		if mine != Join {
			switch {
			case mine == Invite || a == "u0" || rng.IntN(4) == 0:
				typ, sk, body = member(a, Join)
			case rng.IntN(10) == 0:
				typ, body = TypeMessage, Encode(MessageBody{Text: "let me in"})
			default:
				continue
			}
		} else {
			switch x := rng.IntN(100); {
			case x < 52:
				typ, body = TypeMessage, Encode(MessageBody{Text: fmt.Sprintf("m%d", len(w.events))})
			case x < 62:
				typ, sk, body = member(pick(Leave, ""), Invite)
			case x < 65:
				typ, sk, body = member(pick(Join), Leave) // kick
			case x < 68:
				typ, sk, body = member(pick(Join), Ban)
			case x < 72:
				typ, sk, body = member(pick(Ban), Leave) // unban
			case x < 74:
				if a == "u0" {
					continue
				}
				typ, sk, body = member(a, Leave)
			case x < 80:
				levels := w.levelsAt(o.prev)
				if levels.Users == nil {
					levels.Users = map[string]int64{}
				}
				if rng.IntN(4) == 0 {
					levels.Invite = Lvl([]int64{0, 50, 100}[rng.IntN(3)])
				} else {
					levels.Users[w.user(pick(Join)).String()] = []int64{0, 0, 50, 100}[rng.IntN(4)]
				}
				typ, sk, body = TypePower, ptr(""), Encode(levels)
			case x < 88:
				typ = []string{TypeName, TypeTopic}[rng.IntN(2)]
				sk, body = ptr(""), Encode(TextBody{Value: fmt.Sprintf("%s-%d", a, len(w.events))})
			case x < 93:
				typ, sk, body = TypeProfile, ptr(w.user(a).String()), Encode(ProfileBody{DisplayName: fmt.Sprintf("%s-%d", a, len(w.events))})
			default:
				if len(msgs) == 0 {
					continue
				}
				typ, body = TypeRedact, Encode(RedactBody{Target: []byte(msgs[len(msgs)-1-rng.IntN(min(len(msgs), 20))].ID)})
			}
		}
		dev := w.id(a).Device.Public()
		mainTip := w.last[dev]
		e, _ := w.emit(a, typ, sk, body, o)
		if useAlt {
			alt[a] = e
			w.last[dev] = mainTip // the main branch goes on from its own tip
		}
		if isStale {
			stale++
		}
		if typ == TypeMessage {
			msgs = append(msgs, e)
		}
	}
	return w, float64(stale) / float64(len(w.events))
}

// TestConvergenceRandom is the core SEC property (docs/design.md §4
// scenario 1): the same event set, applied in many causal orders, gives the
// same state, timeline, visibility and reasons.
func TestConvergenceRandom(t *testing.T) {
	seeds := []uint64{1, 2}
	sizes := []int{2000, 5000}
	orders := 50
	if testing.Short() {
		seeds, sizes, orders = []uint64{1}, []int{2000}, 10
	}
	if *seedFlag != 0 {
		seeds = []uint64{*seedFlag}
	}
	for i, seed := range seeds {
		n := sizes[i%len(sizes)]
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			w, conc := genRoom(t, rng, genConfig{events: n, authors: 10, stale: 0.3, equivocate: 0.0005, forkers: 3})
			stats := w.stats()
			t.Logf("seed %d: %d events, %.0f%% written on stale views; %s", seed, len(w.events), 100*conc, stats)
			if err := w.checkConverges(orders, seed); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			st := w.room.State()
			if got := w.room.JoinRule(); got != st.JoinRule {
				t.Errorf("seed %d: JoinRule() = %q, State has %q", seed, got, st.JoinRule)
			}
			for _, m := range st.Members {
				if got := w.room.MembershipOf(m.User); got != m.Membership {
					t.Errorf("seed %d: MembershipOf(%s) = %q, State has %q", seed, m.User, got, m.Membership)
				}
			}
		})
	}
}

// stats summarizes a world's outcome for logs.
func (w *world) stats() string {
	var acc, rej, hid, forks int
	reasons := map[string]int{}
	refused := map[string]int{}
	for _, e := range w.events {
		ok, why := w.room.Visible(e.ID)
		switch {
		case ok:
			acc++
		case w.room.Accepted(e.ID):
			hid++
			reasons[why]++
		default:
			rej++
			refused[why]++
		}
	}
	for _, d := range w.room.ov.devs {
		if d.fork != ^uint64(0) {
			forks++
		}
	}
	ms := map[string]int{}
	for _, m := range w.room.State().Members {
		ms[m.Membership]++
	}
	return fmt.Sprintf("%d visible, %d refused, %d hidden %v, %d forked devices, memberships %v; refusals %v",
		acc, rej, hid, reasons, forks, ms, refused)
}
