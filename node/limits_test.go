package node

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestCreateRoomTooLong: a room name or topic over its limit is refused
// with KindInvalid before anything is written, for plaintext and
// encrypted rooms alike (an encrypted room with a 100 KB name used to fail
// at sealing, leaving a nameless room).
func TestCreateRoomTooLong(t *testing.T) {
	tn := newTestNet(t, 1)
	e := tn.reps[0].Engine
	long := strings.Repeat("x", 100_000)
	for _, req := range []api.RoomCreateReq{{Name: long}, {Name: long, Public: true}, {Topic: long}, {Name: "\xff"}} {
		if _, err := e.CreateRoom(tn.ctx, req); KindOf(err) != api.KindInvalid {
			t.Errorf("create with a %d-byte name, %d-byte topic: %v (kind %s), want invalid", len(req.Name), len(req.Topic), err, KindOf(err))
		}
	}
	if list, _ := e.Rooms(tn.ctx); len(list.Rooms) != 0 {
		t.Fatalf("failed creates left rooms: %+v", list.Rooms)
	}
	if _, err := e.CreateRoom(tn.ctx, api.RoomCreateReq{Name: strings.Repeat("é", MaxRoomName/2), Topic: strings.Repeat("t", MaxTopic)}); err != nil {
		t.Fatalf("create at the limits: %v", err)
	}
}

// TestProfileSetAllOrNothing: a display name that fits a plaintext room's
// event but not a sealed one is refused before any room changes.
func TestProfileSetAllOrNothing(t *testing.T) {
	tn := newTestNet(t, 1)
	e, ctx := tn.reps[0].Engine, tn.ctx
	old := "alice"
	if _, err := e.ProfileSet(ctx, api.ProfileSetReq{Name: &old}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, public := range []bool{true, false} {
		r, err := e.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: public})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Room)
	}
	long := strings.Repeat("n", 62_000) // fits a plaintext event, not a sealed one
	if _, err := e.ProfileSet(ctx, api.ProfileSetReq{Name: &long}); KindOf(err) != api.KindInvalid {
		t.Fatalf("profile set with a %d-byte name: %v (kind %s), want invalid", len(long), err, KindOf(err))
	}
	for _, room := range ids {
		info, err := e.Info(ctx, api.RoomReq{Room: room})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range info.Members {
			if m.DisplayName != old {
				t.Errorf("room %s: display name is %d bytes after a refused profile set", room, len(m.DisplayName))
			}
		}
	}
	if p, _ := e.ProfileGet(ctx, api.UserReq{}); p.DisplayName != old {
		t.Errorf("profile name is %d bytes after a refused profile set", len(p.DisplayName))
	}
}

// TestLeavePhantomRoom: a room kept for a join that never got its state
// can be left, and is then gone.
func TestLeavePhantomRoom(t *testing.T) {
	tn := newTestNet(t, 1)
	e, ctx := tn.reps[0].Engine, tn.ctx
	other := newTestNet(t, 1)
	r, err := other.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.TrackRoom(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.Rooms(ctx); len(list.Rooms) != 1 {
		t.Fatalf("room list: %+v", list.Rooms)
	}
	if _, err := e.Leave(ctx, api.RoomReq{Room: r.Room}); err != nil {
		t.Fatalf("leave a phantom room: %v", err)
	}
	if list, _ := e.Rooms(ctx); len(list.Rooms) != 0 {
		t.Fatalf("room list after leave: %+v", list.Rooms)
	}
}

// TestFailedJoinLeavesNoRoom: a join that fails (the room is invite-only
// and this user is not invited) rolls back: the room is not kept
// afterwards, unless it was kept before the join.
func TestFailedJoinLeavesNoRoom(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	ctx := tn.ctx
	r, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "invite only"})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{engine: tn.reps[1].Engine, log: slog.New(slog.DiscardHandler)}
	if _, err := n.joinRoom(ctx, tn.reps[1].host, r.Room, nil); err == nil {
		t.Fatal("join uninvited succeeded")
	}
	if list, _ := tn.reps[1].Engine.Rooms(ctx); len(list.Rooms) != 0 {
		t.Fatalf("a failed join left rooms: %+v", list.Rooms)
	}
	// A room kept before the join (hosted) stays.
	if _, err := tn.reps[1].Engine.KeepBlind(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	if _, err := n.joinRoom(context.Background(), tn.reps[1].host, r.Room, nil); err == nil {
		t.Fatal("join uninvited succeeded")
	}
	if list, _ := tn.reps[1].Engine.Rooms(ctx); len(list.Rooms) != 1 {
		t.Fatalf("a failed join dropped a hosted room: %+v", list.Rooms)
	}
}
