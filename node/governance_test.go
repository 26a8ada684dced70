package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// bodies returns the message bodies of node i's visible timeline.
func (tn *testNet) bodies(i int, room string) []string {
	h, err := tn.reps[i].Engine.History(tn.ctx, api.HistoryReq{Room: room})
	if err != nil {
		tn.t.Fatal(err)
	}
	var out []string
	for _, e := range h.Events {
		if e.Type == rooms.TypeMessage && !e.Redacted {
			out = append(out, e.Body)
		}
	}
	return out
}

func TestInviteJoinPrivateRoom(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	ctx := tn.ctx
	room, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "private"})
	if err != nil {
		t.Fatal(err)
	}
	rid, _ := crdt.ParseID(room.Room)
	// Uninvited: the room is not even served.
	if _, err := tn.reps[1].Engine.TrackRoom(ctx, room.Room); err != nil {
		t.Fatal(err)
	}
	tn.reps[1].SyncNow(ctx)
	if _, err := tn.reps[1].Engine.Join(ctx, rid); err == nil {
		t.Fatal("uninvited user joined a private room")
	}
	if _, err := tn.reps[0].Engine.Invite(ctx, api.RoomUserReq{Room: room.Room, User: tn.ids[1].User.String()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "invite delivered", func() (bool, string) {
		inv, _ := tn.reps[1].Engine.Invites(ctx)
		return len(inv.Requests) == 1 && inv.Requests[0].Room == room.Room, fmt.Sprint(inv) // a stranger's: a request
	})
	tn.reps[1].SyncNow(ctx)
	eventually(t, 10*time.Second, "room state", func() (bool, string) {
		ok, _ := tn.reps[1].Engine.HasRoomState(ctx, rid)
		return ok, ""
	})
	eventually(t, 10*time.Second, "invite in state", func() (bool, string) {
		_, err := tn.reps[1].Engine.Join(ctx, rid)
		return err == nil, fmt.Sprint(err)
	})
	send(t, tn, 1, room.Room, 1, "hello from the invitee")
	eventually(t, 10*time.Second, "message arrives", func() (bool, string) {
		b := tn.bodies(0, room.Room)
		return len(b) == 1, fmt.Sprint(b)
	})
}

// TestBanUnderPartition: the admin bans C while C is partitioned away and
// keeps writing; after the heal C's concurrent messages are hidden on every
// node, C's own included, while honest messages written on top of them stay.
func TestBanUnderPartition(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.link(0, 1)
	tn.link(1, 2)
	room := setupRoom(t, tn)
	tn.converged(room, 3, convergeWithin, 0, 1, 2)
	send(t, tn, 2, room, 2, "C before")
	tn.converged(room, 5, convergeWithin, 0, 1, 2)
	tn.cut(1, 2)
	if _, err := tn.reps[0].Engine.Ban(tn.ctx, api.RoomUserReq{Room: room, User: tn.ids[2].User.String()}); err != nil {
		t.Fatal(err)
	}
	send(t, tn, 2, room, 5, "C during")
	send(t, tn, 1, room, 2, "B during")
	tn.link(1, 2)
	want := []string{"B during 0", "B during 1", "C before 0", "C before 1"}
	for i := range 3 {
		eventually(t, convergeWithin, "ban applied", func() (bool, string) {
			b := tn.bodies(i, room)
			slices.Sort(b)
			return slices.Equal(b, want), fmt.Sprintf("node %d: %q", i, b)
		})
	}
	// An honest message on top of the hidden ones stays visible everywhere.
	send(t, tn, 1, room, 1, "B after")
	for i := range 3 {
		eventually(t, convergeWithin, "honest child visible", func() (bool, string) {
			b := tn.bodies(i, room)
			return slices.Contains(b, "B after 0"), fmt.Sprintf("node %d: %q", i, b)
		})
	}
	// C can no longer send.
	if _, err := tn.reps[2].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: "still here?"}); err == nil {
		t.Fatal("banned user could send")
	}
}

func TestRedactionPurges(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	room := setupRoom(t, tn)
	ev, err := tn.reps[1].Engine.Send(tn.ctx, api.SendReq{Room: room, Text: "secret 42"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "message arrives", func() (bool, string) {
		return slices.Contains(tn.bodies(0, room), "secret 42"), ""
	})
	if _, err := tn.reps[0].Engine.Redact(tn.ctx, api.RedactReq{Room: room, Event: ev.Event}); err != nil {
		t.Fatal(err) // the creator (admin) may redact others' messages
	}
	id, _ := crdt.ParseID(ev.Event)
	for i := range 2 {
		eventually(t, 10*time.Second, "body purged", func() (bool, string) {
			st, err := tn.stores[i].Get(id)
			return err == nil && st.Event.Body == nil && !slices.Contains(tn.bodies(i, room), "secret 42"), fmt.Sprintf("node %d", i)
		})
	}
}
