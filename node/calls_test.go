package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
)

// callItems drains the call lines (signals) and call timeline events a
// watcher holds after the engine has run everything queued.
func callItems(e *Engine, ch <-chan api.WatchItem) (sigs []api.CallSignal, evs []api.CallEvent) {
	e.do(context.Background(), func() error { return nil }) // flush
	for {
		select {
		case it := <-ch:
			if it.Kind == "call" && it.CallSignal != nil {
				sigs = append(sigs, *it.CallSignal)
			}
			if it.Event != nil && it.Event.Call != nil {
				evs = append(evs, *it.Event.Call)
			}
		default:
			return sigs, evs
		}
	}
}

// Call timeline events and signalling on engines over the bus: start,
// join, leave and end (with duration, or missed) on every member; signals
// reach only the device they are addressed to, and are ignored from a
// former member and from a blocked user.
func TestCallEventsAndSignals(t *testing.T) {
	for _, enc := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			b := newBus(t, 1, 4)
			room, id := b.contentRoom(enc)
			e0, e1, e2 := b.engines[0], b.engines[1], b.engines[2]
			ch1, stop1, err := e1.Watch(b.ctx, room)
			b.ok(err)
			defer stop1()
			ch2, stop2, err := e2.Watch(b.ctx, room)
			b.ok(err)
			defer stop2()

			dev1 := b.idents[1].Device.Public().String()
			// No signal goes to a device whose key this node does not know
			// (in an unencrypted room, one that has not joined a call).
			if _, _, err := e0.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: strings.Repeat("ab", 16), ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpOffer, SDP: "v=0"}); enc != (err == nil) {
				t.Fatalf("a signal to a device not yet in a call: %v", err)
			}

			c, err := e0.CallStart(b.ctx, api.CallStartReq{Room: room, Video: true})
			b.ok(err)
			if len(c.Call) != 32 {
				t.Fatalf("call ID %q", c.Call)
			}
			// The client starting again (a reloaded web app) gets the same
			// call and authors nothing; the daemon's own peer is refused.
			if again, err := e0.CallStart(b.ctx, api.CallStartReq{Room: room}); err != nil || again.Call != c.Call {
				t.Fatalf("second start on one device: %v %v", again, err)
			}
			b.ok2(e0.CallJoin(b.ctx, api.CallReq{Room: room, Call: c.Call}))
			if _, err := e0.callStart(b.ctx, api.CallStartReq{Room: room}, true); err == nil || !strings.Contains(err.Error(), "already in the call") {
				t.Fatalf("the daemon's peer joins where the client is: %v", err)
			}
			b.drain()
			if _, evs := callItems(e2, ch2); len(evs) != 1 || evs[0].Action != api.CallStart || evs[0].Call != c.Call || !evs[0].Video {
				t.Fatalf("node 2 watched %+v", evs)
			}
			// Starting where a call runs joins it.
			c1, err := e1.CallStart(b.ctx, api.CallStartReq{Room: room})
			b.ok(err)
			if c1.Call != c.Call {
				t.Fatalf("start joined %s, not the running %s", c1.Call, c.Call)
			}
			b.drain()
			// A signal of user 3, made while a member; it is kicked below.
			_, late, err := b.engines[3].CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: strings.Repeat("ab", 16), ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpOffer, SDP: "v=0 late"})
			b.ok(err)
			cs, err := e2.Calls(b.ctx, api.RoomReq{Room: room})
			b.ok(err)
			if len(cs.Calls) != 1 || len(cs.Calls[0].Participants) != 2 || cs.Calls[0].StartedBy != b.user(0) || !cs.Calls[0].Video {
				t.Fatalf("calls on node 2: %+v", cs)
			}

			// An offer to node 1's device reaches node 1 only.
			_, offer, err := e0.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: c.Call, ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpOffer, SDP: "v=0 offer"})
			b.ok(err)
			e1.Signal(b.ctx, id, offer)
			e2.Signal(b.ctx, id, offer)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 1 || sigs[0].Op != api.CallOpOffer || sigs[0].SDP != "v=0 offer" || sigs[0].FromUser != b.user(0) || sigs[0].FromDevice != b.idents[0].Device.Public().String() || sigs[0].Call != c.Call {
				t.Fatalf("node 1 got %+v", sigs)
			}
			if sigs, _ := callItems(e2, ch2); len(sigs) != 0 {
				t.Fatalf("node 2 got a signal for node 1: %+v", sigs)
			}
			// A signal altered after signing (or sealing) is dropped.
			bad := append([]byte(nil), offer...)
			bad[len(bad)/2] ^= 1
			e1.Signal(b.ctx, id, bad)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 0 {
				t.Fatalf("node 1 took an altered signal: %+v", sigs)
			}
			// Nothing of the signal is in clear, in any room: it is sealed
			// to node 1's device.
			for _, clear := range []string{"v=0 offer", c.Call} {
				cid, err := hex.DecodeString(clear)
				if bytes.Contains(offer, []byte(clear)) || (err == nil && bytes.Contains(offer, cid)) {
					t.Fatalf("%q in clear in the signal", clear)
				}
			}
			// The same user on another device: not delivered. (Node 0
			// learns that device's key from its offer.)
			other := b.idents[2].Device.Public().String()
			_, o2, err := e2.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: c.Call, ToUser: b.user(0), ToDevice: b.idents[0].Device.Public().String(), Op: api.CallOpOffer, SDP: "v=0 2"})
			b.ok(err)
			e0.Signal(b.ctx, id, o2)
			_, elsewhere, err := e0.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: c.Call, ToUser: b.user(1), ToDevice: other, Op: api.CallOpCandidate, Candidate: `{"candidate":""}`})
			b.ok(err)
			e1.Signal(b.ctx, id, elsewhere)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 0 {
				t.Fatalf("node 1 got a signal for another device: %+v", sigs)
			}
			// A blocked user's signal is ignored; unblocked, it comes.
			b.ok2(e1.SetBlocked(b.ctx, b.user(0), true))
			e1.Signal(b.ctx, id, offer)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 0 {
				t.Fatalf("node 1 took a blocked user's signal: %+v", sigs)
			}
			b.ok2(e1.SetBlocked(b.ctx, b.user(0), false))
			e1.Signal(b.ctx, id, offer)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 1 {
				t.Fatalf("node 1 got %d signals after unblocking", len(sigs))
			}
			// A former member's signal is ignored (while a member, it came).
			e1.Signal(b.ctx, id, late)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 1 {
				t.Fatalf("node 1 got %d signals of a member", len(sigs))
			}
			b.ok2(e0.Kick(b.ctx, api.RoomUserReq{Room: room, User: b.user(3)}))
			b.drain()
			e1.Signal(b.ctx, id, late)
			if sigs, _ := callItems(e1, ch1); len(sigs) != 0 {
				t.Fatalf("node 1 took a non-member's signal: %+v", sigs)
			}
			// Bad requests change nothing.
			for _, req := range []api.CallSignalReq{
				{Room: room, Call: "zz", ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpHangup},
				{Room: room, Call: c.Call, ToUser: b.user(1), ToDevice: dev1, Op: "dance"},
				{Room: room, Call: c.Call, ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpOffer},
				{Room: room, Call: c.Call, ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpDecline},
				{Room: room, Call: c.Call, ToUser: "bob", ToDevice: dev1, Op: api.CallOpHangup},
				{Room: room, Call: c.Call, ToUser: b.user(1), ToDevice: dev1, Op: api.CallOpOffer, SDP: strings.Repeat("x", maxCallSDP+1)},
			} {
				if _, _, err := e0.CallSignal(b.ctx, req); err == nil {
					t.Fatalf("signal %+v accepted", req)
				}
			}

			// Leaving: the last one out ends the call, with its duration.
			b.ok2(e1.CallLeave(b.ctx, api.CallReq{Room: room, Call: c.Call}))
			b.drain()
			b.ok2(e0.CallLeave(b.ctx, api.CallReq{Room: room, Call: c.Call}))
			b.drain()
			if cs, _ := e2.Calls(b.ctx, api.RoomReq{Room: room}); len(cs.Calls) != 0 {
				t.Fatalf("an ended call is listed: %+v", cs)
			}
			var actions []string
			var end *api.CallEvent
			h, err := e2.History(b.ctx, api.HistoryReq{Room: room})
			b.ok(err)
			for _, ev := range h.Events {
				if ev.Type == TypeCall {
					if ev.Call == nil {
						t.Fatalf("call event %s not read: %+v", ev.ID, ev)
					}
					actions = append(actions, ev.Call.Action)
					if ev.Call.Action == api.CallEnd {
						end = ev.Call
					}
				}
			}
			if strings.Join(actions, " ") != "start join leave leave end" || end.Missed {
				t.Fatalf("call events %v, end %+v", actions, end)
			}
			// A call nobody else joined ends missed.
			c2, err := e0.CallStart(b.ctx, api.CallStartReq{Room: room})
			b.ok(err)
			b.drain()
			if c2.Call == c.Call {
				t.Fatal("a new call reused the old ID")
			}
			// Declining tells the caller's device.
			ch0, stop0, err := e0.Watch(b.ctx, room)
			b.ok(err)
			defer stop0()
			_, dec, err := e1.CallDecline(b.ctx, api.CallReq{Room: room, Call: c2.Call})
			b.ok(err)
			e0.Signal(b.ctx, id, dec[0])
			if sigs, _ := callItems(e0, ch0); len(sigs) != 1 || sigs[0].Op != api.CallOpDecline {
				t.Fatalf("caller got %+v", sigs)
			}
			b.ok2(e0.CallLeave(b.ctx, api.CallReq{Room: room, Call: c2.Call}))
			b.drain()
			_, evs := callItems(e2, ch2)
			if n := len(evs); n == 0 || evs[n-1].Action != api.CallEnd || !evs[n-1].Missed || evs[n-1].Call != c2.Call {
				t.Fatalf("missed call: %+v", evs)
			}
			// The index rebuilt from the log says the same.
			e2.do(b.ctx, func() error { delete(e2.call.index, id); return nil })
			if cs, _ := e2.Calls(b.ctx, api.RoomReq{Room: room}); len(cs.Calls) != 0 {
				t.Fatalf("rebuilt index lists %+v", cs)
			}
			// A device that stopped while in a call (its daemon restarts:
			// no live call, no index) leaves it on its next look, and the
			// call ends.
			c3, err := e2.CallStart(b.ctx, api.CallStartReq{Room: room})
			b.ok(err)
			b.drain()
			if cs, _ := e0.Calls(b.ctx, api.RoomReq{Room: room}); len(cs.Calls) != 1 {
				t.Fatalf("calls on node 0: %+v", cs)
			}
			e2.do(b.ctx, func() error { e2.call = callsState{}; return nil })
			if cs, _ := e2.Calls(b.ctx, api.RoomReq{Room: room}); len(cs.Calls) != 0 {
				t.Fatalf("a call left behind is listed after the restart: %+v", cs)
			}
			b.drain()
			if _, evs := callItems(e0, ch0); len(evs) < 2 || evs[len(evs)-1].Action != api.CallEnd || evs[len(evs)-1].Call != c3.Call {
				t.Fatalf("node 0 saw %+v", evs)
			}
		})
	}
}

// Two nodes connected only through a blind host exchange offer, answer and
// candidates through the handler's path (seal, publish on the room's eph
// topic); the host stores no call ID, SDP or candidate in clear.
func TestCallSignalsThroughBlindHost(t *testing.T) {
	tn := newTestNet(t, 3) // 0: alice, 1: host, 2: bob
	tn.link(0, 1)
	tn.link(1, 2)
	ctx := tn.ctx
	alice, host, bob := tn.reps[0].Engine, tn.reps[1].Engine, tn.reps[2].Engine
	r, err := alice.CreateRoom(ctx, api.RoomCreateReq{Name: "calls"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := crdt.ParseID(r.Room)
	if _, err := host.TrackRoom(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Invite(ctx, api.RoomUserReq{Room: r.Room, User: tn.ids[2].User.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.TrackRoom(ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "bob has the room", func() (bool, string) {
		tn.reps[2].SyncNow(ctx)
		ok, _ := bob.HasRoomState(ctx, id)
		return ok, ""
	})
	if _, err := bob.Join(ctx, id); err != nil {
		t.Fatal(err)
	}
	wa, stopA, _ := alice.Watch(ctx, r.Room)
	defer stopA()
	wb, stopB, _ := bob.Watch(ctx, r.Room)
	defer stopB()
	var c api.CallResp
	eventually(t, convergeWithin, "alice starts a call", func() (bool, string) {
		c, err = alice.CallStart(ctx, api.CallStartReq{Room: r.Room})
		return err == nil, fmt.Sprint(err)
	})
	eventually(t, convergeWithin, "bob sees the call", func() (bool, string) {
		cs, _ := bob.Calls(ctx, api.RoomReq{Room: r.Room})
		return len(cs.Calls) == 1, fmt.Sprint(cs)
	})
	if _, err := bob.CallJoin(ctx, api.CallReq{Room: r.Room, Call: c.Call}); err != nil {
		t.Fatal(err)
	}
	aUser, aDev := tn.ids[0].User.String(), tn.ids[0].Device.Public().String()
	bUser, bDev := tn.ids[2].User.String(), tn.ids[2].Device.Public().String()
	sdpA, sdpB, cand := "v=0 PLAINTEXT-MARKER-offer", "v=0 PLAINTEXT-MARKER-answer", `{"candidate":"candidate:PLAINTEXT-MARKER-cand 1 udp 1 127.0.0.1 9 typ host"}`
	exchange := func(from *Engine, fromRep int, to <-chan api.WatchItem, req api.CallSignalReq) {
		var got []api.CallSignal
		eventually(t, convergeWithin, req.Op+" arrives", func() (bool, string) {
			// Re-sent each round: the topic's mesh forms after a heartbeat.
			if err := publishCallSignal(ctx, from, tn.reps[fromRep].Ephemeral(), req); err != nil {
				return false, err.Error()
			}
			for {
				select {
				case it := <-to:
					if it.CallSignal != nil && it.CallSignal.Op == req.Op {
						got = append(got, *it.CallSignal)
					}
					continue
				case <-time.After(200 * time.Millisecond):
				}
				break
			}
			return len(got) > 0, ""
		})
		if g := got[0]; g.SDP != req.SDP || g.Candidate != req.Candidate || g.Call != req.Call {
			t.Fatalf("%s arrived as %+v", req.Op, g)
		}
	}
	exchange(alice, 0, wb, api.CallSignalReq{Room: r.Room, Call: c.Call, ToUser: bUser, ToDevice: bDev, Op: api.CallOpOffer, SDP: sdpA})
	exchange(bob, 2, wa, api.CallSignalReq{Room: r.Room, Call: c.Call, ToUser: aUser, ToDevice: aDev, Op: api.CallOpAnswer, SDP: sdpB})
	exchange(bob, 2, wa, api.CallSignalReq{Room: r.Room, Call: c.Call, ToUser: aUser, ToDevice: aDev, Op: api.CallOpCandidate, Candidate: cand})
	exchange(alice, 0, wb, api.CallSignalReq{Room: r.Room, Call: c.Call, ToUser: bUser, ToDevice: bDev, Op: api.CallOpCandidate, Candidate: cand})
	eventually(t, convergeWithin, "host holds the call events", func() (bool, string) {
		h, _ := host.History(ctx, api.HistoryReq{Room: r.Room})
		n := 0
		for _, ev := range h.Events {
			if ev.Type == TypeCall {
				n++
				if ev.Call != nil || ev.Decrypted {
					t.Fatalf("host reads a call event: %+v", ev)
				}
			}
		}
		return n == 2, fmt.Sprint(n)
	})
	cid, _ := hex.DecodeString(c.Call)
	markers := [][]byte{cid, []byte("PLAINTEXT-MARKER")}
	st := tn.stores[1].(*crdt.MemStore)
	rs, _ := st.Rooms()
	for _, rid := range rs {
		st.Scan(rid, 0, func(s crdt.Stored) bool {
			for _, m := range markers {
				if bytes.Contains(s.Event.Body, m) || bytes.Contains(s.Event.Envelope, m) {
					t.Fatalf("host stored %q in clear (event type %s)", m, s.Event.Type)
				}
			}
			return true
		})
	}
	host.kr.local.ScanLocal(nil, func(k, v []byte) bool {
		for _, m := range markers {
			if bytes.Contains(v, m) {
				t.Fatalf("host holds %q in a local key", m)
			}
		}
		return true
	})
}

// Two participants who leave at once (each leave authored before the
// other's arrived) still end the call: the device that sorts first of those
// that left writes the end, exactly once, and every member sees it.
func TestCallBothLeaveAtOnce(t *testing.T) {
	for _, enc := range []bool{true, false} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			b := newBus(t, 1, 3)
			room, _ := b.contentRoom(enc)
			e0, e1, e2 := b.engines[0], b.engines[1], b.engines[2]
			ch2, stop2, err := e2.Watch(b.ctx, room)
			b.ok(err)
			defer stop2()
			c, err := e0.CallStart(b.ctx, api.CallStartReq{Room: room})
			b.ok(err)
			b.drain()
			b.ok2(e1.CallJoin(b.ctx, api.CallReq{Room: room, Call: c.Call}))
			b.drain()
			// Both leave before either hears of the other's leave.
			b.ok2(e0.CallLeave(b.ctx, api.CallReq{Room: room, Call: c.Call}))
			b.ok2(e1.CallLeave(b.ctx, api.CallReq{Room: room, Call: c.Call}))
			b.drain()
			b.drain()
			var ends []api.CallEvent
			_, evs := callItems(e2, ch2)
			for _, ev := range evs {
				if ev.Action == api.CallEnd {
					ends = append(ends, ev)
				}
			}
			if len(ends) != 1 || ends[0].Missed || ends[0].Call != c.Call {
				t.Fatalf("node 2 saw the ends %+v (all: %+v)", ends, evs)
			}
			for i, e := range b.engines[:3] {
				cs, err := e.Calls(b.ctx, api.RoomReq{Room: room})
				b.ok(err)
				if len(cs.Calls) != 0 {
					t.Fatalf("node %d still lists %+v", i, cs.Calls)
				}
			}
		})
	}
}

// TestCallDeclineAllDevices: a decline reaches the caller's device and
// every other device of the declining user, so that they stop ringing; a
// state signal (muted, camera off) reaches its device.
func TestCallDeclineAllDevices(t *testing.T) {
	b := newBus(t, 3, 2)
	room, id := b.newRoom("shared", 1)
	d := b.device(1)
	b.join(d, room)
	b.drain()
	e0, e1, ed := b.engines[0], b.engines[1], b.engines[d]
	chd, stopd, err := ed.Watch(b.ctx, room)
	b.ok(err)
	defer stopd()
	ch0, stop0, err := e0.Watch(b.ctx, room)
	b.ok(err)
	defer stop0()
	c, err := e0.CallStart(b.ctx, api.CallStartReq{Room: room, Video: true})
	b.ok(err)
	b.drain()
	_, out, err := e1.CallDecline(b.ctx, api.CallReq{Room: room, Call: c.Call})
	b.ok(err)
	if len(out) != 2 {
		t.Fatalf("%d decline signals, want 2 (the caller's device and the other device of the user)", len(out))
	}
	for _, data := range out {
		e0.Signal(b.ctx, id, data)
		ed.Signal(b.ctx, id, data)
	}
	for name, x := range map[string]struct {
		e  *Engine
		ch <-chan api.WatchItem
	}{"caller": {e0, ch0}, "other device": {ed, chd}} {
		if sigs, _ := callItems(x.e, x.ch); len(sigs) != 1 || sigs[0].Op != api.CallOpDecline || sigs[0].FromUser != b.user(1) || sigs[0].Call != c.Call {
			t.Fatalf("%s got %+v", name, sigs)
		}
	}
	// The other device accepts; a state signal tells the caller it is muted.
	b.ok2(ed.CallJoin(b.ctx, api.CallReq{Room: room, Call: c.Call}))
	b.drain()
	callItems(e0, ch0)
	_, st, err := ed.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: c.Call, ToUser: b.user(0), ToDevice: b.idents[0].Device.Public().String(), Op: api.CallOpState, Muted: true, VideoOff: true})
	b.ok(err)
	e0.Signal(b.ctx, id, st)
	if sigs, _ := callItems(e0, ch0); len(sigs) != 1 || sigs[0].Op != api.CallOpState || !sigs[0].Muted || !sigs[0].VideoOff {
		t.Fatalf("caller got %+v", sigs)
	}
	if _, _, err := ed.CallSignal(b.ctx, api.CallSignalReq{Room: room, Call: c.Call, ToUser: b.user(0), ToDevice: b.idents[0].Device.Public().String(), Op: api.CallOpHangup, Muted: true}); err == nil {
		t.Fatal("muted on a hangup accepted")
	}
}
