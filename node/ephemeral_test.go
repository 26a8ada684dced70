package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// Typing and presence reach the other members over the room's ephemeral
// topic, in plaintext and encrypted rooms; nothing is stored in the DAG.
func TestEphemeralDelivery(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			tn := newTestNet(t, 2)
			tn.link(0, 1)
			e0, e1 := tn.reps[0].Engine, tn.reps[1].Engine
			r, err := e0.CreateRoom(tn.ctx, api.RoomCreateReq{Name: "eph", Encrypted: &enc})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e0.Invite(tn.ctx, api.RoomUserReq{Room: r.Room, User: tn.ids[1].User.String()}); err != nil {
				t.Fatal(err)
			}
			id, err := e1.TrackRoom(tn.ctx, r.Room)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "room state", func() (bool, string) { ok, _ := e1.HasRoomState(tn.ctx, id); return ok, "" })
			if _, err := e1.Join(tn.ctx, id); err != nil {
				t.Fatal(err)
			}
			ch, stop, err := e1.Watch(tn.ctx, r.Room)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			seen := map[string]*api.Signal{}
			eventually(t, convergeWithin, "typing and presence at node 1", func() (bool, string) {
				// Re-sent each round: the topic's mesh forms after a heartbeat,
				// and node 0 may not hold the epoch key node 1's join needed yet.
				if _, data, err := e0.Typing(tn.ctx, api.TypingReq{Room: r.Room, On: true}); err == nil {
					tn.reps[0].Ephemeral().Publish(id, data)
				}
				if _, out, err := e0.SetPresence(tn.ctx, api.PresenceReq{Presence: PresenceAway}); err == nil {
					for room, data := range out {
						tn.reps[0].Ephemeral().Publish(room, data)
					}
				}
				for {
					select {
					case it := <-ch:
						if it.Signal != nil && it.Kind != "receipt" {
							seen[it.Kind] = it.Signal
						}
						continue
					default:
					}
					break
				}
				return seen["typing"] != nil && seen["presence"] != nil, fmt.Sprint(seen)
			})
			if s := seen["typing"]; s.User != tn.ids[0].User.String() || s.Typing == nil || !*s.Typing || s.ExpiresMS == 0 {
				t.Fatalf("typing %+v", s)
			}
			if s := seen["presence"]; s.Presence != PresenceAway || s.LastActiveMS == 0 {
				t.Fatalf("presence %+v", s)
			}
			p, err := e1.Presence(tn.ctx, api.UserReq{User: tn.ids[0].User.String()})
			if err != nil || p.Presence != PresenceAway {
				t.Fatalf("presence get: %+v %v", p, err)
			}
			for _, typ := range []string{"typing", "presence"} {
				if n := countType(tn, 1, id, typ); n != 0 {
					t.Fatalf("%d %s events stored", n, typ)
				}
			}
		})
	}
}

// Signals from blocked users, with a bad signature, from another room or
// switched off in settings are dropped (engines on the bus, signals handed
// over directly).
func TestEphemeralFiltered(t *testing.T) {
	b := newBus(t, 1, 3)
	room, id := b.contentRoom(true)
	_, data, err := b.engines[0].Typing(b.ctx, api.TypingReq{Room: room, On: true})
	b.ok(err)
	ch, stop, err := b.engines[1].Watch(b.ctx, room)
	b.ok(err)
	defer stop()
	got := func() int {
		n := 0
		b.engines[1].do(b.ctx, func() error { return nil }) // flush
		for {
			select {
			case it := <-ch:
				if it.Kind == "typing" {
					n++
				}
			default:
				return n
			}
		}
	}
	deliver := func(d []byte) int { b.engines[1].Signal(b.ctx, id, d); return got() }
	if n := deliver(data); n != 1 {
		t.Fatalf("a good signal gave %d lines", n)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)-3] ^= 1
	if n := deliver(bad); n != 0 {
		t.Fatal("a tampered signal was shown")
	}
	other, _ := b.contentRoom(true)
	otherID := mustID(t, other)
	b.engines[1].Signal(b.ctx, otherID, data)
	if n := got(); n != 0 {
		t.Fatal("a signal for another room was shown")
	}
	off := false
	b.ok2(b.engines[1].Settings(b.ctx, api.SettingsReq{Typing: &off}))
	if n := deliver(data); n != 0 {
		t.Fatal("typing shown while switched off")
	}
	on := true
	b.ok2(b.engines[1].Settings(b.ctx, api.SettingsReq{Typing: &on}))
	b.ok2(b.engines[1].SetBlocked(b.ctx, b.user(0), true))
	if n := deliver(data); n != 0 {
		t.Fatal("typing of a blocked user shown")
	}
	b.ok2(b.engines[1].SetBlocked(b.ctx, b.user(0), false))
	if n := deliver(data); n != 1 {
		t.Fatal("typing not shown after unblocking")
	}

	// Without a renewal, the typing lapses: watchers see it stop.
	b.engines[1].do(b.ctx, func() error { b.engines[1].eph.ttl = 50 * time.Millisecond; return nil })
	b.engines[1].Signal(b.ctx, id, data)
	deadline := time.After(10 * time.Second)
	for started := false; ; {
		select {
		case it := <-ch:
			if it.Kind == "typing" && *it.Signal.Typing {
				started = true
			}
			if it.Kind == "typing" && !*it.Signal.Typing && started {
				return
			}
		case <-deadline:
			t.Fatal("typing did not lapse")
		}
	}
}

func countType(tn *testNet, i int, room interface{ String() string }, typ string) int {
	h, err := tn.reps[i].Engine.History(tn.ctx, api.HistoryReq{Room: room.String()})
	if err != nil {
		tn.t.Fatal(err)
	}
	n := 0
	for _, ev := range h.Events {
		if ev.Type == typ {
			n++
		}
	}
	return n
}
