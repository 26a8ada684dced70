package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms/roomstest"
)

// hostileHost is a bare libp2p host in the test process, connected to d,
// that speaks only what the test makes it speak.
func hostileHost(t *testing.T, d *daemon) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	pi, err := peer.AddrInfoFromString(d.addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *pi); err != nil {
		t.Fatal(err)
	}
	return h
}

// forgedInvite is a validly signed invite of user to a new room of a
// fresh identity: all a stranger needs to send one.
func forgedInvite(t *testing.T, user, name string) []byte {
	t.Helper()
	target, err := crdt.ParseKey(user)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := roomstest.NewUser()
	if err != nil {
		t.Fatal(err)
	}
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

// pushInvite sends one invite frame over the invite protocol and reports
// whether the daemon took it.
func pushInvite(h host.Host, p peer.ID, frame []byte) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, p, p2p.InviteProtocol)
	if err != nil {
		return false, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(30 * time.Second))
	if err := msgio.NewVarintWriter(st).WriteMsg(frame); err != nil {
		return false, err
	}
	resp, err := msgio.NewVarintReaderSize(st, 1024).ReadMsg()
	if err != nil {
		return false, err
	}
	var ack struct {
		OK  bool   `cbor:"ok"`
		Err string `cbor:"err,omitempty"`
	}
	if err := crdt.UnmarshalCanonical(resp, &ack); err != nil {
		return false, err
	}
	return ack.OK, nil
}

// TestInviteFloodHostileClient: a hostile libp2p client pushes thousands
// of validly signed invites from fresh users at a real daemon, from one
// connection and then from many. The pending list stays bounded,
// 'parley invites' answers fast, an honest invite still arrives, shows in
// 'room list' as membership invite, and 'parley invites decline' drops it.
func TestInviteFloodHostileClient(t *testing.T) {
	v := startDaemon(t, "victim")
	a := startDaemon(t, "alice")
	pid, err := peer.Decode(v.peerID)
	if err != nil {
		t.Fatal(err)
	}
	h := hostileHost(t, v)
	const flood = 2000
	took := 0
	for i := range flood {
		ok, err := pushInvite(h, pid, forgedInvite(t, v.user, fmt.Sprintf("spam %d %s", i, strings.Repeat("x", 4000))))
		if err != nil {
			t.Fatalf("invite %d: %v", i, err)
		}
		if ok {
			took++
		}
	}
	for range 20 { // many connections, each with its own burst
		h := hostileHost(t, v)
		for range 40 {
			if _, err := pushInvite(h, pid, forgedInvite(t, v.user, "spam")); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	inv, err := invites(v)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("one connection: %d of %d invites taken; after %d more from 20 connections: %d pending, 'parley invites' took %v", took, flood, 20*40, len(inv), elapsed)
	if took > flood/10 {
		t.Errorf("one connection got %d of %d forged invites taken", took, flood)
	}
	if len(inv) > node.MaxPendingInvites {
		t.Errorf("%d invites pending, more than the cap %d", len(inv), node.MaxPendingInvites)
	}
	if elapsed > 5*time.Second {
		t.Errorf("'parley invites' took %v with %d pending", elapsed, len(inv))
	}
	for _, i := range inv {
		if len(i.Name) > node.MaxRoomName {
			t.Fatalf("a pending invite's name has %d bytes", len(i.Name))
		}
	}

	// An honest invite still arrives.
	v.must(nil, "connect", a.addr)
	var room api.RoomResp
	a.must(&room, "room", "create", "--name", "honest")
	a.must(nil, "room", "invite", room.Room, v.user)
	waitInvite(t, v, room.Room)
	var list api.RoomListResp
	v.must(&list, "room", "list")
	if !slices.Contains(list.Rooms, api.RoomSummary{Room: room.Room, Name: "honest", Membership: "invite"}) {
		t.Errorf("room list lacks the pending invite to %s: %+v", room.Room, list.Rooms)
	}
	v.must(nil, "invites", "decline", room.Room)
	inv, err = invites(v)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(inv, func(i api.Invite) bool { return i.Room == room.Room }) {
		t.Errorf("the invite to %s is still pending after decline", room.Room)
	}
	if r := v.run("", "invites", "decline", room.Room); r.code != 1 || !strings.HasPrefix(r.stderr, "parley: no pending invite") {
		t.Errorf("second decline: %v", r)
	}
}

// TestCreateRoomTooLongName: 'room create' with a 100 KB name fails with a
// clear message and leaves no room.
func TestCreateRoomTooLongName(t *testing.T) {
	d := startDaemon(t, "d")
	for _, plain := range []bool{false, true} {
		args := []string{"room", "create", "--name", strings.Repeat("x", 100_000)}
		if plain {
			args = append(args, "--plaintext")
		}
		r := d.run("", args...)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: room name of 100000 bytes is too long") {
			t.Errorf("room create with a 100 KB name: exit %d, stderr %.200q", r.code, r.stderr)
		}
	}
	noRooms(t, d, "failed creates")
}

// noRooms checks that d keeps no room after what.
func noRooms(t *testing.T, d *daemon, what string) {
	t.Helper()
	var list api.RoomListResp
	d.must(&list, "room", "list")
	if len(list.Rooms) != 0 {
		t.Errorf("%s left rooms: %+v", what, list.Rooms)
	}
}

// TestJoinDeadVia: a join through an address where nothing listens says
// that the address did not answer, and leaves no room.
func TestJoinDeadVia(t *testing.T) {
	d := startDaemon(t, "d")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	p, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, p)
	var room api.RoomResp
	startDaemon(t, "other").must(&room, "room", "create", "--public", "--name", "elsewhere")
	r := d.run("", "room", "join", room.Room, "--via", dead)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: "+dead+" did not answer") {
		t.Errorf("join with a dead --via: %v", r)
	}
	noRooms(t, d, "a failed join")
}

// TestSecondDaemon: a second daemon on a home where one runs says so, and
// the first keeps running.
func TestSecondDaemon(t *testing.T) {
	d := startDaemon(t, "d")
	r := runCLI(d.home, "", "daemon", "--no-mdns", "--no-dht", "--listen", "/ip4/127.0.0.1/tcp/0", "--api", "127.0.0.1:0")
	if want := "parley: a daemon already runs for " + d.home + "\n"; r.code != 1 || r.stderr != want {
		t.Errorf("second daemon: %v\nwant stderr %q", r, want)
	}
	d.must(nil, "id")
	d.stop()
}
