package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// TestOrphansExpire (issue 15): events whose parents never come are dropped
// once they waited orphanTTL, not only when the budget overflows; younger
// ones stay; the count shows in room info and the sender's budget is freed.
func TestOrphansExpire(t *testing.T) {
	master, _ := crdt.GenerateKey(rand.Reader)
	ident, _ := crdt.NewIdentity(master, rand.Reader)
	local := crdt.NewMemStore()
	e, err := NewEngineWith(ident, crdt.NewMemStore(), "", slog.New(slog.DiscardHandler), KeyOptions{Local: local})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	room, err := e.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := crdt.ParseID(room.Room)
	orphans := func(n int, tag string) []*crdt.Event {
		var out []*crdt.Event
		for k := range n {
			fake := crdt.IDOf([]byte(fmt.Sprintf("no such parent %s %d", tag, k)))
			ev, err := crdt.Sign(ident, crdt.Draft{Room: id, Type: rooms.TypeMessage, Seq: uint64(100 + k), Self: fake, Prev: []crdt.EventID{fake},
				Auth: []crdt.EventID{id}, Depth: 2, TS: 1, Body: rooms.Encode(rooms.MessageBody{Text: tag})})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
		return out
	}
	const peerA = "peer-a"
	t0 := time.Now()
	if _, err := e.Tick(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if err := e.Ingest(ctx, peerA, orphans(30, "old")); err != nil {
		t.Fatal(err)
	}
	// The engine notes arrivals at each tick (every minute in a daemon): an
	// orphan goes once the first tick after its arrival is orphanTTL old.
	for _, m := range []time.Duration{time.Minute, 6 * time.Minute} {
		if _, err := e.Tick(ctx, t0.Add(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Ingest(ctx, peerA, orphans(20, "young")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Tick(ctx, t0.Add(7*time.Minute)); err != nil {
		t.Fatal(err)
	}
	pending := func() (int, int) {
		info, err := e.Info(ctx, api.RoomReq{Room: room.Room})
		if err != nil {
			t.Fatal(err)
		}
		return info.Sync.Pending, info.Sync.Expired
	}
	if p, x := pending(); p != 50 || x != 0 {
		t.Fatalf("before expiry: %d pending, %d expired; want 50, 0", p, x)
	}
	if n, _ := e.Tick(ctx, t0.Add(10*time.Minute)); n != 0 {
		t.Fatalf("%d orphans expired before a tick after their arrival was 10 minutes old", n)
	}
	if n, _ := e.Tick(ctx, t0.Add(11*time.Minute)); n != 30 {
		t.Fatalf("at 11 minutes %d orphans expired, want the 30 old ones", n)
	}
	if p, x := pending(); p != 20 || x != 30 {
		t.Fatalf("after the first expiry: %d pending, %d expired; want 20, 30", p, x)
	}
	var charged int
	e.do(ctx, func() error { charged = e.rooms[id].orphansBy[peerA]; return nil })
	if charged > 20 {
		t.Fatalf("the sender is still charged %d orphans, 20 wait", charged)
	}
	if n, _ := e.Tick(ctx, t0.Add(17*time.Minute)); n != 20 {
		t.Fatalf("at 17 minutes %d orphans expired, want the 20 young ones", n)
	}
	if p, x := pending(); p != 0 || x != 50 {
		t.Fatalf("after the second expiry: %d pending, %d expired; want 0, 50", p, x)
	}
}
