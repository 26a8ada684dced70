package rooms

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/crdt"
)

// benchRoom is a generated history: a linear part with `state` state events
// among `total` events, then `forks` concurrent branches (one profile change
// each, by distinct users), merged in layers of 20 parents.
type benchRoom struct {
	create *crdt.Event
	events []*crdt.Event // causal order
	merges int           // the last `merges` events are merges
	forkAt int           // index of the first fork event
}

var benchCache sync.Map

func makeBenchRoom(b *testing.B, state, total, forks int) *benchRoom {
	key := fmt.Sprint(state, total, forks)
	if v, ok := benchCache.Load(key); ok {
		return v.(*benchRoom)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	w := newWorld(b, "u0", CreateBody{JoinRule: Public})
	users := make([]string, forks)
	for i := range users {
		users[i] = fmt.Sprintf("f%d", i)
	}
	active := users[:50]
	nState := 0
	emit := func(name, typ string, sk *string, body []byte) {
		w.emit(name, typ, sk, body, opts{})
		if sk != nil {
			nState++
		}
	}
	for _, u := range users {
		emit(u, TypeMember, ptr(w.user(u).String()), Encode(MemberBody{Membership: Join}))
	}
	pl := PowerLevels{Users: map[string]int64{}}
	for _, u := range active[:10] {
		pl.Users[w.user(u).String()] = 50
	}
	emit("u0", TypePower, ptr(""), Encode(pl))
	tail := len(users) // the last events before the forks: one message per fork user
	for len(w.events) < total-tail-forks {
		a := active[rng.IntN(len(active))]
		stateLeft := state - nState
		msgLeft := total - tail - forks - len(w.events) - stateLeft
		if stateLeft > 0 && rng.IntN(stateLeft+msgLeft) < stateLeft {
			switch rng.IntN(3) {
			case 0:
				emit(a, TypeProfile, ptr(w.user(a).String()), Encode(ProfileBody{DisplayName: fmt.Sprint(a, len(w.events))}))
			case 1:
				emit(active[rng.IntN(10)], TypeTopic, ptr(""), Encode(TextBody{Value: fmt.Sprint(len(w.events))}))
			default:
				emit("u0", TypeName, ptr(""), Encode(TextBody{Value: fmt.Sprint(len(w.events))}))
			}
		} else {
			emit(a, TypeMessage, nil, Encode(MessageBody{Text: fmt.Sprint(len(w.events))}))
		}
	}
	for _, u := range users {
		emit(u, TypeMessage, nil, Encode(MessageBody{Text: "before the fork"}))
	}
	br := &benchRoom{create: w.create, forkAt: len(w.events)}
	h := w.events[len(w.events)-1]
	var heads []*crdt.Event
	author := map[*crdt.Event]string{}
	for _, u := range users {
		e, _ := w.emit(u, TypeProfile, ptr(w.user(u).String()), Encode(ProfileBody{DisplayName: u + " on a branch"}), opts{prev: []*crdt.Event{h}})
		heads = append(heads, e)
		author[e] = u
	}
	// Each merge is written by the author of its first parent, so its self
	// parent is one of the merged heads (no extra, older parent).
	before := len(w.events)
	for len(heads) > 1 {
		var next []*crdt.Event
		for i := 0; i < len(heads); i += 20 {
			group := heads[i:min(i+20, len(heads))]
			a := author[group[0]]
			e, _ := w.emit(a, TypeMessage, nil, Encode(MessageBody{Text: "merge"}), opts{prev: group})
			next = append(next, e)
			author[e] = a
		}
		heads = next
	}
	br.events = w.events
	br.merges = len(w.events) - before
	benchCache.Store(key, br)
	return br
}

// BenchmarkResolve measures state resolution: a full replay of a room with
// 10,000 state events (30,000 events) whose last 1,000 events fork into
// concurrent branches that are then merged, and the incremental cost of one
// merge, which must not grow with history (compare the sub-benchmarks).
func BenchmarkResolve(b *testing.B) {
	for _, c := range []struct{ state, total int }{{1000, 3000}, {10000, 30000}} {
		br := makeBenchRoom(b, c.state, c.total, 1000)
		b.Run(fmt.Sprintf("replay/state=%d/events=%d", c.state, len(br.events)), func(b *testing.B) {
			for b.Loop() {
				replay(b, br.create, br.events)
			}
			b.ReportMetric(float64(len(br.events))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(fmt.Sprintf("merge/state=%d", c.state), func(b *testing.B) {
			var total time.Duration
			n := 0
			for b.Loop() {
				b.StopTimer()
				r := replay(b, br.create, br.events[:len(br.events)-br.merges])
				b.StartTimer()
				t0 := time.Now()
				for _, e := range br.events[len(br.events)-br.merges:] {
					r.Apply(e)
				}
				total += time.Since(t0)
				n += br.merges
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(n), "ms/merge")
		})
	}
}
