package p2p

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/parley-p2p/parley/crdt"
)

// TestBeginCoalescesRoom (issue 16): while a job of a room runs, the
// room's other session and fetch jobs wait for it, whichever peer they
// name, and are queued when it ends; a job that waited for a job that
// received nothing for syncStall, or that waited syncDeferMax, runs beside
// it. Repair jobs and other rooms are not held back.
func TestBeginCoalescesRoom(t *testing.T) {
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	h, err := mn.GenPeer()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := NewSyncer(h, &testEngine{}, NewRoomGate(h, log), crdt.NewMemStore(), nil, log, nil, 1)
	roomA, roomB := crdt.IDOf([]byte("a")), crdt.IDOf([]byte("b"))
	p1, p2 := peer.ID("peer-1"), peer.ID("peer-2")
	check := func(what string, wantQueued, wantRunning int) {
		t.Helper()
		if q, r := s.Jobs(); q != wantQueued || r != wantRunning {
			t.Errorf("%s: %d queued, %d running; want %d, %d", what, q, r, wantQueued, wantRunning)
		}
	}
	first := syncJob{room: roomA, peer: p1}
	if !s.begin(first) {
		t.Fatal("the first job of a room waits")
	}
	second := syncJob{room: roomA, peer: p2}
	get := syncJob{room: roomA, peer: p1, get: string(roomA)}
	for _, j := range []syncJob{second, get, second} {
		if s.begin(j) {
			t.Fatalf("%+v runs beside the room's running job", j)
		}
	}
	check("two jobs wait for the room's first", 2, 1)
	if !s.begin(syncJob{room: roomB, peer: p1}) || !s.begin(syncJob{room: roomA, repair: true}) {
		t.Fatal("another room's job, or a repair job, waits")
	}
	s.end(syncJob{room: roomB, peer: p1})
	check("another room's job ran", 2, 1)

	now := time.Now()
	s.releaseStalled(now.Add(syncStall / 2))
	check("the first job is not stalled yet", 2, 1)
	s.progressed(roomA)
	s.releaseStalled(time.Now().Add(syncStall / 2))
	check("progress keeps them waiting", 2, 1)
	s.releaseStalled(time.Now().Add(syncStall))
	// Released: queued for a worker (pending), marked to run beside.
	if q, _ := s.Jobs(); q != 2 || len(s.pending) != 2 {
		t.Fatalf("after a stall: %d queued, %d pending; want both pending", q, len(s.pending))
	}
	for _, want := range []syncJob{second, get} {
		j, ok := s.next()
		want.beside = true
		if !ok || j != want {
			t.Fatalf("released %+v, want %+v", j, want)
		}
		if !s.begin(j) {
			t.Fatalf("released %+v waits again", j)
		}
	}
	check("the released jobs run beside the first", 0, 3)
	s.end(second)
	s.end(get)

	// A job that waits syncDeferMax runs beside, progress or not.
	if s.begin(second) {
		t.Fatal("a job runs beside the room's running one")
	}
	s.progressed(roomA)
	s.releaseStalled(time.Now().Add(syncDeferMax))
	if j, ok := s.next(); !ok || !j.beside {
		t.Fatalf("after waiting syncDeferMax: %+v, %v; want it released to run beside", j, ok)
	}

	// The end of the room's last job queues what waited for it.
	if s.begin(get) {
		t.Fatal("a fetch job runs beside the room's running one")
	}
	s.end(first)
	check("the first job ended", 1, 0)
	if j, ok := s.next(); !ok || j != get || !s.begin(j) {
		t.Fatalf("after the first job ended: %+v, %v; want %+v to run", j, ok, get)
	}
}
