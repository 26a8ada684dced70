package node

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

func TestLineTopologyConverges(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.link(0, 1)
	tn.link(1, 2)
	ctx := tn.ctx
	room, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "line", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		id, err := tn.reps[i].Engine.TrackRoom(ctx, room.Room)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "room state reaches node", func() (bool, string) {
			ok, _ := tn.reps[i].Engine.HasRoomState(ctx, id)
			return ok, fmt.Sprint("node ", i)
		})
		if _, err := tn.reps[i].Engine.Join(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 30 {
				if _, err := tn.reps[i].Engine.Send(ctx, api.SendReq{Room: room.Room, Text: fmt.Sprintf("m %d %d", i, k)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// create + 2 joins + 90 messages
	tn.converged(room.Room, 93, convergeWithin, 0, 1, 2)
}
