package node

import (
	"context"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// TestEngineOverRoomBase: an engine whose room starts as an overlay of a
// frozen base (a creator's room and 30 joins, as simulations preload them)
// holds and computes what an engine that loaded the same events from its
// store does, before and after it takes more events; another engine over
// the same base is unchanged by them.
func TestEngineOverRoomBase(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rng := mrand.NewChaCha8([32]byte{16})
	ident := func() *crdt.Identity {
		master, err := crdt.GenerateKey(rng)
		if err != nil {
			t.Fatal(err)
		}
		id, err := crdt.NewIdentity(master, rng)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	serve := func(e *Engine) *Engine {
		done := make(chan struct{})
		go func() { defer close(done); e.Serve(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return e
	}
	creator, err := NewEngine(ident(), crdt.NewMemStore(), "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	serve(creator)
	resp, err := creator.CreateRoom(ctx, api.RoomCreateReq{Name: "base", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := crdt.ParseID(resp.Room)
	var evs []*crdt.Event
	if err := creator.store.Scan(id, 0, func(s crdt.Stored) bool { evs = append(evs, s.Event); return true }); err != nil {
		t.Fatal(err)
	}
	l := crdt.NewLog(id, crdt.LogConfig{})
	r, err := rooms.New(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range l.Add(evs...).Accepted {
		r.Apply(ev)
	}
	var members []*crdt.Identity
	for i := range 30 {
		m := ident()
		skey := m.User.String()
		d := l.Prepare(m.Device.Public(), int64(1000+i), crdt.Draft{Type: rooms.TypeMember, StateKey: &skey, Body: rooms.Encode(rooms.MemberBody{Membership: rooms.Join})})
		d.Auth = r.AuthRefsAt(d.Prev, m.User, rooms.TypeMember, &skey)
		ev, err := crdt.Sign(m, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Add(ev).Accepted) != 1 {
			t.Fatalf("join %d not accepted", i)
		}
		r.Apply(ev)
		evs = append(evs, ev)
		members = append(members, m)
	}
	all := crdt.Batch{Room: id, AddHeads: l.Heads()}
	for _, ev := range evs {
		all.Events = append(all.Events, crdt.Stored{Event: ev, Status: crdt.StatusAccepted})
	}
	rb, err := NewRoomBase(l, r)
	if err != nil {
		t.Fatal(err)
	}
	shared, plain := crdt.NewMemStore(), crdt.NewMemStore()
	for _, s := range []*crdt.MemStore{shared, plain} {
		if err := s.Commit(all); err != nil {
			t.Fatal(err)
		}
	}
	shared.Freeze()
	bases := map[crdt.RoomID]*RoomBase{id: rb}
	over, err := newEngine(members[0], crdt.NewMemStoreOver(shared), "", quiet, KeyOptions{}, bases, false)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newEngine(members[1], crdt.NewMemStoreOver(shared), "", quiet, KeyOptions{}, bases, false)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := NewEngine(members[0], plain, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	short := crdt.NewMemStore() // lacks the joins
	if err := short.Commit(crdt.Batch{Room: id, Events: all.Events[:2]}); err != nil {
		t.Fatal(err)
	}
	if _, err := newEngine(members[2], short, "", quiet, KeyOptions{}, bases, false); err == nil {
		t.Fatal("an engine over a base loaded a store that lacks the base's events")
	}
	serve(over)
	serve(other)
	serve(ref)
	if d := engineSnapshot(t, over).diff(engineSnapshot(t, ref)); d != "" {
		t.Fatalf("loaded over the base:\n%s", d)
	}
	otherBefore := engineSnapshot(t, other)
	// the creator writes; both take the same events
	for i := range 3 {
		if _, err := creator.Send(ctx, api.SendReq{Room: id.String(), Text: "hello"}); err != nil {
			t.Fatal(err, i)
		}
	}
	var more []*crdt.Event
	if err := creator.store.Scan(id, 0, func(s crdt.Stored) bool {
		if !l.Has(s.Event.ID) {
			more = append(more, s.Event)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Engine{over, ref} {
		if err := e.Ingest(ctx, "", more); err != nil {
			t.Fatal(err)
		}
	}
	a, b := engineSnapshot(t, over), engineSnapshot(t, ref)
	if d := a.diff(b); d != "" {
		t.Fatalf("after more events:\n%s", d)
	}
	if a.Rooms[id].Len != len(evs)+len(more) {
		t.Fatalf("%d events held, want %d", a.Rooms[id].Len, len(evs)+len(more))
	}
	if d := engineSnapshot(t, other).diff(otherBefore); d != "" {
		t.Fatalf("another engine over the base changed:\n%s", d)
	}
}
