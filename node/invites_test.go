package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"golang.org/x/time/rate"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/roomstest"
)

// strangerInvite is a fresh user's invite frame of target to a new room.
func strangerInvite(t testing.TB, target crdt.UserID, name string) []byte {
	return inviteFrom(t, newIdent(t), target, name)
}

func newIdent(t testing.TB) *crdt.Identity {
	t.Helper()
	ident, err := roomstest.NewUser()
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

// inviteFrom is the invite frame of target to a new room of ident's.
func inviteFrom(t testing.TB, ident *crdt.Identity, target crdt.UserID, name string) []byte {
	t.Helper()
	create, invite, err := roomstest.Invite(ident, target, name, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	b, err := p2p.EncodeInvite(create, invite, "")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inviteAck is the answer to an invite frame (docs/protocol.md "Invites").
type inviteAck struct {
	OK  bool   `cbor:"ok"`
	Err string `cbor:"err,omitempty"`
}

// pushInvite sends one invite frame from h to p and returns the answer.
func pushInvite(ctx context.Context, h host.Host, p peer.ID, frame []byte) (inviteAck, error) {
	st, err := h.NewStream(ctx, p, p2p.InviteProtocol)
	if err != nil {
		return inviteAck{}, err
	}
	defer st.Close()
	if err := msgio.NewVarintWriter(st).WriteMsg(frame); err != nil {
		return inviteAck{}, err
	}
	resp, err := msgio.NewVarintReaderSize(st, 1024).ReadMsg()
	if err != nil {
		return inviteAck{}, err
	}
	var ack inviteAck
	return ack, crdt.UnmarshalCanonical(resp, &ack)
}

// hostile adds a bare mocknet host (no replica) connected to replica i.
func (tn *testNet) hostile(i int) host.Host {
	tn.t.Helper()
	h, err := tn.mn.GenPeer()
	if err != nil {
		tn.t.Fatal(err)
	}
	if _, err := tn.mn.LinkPeers(h.ID(), tn.reps[i].host.ID()); err != nil {
		tn.t.Fatal(err)
	}
	if _, err := tn.mn.ConnectPeers(h.ID(), tn.reps[i].host.ID()); err != nil {
		tn.t.Fatal(err)
	}
	return h
}

func pendingCount(t *testing.T, e *Engine) int {
	t.Helper()
	inv, err := e.Invites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(inv.Invites) + len(inv.Requests)
}

// TestInviteFlood: peers pushing thousands of validly signed invites from
// fresh users keep the pending list bounded (per-peer and per-user rate
// limits, a cap that strangers cannot push a contact's invite out of), the
// list stays fast to read, and a contact's and a late honest stranger's
// invites are still taken.
func TestInviteFlood(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	ctx := tn.ctx
	victim, me := tn.reps[1], tn.ids[1].User
	setupRoom(t, tn) // node 0's user becomes a contact of node 1's user
	room, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "from a contact"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.reps[0].Engine.Invite(ctx, api.RoomUserReq{Room: room.Room, User: me.String()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "contact's invite", func() (bool, string) { return pendingCount(t, victim.Engine) == 1, "" })

	// One user, many rooms, each from a fresh peer: the user's burst.
	spammer := newIdent(t)
	for range 50 {
		if _, err := pushInvite(ctx, tn.hostile(1), victim.host.ID(), inviteFrom(t, spammer, me, "spam")); err != nil {
			t.Fatal(err)
		}
	}
	if n := pendingCount(t, victim.Engine); n > 1+inviteUserBurst+2 {
		t.Fatalf("one user pushed 50 invites: %d pending, want at most %d", n, 1+inviteUserBurst+2)
	}
	h := tn.hostile(1)
	// One peer, many users: the peer's burst.
	refused := 0
	for range 1000 {
		ack, err := pushInvite(ctx, h, victim.host.ID(), strangerInvite(t, me, strings.Repeat("n", 10_000)))
		if err != nil {
			t.Fatal(err)
		}
		if !ack.OK {
			refused++
		}
	}
	n := pendingCount(t, victim.Engine)
	if max := 1 + inviteUserBurst + 2 + invitePeerBurst + 5; n > max || refused < 900 {
		t.Fatalf("one peer pushed 1000 invites: %d pending, %d refused; want at most %d pending", n, refused, max)
	}
	// Many peers, many users: the cap.
	for range 20 {
		h := tn.hostile(1)
		for range invitePeerBurst {
			if _, err := pushInvite(ctx, h, victim.host.ID(), strangerInvite(t, me, "spam")); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	inv, err := victim.Engine.Invites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("listing %d invites took %v", len(inv.Invites), took)
	}
	if len(inv.Invites)+len(inv.Requests) > MaxPendingInvites || len(inv.Requests) > MaxInviteRequests {
		t.Fatalf("%d invites and %d requests pending, caps %d and %d", len(inv.Invites), len(inv.Requests), MaxPendingInvites, MaxInviteRequests)
	}
	contact := false
	for _, i := range append(inv.Invites, inv.Requests...) {
		contact = contact || i.Room == room.Room
		if len(i.Name) > MaxRoomName {
			t.Fatalf("a pending invite's name has %d bytes", len(i.Name))
		}
	}
	if !contact {
		t.Fatal("strangers' invites pushed the contact's invite out")
	}
	// A late honest stranger from a fresh peer is still taken.
	ack, err := pushInvite(ctx, tn.hostile(1), victim.host.ID(), strangerInvite(t, me, "honest"))
	if err != nil || !ack.OK {
		t.Fatalf("honest invite after the flood: %+v %v", ack, err)
	}
	t.Logf("pending after the flood: %d (cap %d)", pendingCount(t, victim.Engine), MaxPendingInvites)
}

// TestInviteRequests: a stranger's invite waits among the requests, not in
// the inbox, and can be declined or accepted (joined); one stranger files
// requestUserBurst requests and the rest are dropped and counted; the box
// keeps at most MaxInviteRequests (the newest); once the two users share a
// room, an invite goes to the inbox.
func TestInviteRequests(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	ctx := tn.ctx
	e, me := tn.reps[1].Engine, tn.ids[1].User
	boxes := func() api.InvitesResp {
		t.Helper()
		inv, err := e.Invites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	// A stranger (node 0's user shares no room with node 1's yet).
	room, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "from a stranger"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.reps[0].Engine.Invite(ctx, api.RoomUserReq{Room: room.Room, User: me.String()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the stranger's invite among the requests", func() (bool, string) {
		inv := boxes()
		return len(inv.Requests) == 1 && inv.Requests[0].Room == room.Room && len(inv.Invites) == 0, fmt.Sprint(inv)
	})
	// Accepting a request is joining the room.
	rid, err := e.TrackRoom(ctx, room.Room)
	if err != nil {
		t.Fatal(err)
	}
	tn.reps[1].SyncNow(ctx)
	eventually(t, 60*time.Second, "join the requested room", func() (bool, string) {
		_, err := e.Join(ctx, rid)
		return err == nil, fmt.Sprint(err)
	})
	if inv := boxes(); len(inv.Requests)+len(inv.Invites) != 0 {
		t.Fatalf("after joining: %+v", inv)
	}
	// Now they share a room: the next invite is in the inbox.
	room2, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "from a contact"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "node 1 sees node 0's user joined", func() (bool, string) {
		var ok bool
		err := e.do(ctx, func() error { ok = e.knows(tn.ids[0].User); return nil })
		return ok && err == nil, fmt.Sprint(err)
	})
	if _, err := tn.reps[0].Engine.Invite(ctx, api.RoomUserReq{Room: room2.Room, User: me.String()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "the contact's invite in the inbox", func() (bool, string) {
		inv := boxes()
		return len(inv.Invites) == 1 && inv.Invites[0].Room == room2.Room && len(inv.Requests) == 0, fmt.Sprint(inv)
	})

	// One stranger, five rooms: requestUserBurst taken, the rest dropped.
	spammer := newIdent(t)
	h := tn.hostile(1)
	refused := 0
	for range inviteUserBurst {
		ack, err := pushInvite(ctx, h, tn.reps[1].host.ID(), inviteFrom(t, spammer, me, "spam"))
		if err != nil {
			t.Fatal(err)
		}
		if !ack.OK {
			refused++
		}
	}
	inv := boxes()
	if want := inviteUserBurst - requestUserBurst; len(inv.Requests) != requestUserBurst || refused != want || inv.RequestsDropped != uint64(want) {
		t.Fatalf("one stranger filed %d: %d requests kept, %d refused, %d counted dropped; want %d, %d, %d",
			inviteUserBurst, len(inv.Requests), refused, inv.RequestsDropped, requestUserBurst, want, want)
	}
	// Declining a request forgets it.
	if _, err := e.Decline(ctx, api.RoomReq{Room: inv.Requests[0].Room}); err != nil {
		t.Fatal(err)
	}
	if got := boxes(); len(got.Requests) != requestUserBurst-1 {
		t.Fatalf("after declining one request: %+v", got)
	}

	// Many strangers: the box keeps the newest MaxInviteRequests, and the
	// contact's invite stays.
	var last string
	for p := 0; p*invitePeerBurst < MaxInviteRequests+10; p++ {
		h := tn.hostile(1)
		for range invitePeerBurst {
			ack, err := pushInvite(ctx, h, tn.reps[1].host.ID(), strangerInvite(t, me, "many"))
			if err != nil || !ack.OK {
				t.Fatalf("a fresh stranger's request: %+v %v", ack, err)
			}
			var req api.InvitesResp
			if req = boxes(); len(req.Requests) > 0 {
				last = req.Requests[len(req.Requests)-1].Room
			}
		}
	}
	inv = boxes()
	if len(inv.Requests) != MaxInviteRequests || inv.Requests[len(inv.Requests)-1].Room != last || len(inv.Invites) != 1 {
		t.Fatalf("after %d strangers: %d requests (cap %d), %d invites", MaxInviteRequests+10, len(inv.Requests), MaxInviteRequests, len(inv.Invites))
	}
}

// TestInviteDeclineAndRoomList: a pending invite shows in room list with
// membership "invite" until it is declined; declining an unknown one is a
// 404.
func TestInviteDeclineAndRoomList(t *testing.T) {
	tn := newTestNet(t, 2)
	tn.link(0, 1)
	ctx := tn.ctx
	room, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "club"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.reps[0].Engine.Invite(ctx, api.RoomUserReq{Room: room.Room, User: tn.ids[1].User.String()}); err != nil {
		t.Fatal(err)
	}
	e := tn.reps[1].Engine
	eventually(t, 20*time.Second, "invite", func() (bool, string) { return pendingCount(t, e) == 1, "" })
	list, err := e.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Rooms) != 1 || list.Rooms[0] != (api.RoomSummary{Room: room.Room, Name: "club", Membership: rooms.Invite}) {
		t.Fatalf("room list: %+v", list.Rooms)
	}
	if r, err := e.Decline(ctx, api.RoomReq{Room: room.Room}); err != nil || r.Room != room.Room {
		t.Fatalf("decline: %+v %v", r, err)
	}
	if n := pendingCount(t, e); n != 0 {
		t.Fatalf("%d invites pending after decline", n)
	}
	if list, _ := e.Rooms(ctx); len(list.Rooms) != 0 {
		t.Fatalf("room list after decline: %+v", list.Rooms)
	}
	if _, err := e.Decline(ctx, api.RoomReq{Room: room.Room}); KindOf(err) != api.KindNotFound {
		t.Fatalf("second decline: %v (kind %s)", err, KindOf(err))
	}
}

// TestInvitesMoveOutOfPrefs: invites an older version kept in prefs.json
// are moved to the local store on load and stay after a restart.
func TestInvitesMoveOutOfPrefs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prefs.json")
	var b strings.Builder
	b.WriteString(`{"invite_policy":"anyone","invites":[`)
	for i := range 3 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"room":"room%d","inviter":"someone","name":"old %d"}`, i, i)
	}
	b.WriteString(`]}`)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	master, _ := crdt.GenerateKey(rand.Reader)
	ident, _ := crdt.NewIdentity(master, rand.Reader)
	local := NewMemLocal()
	for range 2 { // load, then load again ("restart")
		e, err := NewEngineWith(ident, crdt.NewMemStore(), path, slog.New(slog.DiscardHandler), KeyOptions{Local: local})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(e.inv.list()); got != 3 {
			t.Fatalf("%d invites after load, want 3", got)
		}
		if raw, _ := os.ReadFile(path); strings.Contains(string(raw), "room0") {
			t.Fatalf("prefs.json still holds invites: %s", raw)
		}
	}
}

// FuzzInviteFrame feeds arbitrary invite frames to the invite protocol's
// receiver (rate limits off, so every frame is parsed) on a live engine:
// it never crashes, and the pending list stays within its cap and its name
// bound.
func FuzzInviteFrame(f *testing.F) {
	tn := newTestNet(&testing.T{}, 1)
	defer tn.close()
	e := tn.reps[0].Engine
	me := tn.ids[0].User
	f.Add(strangerInvite(f, me, "a room"))
	f.Add(strangerInvite(f, me, strings.Repeat("é", 300)))
	f.Add(strangerInvite(f, newIdent(f).User, "for another user"))
	valid := strangerInvite(f, me, "")
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{0xa2, 0x66, 'c', 'r', 'e', 'a', 't', 'e', 0x40, 0x66, 'i', 'n', 'v', 'i', 't', 'e', 0x40})
	f.Add([]byte{})
	create, invite, err := roomstest.Invite(newIdent(f), me, "with addresses", time.Now().UnixMilli())
	if err != nil {
		f.Fatal(err)
	}
	withAddrs, err := p2p.EncodeInvite(create, invite, "", "/ip4/11.77.0.2/tcp/4001/p2p/12D3KooWEmWVwtxCDQDF86LUL5UyEL81Ag394ZY6nXt88rgYVJgj/p2p-circuit/p2p/12D3KooWSvjzLqnWtUrstEmwDmjoUDBcdfMpZgBjuNdpn3nD4rJr", "not an address")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(withAddrs)
	h, err := tn.mn.GenPeer()
	if err != nil {
		f.Fatal(err)
	}
	unlimited := p2p.InviteLimits{Frame: rate.Inf, FrameBurst: 1, Peer: rate.Inf, PeerBurst: 1, User: rate.Inf, UserBurst: 1}
	iv := p2p.NewInviter(h, e, me, func() []string { return nil }, unlimited, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, b []byte) {
		iv.Receive(b, peer.ID("fuzz"))
		inv, err := e.Invites(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Invites)+len(inv.Requests) > MaxPendingInvites || len(inv.Requests) > MaxInviteRequests {
			t.Fatalf("%d invites and %d requests pending", len(inv.Invites), len(inv.Requests))
		}
		for _, i := range append(inv.Invites, inv.Requests...) {
			if len(i.Name) > MaxRoomName || !utf8.ValidString(i.Name) {
				t.Fatalf("pending invite name %q", i.Name)
			}
			id, _ := crdt.ParseID(i.Room)
			if via, _ := e.InviteVia(context.Background(), id); len(via) > 0 {
				t.Fatalf("an invite from peer %q keeps addresses of another peer: %q", "fuzz", via)
			}
		}
	})
}
