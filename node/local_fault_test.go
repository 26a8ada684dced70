package node

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/faultstore"
	"github.com/parley-p2p/parley/rooms/e2ee"
	"github.com/parley-p2p/parley/rooms/roomstest"
)

// TestLocalAuthoringFailureChangesNothing fails, for each kind of local
// authoring, the 1st, 2nd, ... commit the command makes until the command
// succeeds: every failing attempt must return an error and leave the
// engine exactly as before (rooms, log heads and held set, room state and
// timeline, epoch keys held, key bookkeeping, preferences, pending local
// writes, the store's heads) and publish, track and invite nothing. Each
// command is one batch per room now, so only its 1st commit can fail;
// before local authoring went through the Ready a room create committed
// four batches, and failing a later one left the create event in the
// store and the room unhosted in the preferences; a kick or a send that
// rotated kept the new epoch key when its commit failed; a join whose
// commit failed had deleted its pending invite. The same holds when the
// epoch secret cannot be written ahead.
func TestLocalAuthoringFailureChangesNothing(t *testing.T) {
	w := newScriptWorld(t)
	defer w.close()
	for _, name := range []string{"alice", "bob", "carol"} {
		w.newNode(name, name, scriptKey(t, "master "+name))
	}
	w.newNode("alice2", "alice", w.nodes["alice"].master)
	a, b, a2, c := w.nodes["alice"], w.nodes["bob"], w.nodes["alice2"], w.nodes["carol"]
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	deliver := func(from, to *scriptNode) { // everything again: a room may be new to the receiver
		t.Helper()
		ok(to.e.Ingest(ctx, "", from.pub))
	}
	join := func(n *scriptNode, room crdt.RoomID, inviter *scriptNode) {
		t.Helper()
		_, err := n.e.TrackRoom(ctx, room.String())
		ok(err)
		deliver(inviter, n)
		_, err = n.e.Join(ctx, room)
		ok(err)
		deliver(n, inviter)
	}
	enc, plain := true, false
	r, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Encrypted: &enc})
	ok(err)
	p, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "p", Encrypted: &plain})
	ok(err)
	rid, _ := crdt.ParseID(r.Room)
	pid, _ := crdt.ParseID(p.Room)
	for _, room := range []string{r.Room, p.Room} {
		_, err = a.e.Invite(ctx, api.RoomUserReq{Room: room, User: b.ident.User.String()})
		ok(err)
	}
	join(b, rid, a)
	join(b, pid, a)
	join(a2, rid, a)
	deliver(b, a)
	q, err := b.e.CreateRoom(ctx, api.RoomCreateReq{Name: "q", Encrypted: &plain})
	ok(err)
	qid, _ := crdt.ParseID(q.Room)
	_, err = b.e.Invite(ctx, api.RoomUserReq{Room: q.Room, User: a.ident.User.String()})
	ok(err)
	qin := b.inv[qid]
	ok(a.e.ReceiveInvite(ctx, qin.Create, qin.Invite, qin.Name, "", nil)) // a failed join keeps it
	_, err = a.e.TrackRoom(ctx, q.Room)
	ok(err)
	deliver(b, a)
	m, err := a.e.Send(ctx, api.SendReq{Room: r.Room, Text: "first"})
	ok(err)

	var lastEvent string
	event := func(resp api.EventResp, err error) error { lastEvent = resp.Event; return err }
	cases := []struct {
		name string
		keys bool // fail the epoch secret's write ahead instead of a commit
		op   func() error
	}{
		{"create plain room", false, func() error {
			_, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "x", Encrypted: &plain})
			return err
		}},
		{"create encrypted room", false, func() error {
			_, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "y", Topic: "t", Encrypted: &enc})
			return err
		}},
		{"create encrypted room, secret", true, func() error {
			_, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "z", Encrypted: &enc})
			return err
		}},
		{"create DM", false, func() error {
			_, err := a.e.CreateDM(ctx, c.ident.User)
			return err
		}},
		{"send encrypted", false, func() error { return event(a.e.Send(ctx, api.SendReq{Room: r.Room, Text: "hello"})) }},
		{"send plain", false, func() error { return event(a.e.Send(ctx, api.SendReq{Room: p.Room, Text: "hello"})) }},
		{"edit", false, func() error {
			return event(a.e.Edit(ctx, api.EditReq{Room: r.Room, Event: m.Event, Text: "first, edited"}))
		}},
		{"react", false, func() error {
			return event(a.e.React(ctx, api.ReactReq{Room: r.Room, Event: m.Event, Key: "+1"}))
		}},
		{"redact", false, func() error {
			return event(a.e.Redact(ctx, api.RedactReq{Room: p.Room, Event: lastSent(a, pid)}))
		}},
		{"room name", false, func() error {
			name := "renamed"
			return event(a.e.SetRoom(ctx, api.RoomSetReq{Room: r.Room, Name: &name}))
		}},
		{"role", false, func() error {
			return event(a.e.Role(ctx, api.RoleReq{Room: p.Room, User: b.ident.User.String(), Role: "moderator"}))
		}},
		{"invite", false, func() error {
			return event(a.e.Invite(ctx, api.RoomUserReq{Room: r.Room, User: c.ident.User.String()}))
		}},
		{"join", false, func() error {
			_, err := a.e.Join(ctx, qid)
			return err
		}},
		{"leave", false, func() error { return event(a.e.Leave(ctx, api.RoomReq{Room: q.Room})) }},
		{"revoke device, secret", true, func() error {
			_, err := a.e.RevokeDevice(ctx, a2.ident.Device.Public())
			return err
		}},
		{"kick with rotation, secret", true, func() error {
			return event(a.e.Kick(ctx, api.RoomUserReq{Room: r.Room, User: b.ident.User.String()}))
		}},
		{"ban", false, func() error {
			return event(a.e.Ban(ctx, api.RoomUserReq{Room: p.Room, User: b.ident.User.String()}))
		}},
	}
	for _, cs := range cases {
		attempts := 0
		for n := 1; ; n++ {
			before := engineSnapshot(t, a.e)
			pub, faults := len(a.pub), len(a.fs.Faults())
			a.out, a.writes = nil, nil
			var inj faultstore.Injector = faultstore.NthCommit(a.fs.Commits() + n)
			if cs.keys {
				inj = faultstore.LocalPrefix([]byte("k/"))
			}
			a.fs.Inject(inj)
			err := cs.op()
			a.fs.Inject(nil)
			if len(a.fs.Faults()) == faults { // the command made fewer than n commits: done
				if err != nil {
					t.Fatalf("%s: %v", cs.name, err)
				}
				if len(a.pub) == pub {
					t.Fatalf("%s: succeeded but published nothing", cs.name)
				}
				break
			}
			attempts++
			if err == nil {
				t.Fatalf("%s, %s: no error", cs.name, inj)
			}
			if diff := before.diff(engineSnapshot(t, a.e)); diff != "" {
				t.Fatalf("%s, %s (%v): the engine changed:\n%s", cs.name, inj, err, diff)
			}
			if len(a.pub) != pub {
				t.Fatalf("%s, %s: published %d events", cs.name, inj, len(a.pub)-pub)
			}
			for _, l := range a.out {
				if f := strings.Fields(l); len(f) > 0 && slices.Contains([]string{"publish", "track", "invite", "heads", "commit", "watch", "timer"}, f[0]) {
					t.Fatalf("%s, %s: the failed step left %q", cs.name, inj, l)
				}
			}
			if cs.keys {
				cs.keys = false // then the same command with its commit failing, then succeeding
				n = 0
			}
		}
		if attempts == 0 {
			t.Fatalf("%s: no fault fired", cs.name)
		}
		t.Logf("%s: %d failed attempts, then %s", cs.name, attempts, lastEvent)
		deliver(a, b)
		deliver(a, a2)
	}
}

// lastSent is the last message a node published in a room.
func lastSent(n *scriptNode, room crdt.RoomID) string {
	for i := len(n.pub) - 1; i >= 0; i-- {
		if ev := n.pub[i]; ev.Room == room && ev.Type == "message" {
			return ev.ID.String()
		}
	}
	return ""
}

// engineState is what TestLocalAuthoringFailureChangesNothing compares.
type engineState struct {
	Rooms      map[crdt.RoomID]roomState
	Prefs      string
	Invites    string
	Unpurged   int
	Rekey      int
	RetryAt    time.Time
	StoreRooms []crdt.RoomID
}

type roomState struct {
	Heads, StoreHeads     []crdt.EventID
	Len, Pending, Missing int
	RoomLen               int
	State, History        string
	Epochs                []e2ee.EpochID
	Dirty, Profile        bool
	HealAt                time.Time
	Waiting               int
}

func engineSnapshot(t *testing.T, e *Engine) engineState {
	t.Helper()
	var s engineState
	err := e.do(context.Background(), func() error {
		s.Rooms = map[crdt.RoomID]roomState{}
		for id, rc := range e.rooms {
			rs := roomState{Heads: rc.log.Heads(), Len: rc.log.Len(), Pending: rc.log.Pending(), Missing: rc.log.MissingCount(),
				Epochs: e.kr.keys.Epochs(id), Dirty: rc.keys.dirty, Profile: rc.keys.profile, HealAt: rc.keys.healAt, Waiting: len(rc.keys.waiting)}
			rs.StoreHeads, _ = e.store.Heads(id)
			if rc.room != nil {
				rs.RoomLen = rc.room.Len()
				st, _ := json.Marshal(e.stateOf(rc))
				rs.State = string(st)
				h, err := e.history(id, rc, api.HistoryReq{Room: id.String()})
				if err != nil {
					return err
				}
				hb, _ := json.Marshal(h)
				rs.History = string(hb)
			}
			s.Rooms[id] = rs
		}
		pb, _ := json.Marshal(e.prefs)
		s.Prefs = string(pb)
		ib, _ := json.Marshal(e.inv.list())
		s.Invites = string(ib)
		s.Unpurged, s.Rekey, s.RetryAt = len(e.unpurged), len(e.rekey), e.retryAt
		var err error
		s.StoreRooms, err = e.store.Rooms()
		slices.Sort(s.StoreRooms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// diff names what differs between two snapshots.
func (s engineState) diff(o engineState) string {
	var out []string
	for id, rs := range s.Rooms {
		ro, ok := o.Rooms[id]
		if !ok {
			out = append(out, fmt.Sprintf("room %s dropped", id))
			continue
		}
		va, vb := reflect.ValueOf(rs), reflect.ValueOf(ro)
		for i := range va.NumField() {
			if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
				out = append(out, fmt.Sprintf("room %s: %s: %v != %v", id, va.Type().Field(i).Name, va.Field(i).Interface(), vb.Field(i).Interface()))
			}
		}
	}
	for id := range o.Rooms {
		if _, ok := s.Rooms[id]; !ok {
			out = append(out, fmt.Sprintf("room %s added", id))
		}
	}
	s.Rooms, o.Rooms = nil, nil
	if !reflect.DeepEqual(s, o) {
		out = append(out, fmt.Sprintf("engine: %+v != %+v", s, o))
	}
	return strings.Join(out, "\n")
}

// TestInviteBookWriteFailure fails the invite book's writes (Ready.Book):
// a refused write of a new invite returns an error and changes nothing (no
// invite listed, none displaced, no watch item), a refused decline keeps
// the invite, a refused delete after a join is retried at the room's next
// commit, and the book survives a restart. Before the book's writes went
// through the Ready, a new request displaced the oldest before its own
// write failed, so a failed write lost an invite.
func TestInviteBookWriteFailure(t *testing.T) {
	w := newScriptWorld(t)
	defer w.close()
	w.newNode("alice", "alice", scriptKey(t, "master alice"))
	w.newNode("bob", "bob", scriptKey(t, "master bob"))
	a, b := w.nodes["alice"], w.nodes["bob"]
	ctx := context.Background()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.e.Watch(ctx, ""); err != nil {
		t.Fatal(err)
	}
	pending := func(e *Engine) (invites, requests []string) {
		t.Helper()
		inv, err := e.Invites(ctx)
		ok(err)
		for _, i := range inv.Invites {
			invites = append(invites, i.Room)
		}
		for _, i := range inv.Requests {
			requests = append(requests, i.Room)
		}
		return invites, requests
	}
	failing := func(n *scriptNode, inj faultstore.Injector, op func() error) error {
		t.Helper()
		before := engineSnapshot(t, n.e)
		n.out = nil
		faults := len(n.fs.Faults())
		n.fs.Inject(inj)
		err := op()
		n.fs.Inject(nil)
		if len(n.fs.Faults()) == faults {
			t.Fatal("no fault fired")
		}
		if diff := before.diff(engineSnapshot(t, n.e)); diff != "" {
			if len(diff) > 2000 {
				diff = diff[:2000] + "..."
			}
			t.Fatalf("a failed invite write changed the engine (%v):\n%s", err, diff)
		}
		for _, l := range n.out {
			if strings.Contains(l, "watch") {
				t.Fatalf("a failed invite write left %q", l)
			}
		}
		return err
	}

	// Strangers fill the requests box; one more whose own write fails
	// displaces nothing.
	var first string
	for i := range MaxInviteRequests {
		create, invite, err := roomstest.Invite(newIdent(t), b.ident.User, fmt.Sprint("request ", i), int64(i+1))
		ok(err)
		ok(b.e.ReceiveInvite(ctx, create, invite, "", "", nil))
		if i == 0 {
			first = create.ID.String()
		}
	}
	create, invite, err := roomstest.Invite(newIdent(t), b.ident.User, "one too many", 1000)
	ok(err)
	if err := failing(b, faultstore.LocalPrefix(inviteKey(create.ID.String())), func() error { return b.e.ReceiveInvite(ctx, create, invite, "", "", nil) }); err == nil {
		t.Fatal("a refused invite write: no error")
	}
	if _, req := pending(b.e); len(req) != MaxInviteRequests || !slices.Contains(req, first) || slices.Contains(req, create.ID.String()) {
		t.Fatalf("after a refused request: %d requests, oldest kept %v", len(req), slices.Contains(req, first))
	}
	ok(b.e.ReceiveInvite(ctx, create, invite, "", "", nil))
	if _, req := pending(b.e); len(req) != MaxInviteRequests || slices.Contains(req, first) || !slices.Contains(req, create.ID.String()) {
		t.Fatalf("after a request: %d requests, oldest kept %v", len(req), slices.Contains(req, first))
	}

	// An invite from a contact (a user who shares a joined room with bob):
	// refused, then taken and announced.
	plain := false
	first2, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "first", Encrypted: &plain})
	ok(err)
	fid, _ := crdt.ParseID(first2.Room)
	_, err = a.e.Invite(ctx, api.RoomUserReq{Room: first2.Room, User: b.ident.User.String()})
	ok(err)
	_, err = b.e.TrackRoom(ctx, first2.Room)
	ok(err)
	ok(b.e.Ingest(ctx, "", a.pub))
	_, err = b.e.Join(ctx, fid)
	ok(err)
	shared, err := a.e.CreateRoom(ctx, api.RoomCreateReq{Name: "shared", Encrypted: &plain})
	ok(err)
	sid, _ := crdt.ParseID(shared.Room)
	_, err = a.e.Invite(ctx, api.RoomUserReq{Room: shared.Room, User: b.ident.User.String()})
	ok(err)
	in := a.inv[sid]
	all := faultstore.LocalPrefix([]byte(inviteKeyPrefix))
	if err := failing(b, all, func() error { return b.e.ReceiveInvite(ctx, in.Create, in.Invite, in.Name, "", nil) }); err == nil {
		t.Fatal("a refused invite write: no error")
	}
	b.out = nil
	ok(b.e.ReceiveInvite(ctx, in.Create, in.Invite, in.Name, "", nil))
	if !slices.Contains(b.out, "  watch <new>: invite") {
		t.Fatalf("the stored invite was not announced: %q", b.out)
	}
	// A refused decline keeps the invite.
	if err := failing(b, all, func() error { _, err := b.e.Decline(ctx, api.RoomReq{Room: shared.Room}); return err }); err == nil {
		t.Fatal("a refused decline: no error")
	}

	// The book survives a restart.
	restart := func() {
		t.Helper()
		b.cancel()
		<-b.done
		e, err := NewEngineWith(b.ident, b.fs, "", slog.New(slog.DiscardHandler), KeyOptions{Seed: 2, Rand: mrand.NewChaCha8([32]byte{2})})
		ok(err)
		e.now = func() time.Time { return w.now }
		e.noTimers = true
		e.onReady = func(rd *Ready) { w.record(b, rd) }
		ctx, cancel := context.WithCancel(context.Background())
		b.e, b.cancel, b.done = e, cancel, make(chan struct{})
		go func() { defer close(b.done); e.Serve(ctx) }()
	}
	restart()
	if inv, req := pending(b.e); !slices.Equal(inv, []string{shared.Room}) || len(req) != MaxInviteRequests || slices.Contains(req, first) {
		t.Fatalf("after a restart: invites %v, %d requests", inv, len(req))
	}

	// Joining: the invite's delete fails (the join stands), and is done at
	// the room's next commit.
	_, err = b.e.TrackRoom(ctx, shared.Room)
	ok(err)
	ok(b.e.Ingest(ctx, "", a.pub))
	b.fs.Inject(faultstore.LocalPrefix(inviteKey(shared.Room)))
	_, err = b.e.Join(ctx, sid)
	b.fs.Inject(nil)
	ok(err)
	if len(b.fs.Faults()) == 0 {
		t.Fatal("no fault fired")
	}
	held := func() bool {
		var held bool
		ok(b.e.do(ctx, func() error { held = b.e.inv.byID[shared.Room] != nil; return nil }))
		return held
	}
	if inv, _ := pending(b.e); len(inv) != 0 || !held() {
		t.Fatalf("after a join whose invite delete failed: listed %v, held %v", inv, held())
	}
	_, err = b.e.Send(ctx, api.SendReq{Room: shared.Room, Text: "hello"})
	ok(err)
	if held() {
		t.Fatal("the invite to a joined room is held after its next commit")
	}
	restart()
	if held() {
		t.Fatal("the invite to a joined room is back after a restart")
	}
}
