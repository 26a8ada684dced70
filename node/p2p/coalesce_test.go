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

// TestClaimPullCoalescesRoom (issue 16): while a pull of a room runs, the
// room's other pulls (sessions that found events to pull, fetches) wait
// for it, whichever peer they name, and are queued when it ends; a job
// that waited for a pull that received nothing for syncStall, or that
// waited syncDeferMax, pulls beside it. Other rooms are not held back.
func TestClaimPullCoalescesRoom(t *testing.T) {
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
	check := func(what string, wantQueued int) {
		t.Helper()
		if q, _ := s.Jobs(); q != wantQueued {
			t.Errorf("%s: %d queued, want %d", what, q, wantQueued)
		}
	}
	first := syncJob{room: roomA, peer: p1}
	if !s.claimPull(first) {
		t.Fatal("the first pull of a room waits")
	}
	second := syncJob{room: roomA, peer: p2}
	get := syncJob{room: roomA, peer: p1, get: string(roomA)}
	for _, j := range []syncJob{second, get, second} {
		if s.claimPull(j) {
			t.Fatalf("%+v pulls beside the room's running pull", j)
		}
	}
	check("two jobs wait for the room's first pull", 2)
	if !s.claimPull(syncJob{room: roomB, peer: p1}) {
		t.Fatal("another room's pull waits")
	}
	s.endPull(roomB)
	check("another room's pull ran", 2)

	s.releaseStalled(time.Now().Add(syncStall / 2))
	check("the first pull is not stalled yet", 2)
	s.progressed(roomA)
	s.releaseStalled(time.Now().Add(syncStall / 2))
	check("progress keeps them waiting", 2)
	s.releaseStalled(time.Now().Add(syncStall))
	// Released: queued for a worker (pending), marked to pull beside.
	if q, _ := s.Jobs(); q != 2 || len(s.pending) != 2 {
		t.Fatalf("after a stall: %d queued, %d pending; want both pending", q, len(s.pending))
	}
	for _, want := range []syncJob{second, get} {
		j, ok := s.next()
		want.beside = true
		if !ok || j != want {
			t.Fatalf("released %+v, want %+v", j, want)
		}
		if !s.claimPull(j) {
			t.Fatalf("released %+v waits again", j)
		}
	}
	s.endPull(roomA)
	s.endPull(roomA)

	// A job that waits syncDeferMax pulls beside, progress or not.
	if s.claimPull(second) {
		t.Fatal("a job pulls beside the room's running pull")
	}
	s.progressed(roomA)
	s.releaseStalled(time.Now().Add(syncDeferMax))
	if j, ok := s.next(); !ok || !j.beside {
		t.Fatalf("after waiting syncDeferMax: %+v, %v; want it released to pull beside", j, ok)
	}

	// The end of the room's last pull queues what waited for it.
	if s.claimPull(get) {
		t.Fatal("a fetch pulls beside the room's running pull")
	}
	s.endPull(roomA)
	check("the first pull ended", 1)
	if j, ok := s.next(); !ok || j != get || !s.claimPull(j) {
		t.Fatalf("after the first pull ended: %+v, %v; want %+v to pull", j, ok, get)
	}
	s.endPull(roomA)
	if q, _ := s.Jobs(); q != 0 || len(s.pulls) != 0 {
		t.Fatalf("%d queued, %d rooms pulling after every pull ended", q, len(s.pulls))
	}
}
