package node

import (
	"fmt"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// TestRoomLimits: the admin sets a room's limits (room/limits), every node
// reads the same ones; a member may not set them; a value out of range is
// refused and changes nothing. With a join proof of work, a new node's join
// carries work its node minted and is taken in everywhere. With a bytes
// limit, the author's node refuses to sign past it, with the reason, and
// stores nothing.
func TestRoomLimits(t *testing.T) {
	const admin, member, joiner = 0, 1, 2
	tn := newTestNet(t, 3)
	tn.link(admin, member)
	tn.link(member, joiner)
	ctx := tn.ctx
	resp, err := tn.reps[admin].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	room, _ := crdt.ParseID(resp.Room)
	joinRoom(t, tn, room, member)
	joinedAt(t, tn, room, member, admin)

	i64 := func(n int64) *int64 { return &n }
	if _, err := tn.reps[member].Engine.RoomLimits(ctx, api.RoomLimitsReq{Room: resp.Room, Messages: i64(1)}); KindOf(err) != api.KindPermission {
		t.Fatalf("a member sets limits: %v", err)
	}
	for _, req := range []api.RoomLimitsReq{{Room: resp.Room, Bytes: i64(-1)}, {Room: resp.Room, JoinWork: i64(rooms.MaxJoinWork + 1)}, {Room: resp.Room, Messages: i64(rooms.MaxLimitMessages + 1)}} {
		if _, err := tn.reps[admin].Engine.RoomLimits(ctx, req); KindOf(err) != api.KindInvalid || !strings.Contains(err.Error(), "out of range") {
			t.Fatalf("limits %+v: %v", req, err)
		}
	}
	got, err := tn.reps[admin].Engine.RoomLimits(ctx, api.RoomLimitsReq{Room: resp.Room})
	if err != nil || got != (api.RoomLimitsResp{Room: resp.Room}) {
		t.Fatalf("limits after refused changes: %+v, %v", got, err)
	}

	const bytesLimit, bits = 3000, 10
	set, err := tn.reps[admin].Engine.RoomLimits(ctx, api.RoomLimitsReq{Room: resp.Room, Bytes: i64(bytesLimit), JoinWork: i64(bits)})
	if err != nil || set.Event == "" || set.Bytes != bytesLimit || set.JoinWork != bits || set.Messages != 0 {
		t.Fatalf("set limits: %+v, %v", set, err)
	}
	want := api.RoomLimitsResp{Room: resp.Room, Bytes: bytesLimit, JoinWork: bits}
	eventually(t, convergeWithin, "the member reads the same limits", func() (bool, string) {
		got, err := tn.reps[member].Engine.RoomLimits(ctx, api.RoomLimitsReq{Room: resp.Room})
		return err == nil && got == want, fmt.Sprint(got, err)
	})

	// The joiner's node mints the proof; its join is taken in everywhere.
	joinRoom(t, tn, room, joiner)
	joinedAt(t, tn, room, joiner, admin, member)
	work := joinWorkOf(t, tn, admin, room, joiner)
	if rooms.WorkBits(room, tn.ids[joiner].User, work) < bits {
		t.Fatalf("the join carries %x, under %d bits", work, bits)
	}

	// 1,000-byte messages: the member's node refuses once its events of
	// the last minute (its join included) reach 3,000 bytes.
	text := strings.Repeat("x", 1000)
	sent := 0
	for ; sent < 10; sent++ {
		_, err := tn.reps[member].Engine.Send(ctx, api.SendReq{Room: resp.Room, Text: text})
		if err == nil {
			continue
		}
		if KindOf(err) != api.KindPermission || !strings.Contains(err.Error(), "over the room's limit of 3000 bytes per minute") {
			t.Fatalf("message %d: %v", sent, err)
		}
		break
	}
	if sent == 0 || sent >= 3 {
		t.Fatalf("%d messages of 1,000 bytes passed a limit of 3,000 bytes per minute", sent)
	}
	held := len(tn.history(member, resp.Room))
	if _, err := tn.reps[member].Engine.Send(ctx, api.SendReq{Room: resp.Room, Text: "short"}); err == nil {
		t.Fatal("a message past the bytes limit was signed")
	}
	if n := len(tn.history(member, resp.Room)); n != held {
		t.Fatalf("a refused message changed the timeline: %d events, was %d", n, held)
	}
	// The admin is not held by the limits it sets.
	for range 5 {
		if _, err := tn.reps[admin].Engine.Send(ctx, api.SendReq{Room: resp.Room, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
}

// joinRoom has node i track a public room and join it.
func joinRoom(t *testing.T, tn *testNet, room crdt.RoomID, i int) {
	t.Helper()
	if _, err := tn.reps[i].Engine.TrackRoom(tn.ctx, room.String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "room reaches node", func() (bool, string) {
		ok, _ := tn.reps[i].Engine.HasRoomState(tn.ctx, room)
		return ok, fmt.Sprint("node ", i)
	})
	if _, err := tn.reps[i].Engine.Join(tn.ctx, room); err != nil {
		t.Fatal(err)
	}
}

// joinedAt waits until the nodes at see node j's user joined.
func joinedAt(t *testing.T, tn *testNet, room crdt.RoomID, j int, at ...int) {
	t.Helper()
	membershipAt(t, tn, room, j, rooms.Join, at...)
}

// membershipAt waits until the nodes at see node j's user with membership m.
func membershipAt(t *testing.T, tn *testNet, room crdt.RoomID, j int, m string, at ...int) {
	t.Helper()
	for _, i := range at {
		eventually(t, convergeWithin, "the membership reaches node", func() (bool, string) {
			info, err := tn.reps[i].Engine.Info(tn.ctx, api.RoomReq{Room: room.String()})
			if err != nil {
				return false, err.Error()
			}
			for _, mm := range info.Members {
				if mm.User == tn.ids[j].User.String() {
					return mm.Membership == m, fmt.Sprint(i, mm.Membership)
				}
			}
			return false, fmt.Sprint("node ", i, ": no member entry")
		})
	}
}

// joinWorkOf returns the work in the latest join of node j's user held at
// node i.
func joinWorkOf(t *testing.T, tn *testNet, i int, room crdt.RoomID, j int) []byte {
	t.Helper()
	var work []byte
	if err := tn.stores[i].Scan(room, 0, func(s crdt.Stored) bool {
		ev := s.Event
		if ev.Type == rooms.TypeMember && ev.User == tn.ids[j].User {
			var mb rooms.MemberBody
			if rooms.DecodeBody(ev.Body, &mb) == nil && mb.Membership == rooms.Join {
				work = mb.Work
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return work
}
