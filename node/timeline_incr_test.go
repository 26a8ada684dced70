package node

import (
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// TestTimelineIncrementalEqualsRebuild: the projection an engine extends
// event by event (timelineAfter, timelineReread) equals one rebuilt from
// the whole history, after every step of a seeded random run of messages,
// replies, thread replies, edits, reactions and unreactions, redactions
// (of messages, relations and receipts), receipts, a late joiner whose
// history arrives before its keys, and a kick; with deliveries in a random
// order, some twice.
func TestTimelineIncrementalEqualsRebuild(t *testing.T) {
	n := 12
	if testing.Short() {
		n = 3
	}
	for _, enc := range []bool{false, true} {
		for seed := uint64(1); seed <= uint64(n); seed++ {
			t.Run(fmt.Sprintf("encrypted=%v/seed=%d", enc, seed), func(t *testing.T) { timelineIncremental(t, enc, seed) })
		}
	}
}

func timelineIncremental(t *testing.T, enc bool, seed uint64) {
	b := newBus(t, seed, 4)
	r, err := b.engines[0].CreateRoom(b.ctx, api.RoomCreateReq{Name: "incremental", Encrypted: &enc})
	b.ok(err)
	room := r.Room
	id := mustID(t, room)
	b.drain()
	members := []int{0}
	invite := func(m int) {
		b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: room, User: b.user(m)}))
		b.drain()
		b.join(m, room)
		members = append(members, m)
	}
	invite(1)
	invite(2)
	incremental := 0
	var users []crdt.UserID
	for _, id := range b.idents {
		users = append(users, id.User)
	}
	// check compares every engine's extended projection with a rebuild, and
	// then makes sure each has one, so that the next step extends it.
	check := func(step int, what string) {
		t.Helper()
		for i, e := range b.engines {
			if err := e.do(b.ctx, func() error {
				rc := e.rooms[id]
				if rc == nil || rc.room == nil {
					return nil
				}
				if rc.tl != nil {
					incremental++
					if diff := timelineDiff(rc.tl, e.buildTimeline(id, rc), users); diff != "" {
						return fmt.Errorf("step %d (%s): engine %d: the extended projection differs from a rebuild: %s", step, what, i, diff)
					}
				}
				e.timelineOf(id, rc)
				return nil
			}); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
	}
	check(0, "joined")
	var sent []string // message events, by anyone
	mine := map[int][]string{}
	pick := func(xs []string) string { return xs[b.rng.IntN(len(xs))] }
	for step := 1; step <= 60; step++ {
		i := members[b.rng.IntN(len(members))]
		var what string
		var err error
		switch k := b.rng.IntN(100); {
		case step == 25:
			// The late joiner holds the history (and builds its projection)
			// before it joins: its keys come after, with the forwards its
			// join causes, and the sealed messages it listed turn readable.
			what = "late joiner syncs"
			b.ok2(b.engines[0].Invite(b.ctx, api.RoomUserReq{Room: room, User: b.user(3)}))
			b.drain()
			_, err = b.engines[3].TrackRoom(b.ctx, room)
			b.ok(err)
			b.sync(3, id)
		case step == 26:
			what = "late joiner joins"
			_, err = b.engines[3].Join(b.ctx, id)
			b.ok(err)
			members = append(members, 3)
		case step == 45:
			what = "kick"
			_, err = b.engines[0].Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(2)})
			members = slices.DeleteFunc(members, func(m int) bool { return m == 2 })
		case len(sent) == 0 || k < 30:
			what = "send"
			var sr api.EventResp
			if sr, err = b.engines[i].Send(b.ctx, api.SendReq{Room: room, Text: fmt.Sprintf("message %d by %d", step, i)}); err == nil {
				sent, mine[i] = append(sent, sr.Event), append(mine[i], sr.Event)
			}
		case k < 40:
			what = "reply"
			var sr api.EventResp
			if sr, err = b.engines[i].Send(b.ctx, api.SendReq{Room: room, Text: fmt.Sprintf("reply %d", step), ReplyTo: pick(sent)}); err == nil {
				sent, mine[i] = append(sent, sr.Event), append(mine[i], sr.Event)
			}
		case k < 47:
			what = "thread reply"
			var sr api.EventResp
			if sr, err = b.engines[i].Send(b.ctx, api.SendReq{Room: room, Text: fmt.Sprintf("thread %d", step), Thread: pick(sent)}); err == nil {
				sent, mine[i] = append(sent, sr.Event), append(mine[i], sr.Event)
			}
		case k < 57 && len(mine[i]) > 0:
			what = "edit"
			_, err = b.engines[i].Edit(b.ctx, api.EditReq{Room: room, Event: pick(mine[i]), Text: fmt.Sprintf("edited at %d", step)})
		case k < 70:
			what = "react"
			_, err = b.engines[i].React(b.ctx, api.ReactReq{Room: room, Event: pick(sent), Key: pick([]string{"👍", "🎉"})})
		case k < 75:
			what = "unreact"
			_, err = b.engines[i].Unreact(b.ctx, api.ReactReq{Room: room, Event: pick(sent), Key: pick([]string{"👍", "🎉"})})
		case k < 85:
			what = "receipt"
			_, err = b.engines[i].MarkRead(b.ctx, api.ReadReq{Room: room, Event: pick(sent)})
		default:
			what = "redact"
			// The admin redacts anything of the timeline: messages, edits,
			// reactions, receipts.
			var evs []string
			b.stores[0].Scan(id, 0, func(s crdt.Stored) bool {
				if s.Event.Type == rooms.TypeMessage || s.Event.Type == TypeReceipt {
					evs = append(evs, s.Event.ID.String())
				}
				return true
			})
			if len(evs) > 0 {
				_, err = b.engines[0].Redact(b.ctx, api.RedactReq{Room: room, Event: pick(evs)})
			}
		}
		if err != nil && KindOf(err) != api.KindInvalid && KindOf(err) != api.KindNotFound {
			t.Fatalf("seed %d: step %d (%s) on engine %d: %v", seed, step, what, i, err)
		}
		if b.rng.IntN(3) > 0 {
			b.drain()
		}
		check(step, what)
	}
	b.drain()
	check(61, "drained")
	if incremental < 100 {
		t.Fatalf("seed %d: only %d checks found an extended projection", seed, incremental)
	}
}

// timelineDiff describes how two projections of a room differ ("" when
// they are equal).
func timelineDiff(got, want *roomTimeline, users []crdt.UserID) string {
	if !slices.Equal(got.list, want.list) {
		return fmt.Sprintf("listed events:\n%v\nwant\n%v", got.list, want.list)
	}
	if !reflect.DeepEqual(got.mids, want.mids) {
		return fmt.Sprintf("message IDs:\n%v\nwant\n%v", got.mids, want.mids)
	}
	if g, w := got.proj.Messages(), want.proj.Messages(); !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("messages:\n%+v\nwant\n%+v", g, w)
	}
	if g, w := got.proj.Ignored(), want.proj.Ignored(); !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("ignored:\n%+v\nwant\n%+v", g, w)
	}
	for _, u := range users {
		g, gok := got.proj.ReadMarker(u)
		w, wok := want.proj.ReadMarker(u)
		if g != w || gok != wok {
			return fmt.Sprintf("read marker of %s: %+v %v, want %+v %v", u, g, gok, w, wok)
		}
	}
	return ""
}
