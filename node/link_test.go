package node

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Device linking and verification (docs/protocol.md §8, docs/design.md
// §5.4 d, e and §5.6 C22).

// addNode starts a replica for ident on tn and returns its index.
func (tn *testNet) addNode(ident *crdt.Identity) int {
	tn.ids = append(tn.ids, ident)
	tn.stores = append(tn.stores, crdt.NewMemStore())
	tn.reps = append(tn.reps, nil)
	tn.cancel = append(tn.cancel, nil)
	i := len(tn.ids) - 1
	tn.start(i)
	return i
}

func newUser(t *testing.T) (*crdt.SecretKey, *crdt.Identity) {
	t.Helper()
	master, err := crdt.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := crdt.NewIdentity(master, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return master, ident
}

// newDeviceHost makes a device key and its mocknet host (not yet running a
// replica), and the KEM record the replica will announce (the key a
// replica without an identity file derives from its device key).
func newDeviceHost(t *testing.T, tn *testNet, port int) (*crdt.SecretKey, host.Host, []byte) {
	t.Helper()
	dev, err := crdt.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(dev.Seed(), pubBytes(dev.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	h, err := tn.mn.AddPeer(sk, addr)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := hkdf.Key(sha256.New, dev.Seed(), nil, labelKEMFromDevice, e2ee.KEMSeedSize)
	if err != nil {
		t.Fatal(err)
	}
	kem, err := e2ee.KEMSecretKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e2ee.SignKEMRecord(dev, kem.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return dev, h, raw
}

// TestLinkCodeErrors: the node turns the link protocol's refusals to
// issue a code into the API's errors, without the package's prefix.
func TestLinkCodeErrors(t *testing.T) {
	tn := newTestNet(t, 0)
	master, ident := newUser(t)
	a := tn.addNode(ident)
	nl := p2p.NewLinker(tn.reps[a].Host(), tn.reps[a].Engine, nil, nil) // a linked device
	_, err := newLinkCode(nl, 0)
	nl.Close()
	if KindOf(err) != api.KindPermission || CodeOf(err) != api.CodeNoMaster || !strings.Contains(err.Error(), "no master key") || strings.Contains(err.Error(), "p2p:") {
		t.Fatalf("a linked device issued a code: %v (kind %s, code %s)", err, KindOf(err), CodeOf(err))
	}
	l := p2p.NewLinker(tn.reps[a].Host(), tn.reps[a].Engine, master, nil)
	defer l.Close()
	for range p2p.MaxLinkPending {
		if _, err := newLinkCode(l, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := newLinkCode(l, 0); KindOf(err) != api.KindInvalid || !strings.Contains(err.Error(), "already waiting") {
		t.Fatalf("one code too many: %v (kind %s)", err, KindOf(err))
	}
}

// reads reports whether engine e decrypted a plaintext holding marker.
func reads(e *Engine, marker string) bool {
	found := false
	e.do(context.Background(), func() error {
		return e.kr.local.ScanLocal([]byte("p/"), func(_, v []byte) bool {
			found = bytes.Contains(v, []byte(marker))
			return !found
		})
	})
	return found
}

func held(e *Engine, room string, id string) bool {
	rid, _ := crdt.ParseID(room)
	eid, _ := crdt.ParseID(id)
	ok, _ := e.Known(context.Background(), rid, []crdt.EventID{eid})
	return len(ok) == 1 && ok[0]
}

func memberDevices(e *Engine, room string) int {
	rid, _ := crdt.ParseID(room)
	n := 0
	e.do(context.Background(), func() error {
		if rc := e.rooms[rid]; rc != nil && rc.room != nil {
			n = len(rc.room.MemberDevices(nil))
		}
		return nil
	})
	return n
}

// TestLinkedDeviceReadsSharedHistory (C22): a device linked later reads
// an encrypted `shared` room's history, not a `joined` room's history from
// before its user joined, and nothing after it is revoked.
func TestLinkedDeviceReadsSharedHistory(t *testing.T) {
	tn := newTestNet(t, 0)
	ctx := tn.ctx
	mA, idA := newUser(t)
	_, idB := newUser(t)
	a, b := tn.addNode(idA), tn.addNode(idB)
	tn.link(a, b)
	A, B := tn.reps[a].Engine, tn.reps[b].Engine
	const d = 30 * time.Second

	shared, err := A.CreateRoom(ctx, api.RoomCreateReq{Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	early := []string{"MARKER-shared-1", "MARKER-shared-2", "MARKER-shared-3"}
	for _, m := range early {
		if _, err := A.Send(ctx, api.SendReq{Room: shared.Room, Text: m}); err != nil {
			t.Fatal(err)
		}
	}
	joined, err := B.CreateRoom(ctx, api.RoomCreateReq{Name: "joined", History: rooms.HistoryJoined})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := B.Send(ctx, api.SendReq{Room: joined.Room, Text: "MARKER-before-user-joined"}); err != nil {
		t.Fatal(err)
	}
	if _, err := B.Invite(ctx, api.RoomUserReq{Room: joined.Room, User: idA.User.String()}); err != nil {
		t.Fatal(err)
	}
	jid, _ := crdt.ParseID(joined.Room)
	if _, err := A.TrackRoom(ctx, joined.Room); err != nil {
		t.Fatal(err)
	}
	eventually(t, d, "A holds the invite", func() (bool, string) {
		tn.reps[a].SyncNow(ctx)
		var m string
		A.do(ctx, func() error {
			if rc := A.rooms[jid]; rc.room != nil {
				m = rc.room.MembershipOf(idA.User)
			}
			return nil
		})
		return m == rooms.Invite, m
	})
	if _, err := A.Join(ctx, jid); err != nil {
		t.Fatal(err)
	}
	eventually(t, d, "B sees A's device", func() (bool, string) {
		n := memberDevices(B, joined.Room)
		return n == 2, fmt.Sprint(n)
	})

	// Link a new device of A's user.
	l := p2p.NewLinker(tn.reps[a].Host(), A, mA, nil)
	defer l.Close()
	code, err := l.NewCode(0)
	if err != nil {
		t.Fatal(err)
	}
	dev, h, rec := newDeviceHost(t, tn, 11010)
	if _, err := tn.mn.LinkPeers(h.ID(), tn.reps[a].Host().ID()); err != nil {
		t.Fatal(err)
	}
	res, err := p2p.LinkDevice(ctx, h, code, dev, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rooms) != 2 {
		t.Fatalf("link result names %d rooms, want 2", len(res.Rooms))
	}
	n := tn.addNode(&crdt.Identity{User: res.User, Device: dev, Cert: res.Cert})
	D := tn.reps[n].Engine
	fctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var done []crdt.RoomID
	if err := followLinked(fctx, D, res.Rooms, 20*time.Millisecond, func(r crdt.RoomID) { done = append(done, r) }); err != nil || len(done) != 2 {
		t.Fatalf("follow: %v, %d rooms done", err, len(done))
	}
	for _, m := range early {
		eventually(t, d, "the linked device reads "+m, func() (bool, string) { return reads(D, m), "" })
	}
	// In the joined room it reads what follows its link, never what came
	// before its user joined.
	eventually(t, d, "B sees the linked device", func() (bool, string) {
		n := memberDevices(B, joined.Room)
		return n == 3, fmt.Sprint(n)
	})
	after, err := B.Send(ctx, api.SendReq{Room: joined.Room, Text: "MARKER-after-link"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, d, "the linked device reads the joined room after its link", func() (bool, string) { return reads(D, "MARKER-after-link"), "" })
	if !held(D, joined.Room, after.Event) || reads(D, "MARKER-before-user-joined") {
		t.Fatal("the linked device reads a joined room's history from before its user joined")
	}

	// device list on both devices of the user.
	for _, e := range []*Engine{A, D} {
		eventually(t, d, "device list shows both devices in both rooms", func() (bool, string) {
			l, err := e.DeviceList(ctx, api.UserReq{})
			if err != nil {
				return false, err.Error()
			}
			ok := len(l.Devices) == 2 && l.Devices[0].Current
			for _, di := range l.Devices {
				ok = ok && len(di.Rooms) == 2 && di.Verified
			}
			return ok, fmt.Sprintf("%+v", l.Devices)
		})
	}

	// Revocation: the device reads nothing that follows.
	rv, err := A.Revoke(ctx, api.DeviceReq{Device: dev.Public().String()})
	if err != nil || len(rv.Events) != 2 {
		t.Fatalf("revoke: %v, %+v", err, rv)
	}
	eventually(t, d, "B drops the revoked device", func() (bool, string) {
		n := memberDevices(B, joined.Room)
		return n == 2, fmt.Sprint(n)
	})
	lateA, err := A.Send(ctx, api.SendReq{Room: shared.Room, Text: "MARKER-after-revoke-shared"})
	if err != nil {
		t.Fatal(err)
	}
	lateB, err := B.Send(ctx, api.SendReq{Room: joined.Room, Text: "MARKER-after-revoke-joined"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, d, "A reads after the revocation", func() (bool, string) { return reads(A, "MARKER-after-revoke-joined"), "" })
	eventually(t, d, "the revoked device holds the later messages", func() (bool, string) {
		return held(D, shared.Room, lateA.Event) && held(D, joined.Room, lateB.Event), ""
	})
	if reads(D, "MARKER-after-revoke-shared") || reads(D, "MARKER-after-revoke-joined") {
		t.Fatal("the revoked device reads a message sent after its revocation")
	}
	if _, err := A.Revoke(ctx, api.DeviceReq{Device: idA.Device.Public().String()}); err == nil {
		t.Fatal("a device revoked itself")
	}
}

// TestVerifyAndWarnings: both sides compute the same safety number; a
// confirmed user is marked verified; another master key showing a verified
// user's name is a warning in room info and on watch.
func TestVerifyAndWarnings(t *testing.T) {
	tn := newTestNet(t, 0)
	ctx := tn.ctx
	_, idA := newUser(t)
	_, idB := newUser(t)
	_, idC := newUser(t)
	a, b, c := tn.addNode(idA), tn.addNode(idB), tn.addNode(idC)
	tn.link(a, b)
	tn.link(a, c)
	A, B, C := tn.reps[a].Engine, tn.reps[b].Engine, tn.reps[c].Engine
	va, err := A.Verify(ctx, api.VerifyReq{User: idB.User.String()})
	if err != nil {
		t.Fatal(err)
	}
	vb, err := B.Verify(ctx, api.VerifyReq{User: idA.User.String()})
	if err != nil {
		t.Fatal(err)
	}
	if va.SafetyNumber != vb.SafetyNumber || strings.Join(va.Emoji, "") != strings.Join(vb.Emoji, "") || len(va.Emoji) != 7 || va.Verified {
		t.Fatalf("A sees %+v, B sees %+v", va, vb)
	}
	if len(strings.ReplaceAll(va.SafetyNumber, " ", "")) != 60 {
		t.Fatalf("safety number %q", va.SafetyNumber)
	}
	if _, err := A.Verify(ctx, api.VerifyReq{User: idA.User.String()}); err == nil {
		t.Fatal("verified oneself")
	}

	name := "bob"
	for _, e := range []*Engine{B, C} {
		if _, err := e.ProfileSet(ctx, api.ProfileSetReq{Name: &name}); err != nil {
			t.Fatal(err)
		}
	}
	plain := false
	r, err := A.CreateRoom(ctx, api.RoomCreateReq{Name: "r", Public: true, Encrypted: &plain})
	if err != nil {
		t.Fatal(err)
	}
	rid, _ := crdt.ParseID(r.Room)
	join := func(e *Engine, i int) {
		if _, err := e.TrackRoom(ctx, r.Room); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "room state arrives", func() (bool, string) {
			tn.reps[i].SyncNow(ctx)
			ok, _ := e.HasRoomState(ctx, rid)
			return ok, ""
		})
		if _, err := e.Join(ctx, rid); err != nil {
			t.Fatal(err)
		}
	}
	join(B, b)
	eventually(t, 20*time.Second, "A sees bob's name", func() (bool, string) {
		return A.profileName(idB.User) == name, ""
	})
	if v, err := A.Verify(ctx, api.VerifyReq{User: idB.User.String(), Confirm: true}); err != nil || !v.Verified {
		t.Fatalf("confirm: %v %+v", err, v)
	}
	info, err := A.Info(ctx, api.RoomReq{Room: r.Room})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.Members {
		if m.Verified != (m.User == idB.User.String()) {
			t.Fatalf("member %+v", m)
		}
	}
	if len(info.Warnings) != 0 {
		t.Fatalf("warnings before any change: %+v", info.Warnings)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ch, cancel, err := A.Watch(wctx, r.Room)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	join(C, c) // another master key under the name "bob"
	var w *api.Warning
	deadline := time.After(20 * time.Second)
	for w == nil {
		select {
		case it, ok := <-ch:
			if !ok {
				t.Fatal("watch ended")
			}
			if it.Kind == "warning" {
				w = it.Warning
			}
		case <-deadline:
			t.Fatal("no warning on watch")
		}
	}
	if w.Kind != "master_key_changed" || w.User != idC.User.String() || w.Was != idB.User.String() || !strings.Contains(w.Message, "WARNING") {
		t.Fatalf("warning %+v", w)
	}
	info, _ = A.Info(ctx, api.RoomReq{Room: r.Room})
	if len(info.Warnings) != 1 || info.Warnings[0].User != idC.User.String() {
		t.Fatalf("room info warnings %+v", info.Warnings)
	}
}

// profileName is u's display name as this engine resolves it.
func (e *Engine) profileName(u crdt.UserID) string {
	var s string
	e.do(context.Background(), func() error { s = e.profileOf(u).DisplayName; return nil })
	return s
}

// TestDeviceMovedWarning: one device key certified by two master keys,
// announced in two rooms a third user shares, is a warning in both rooms.
func TestDeviceMovedWarning(t *testing.T) {
	b := newBus(t, 1, 1) // engine 0 observes
	dev, err := crdt.GenerateKey(rand.Reader)
	b.ok(err)
	var rs []string
	for range 2 {
		m, err := crdt.GenerateKey(rand.Reader)
		b.ok(err)
		i := b.add(&crdt.Identity{User: m.Public(), Device: dev, Cert: crdt.CertifyDevice(m, dev.Public())})
		r, err := b.engines[i].CreateRoom(b.ctx, api.RoomCreateReq{Name: "r"})
		b.ok(err)
		b.drain()
		b.ok2(b.engines[i].Invite(b.ctx, api.RoomUserReq{Room: r.Room, User: b.user(0)}))
		b.drain()
		b.join(0, r.Room)
		rs = append(rs, r.Room)
	}
	for k, r := range rs {
		info, err := b.engines[0].Info(b.ctx, api.RoomReq{Room: r})
		b.ok(err)
		if len(info.Warnings) != 1 {
			t.Fatalf("room %d: warnings %+v", k, info.Warnings)
		}
		w := info.Warnings[0]
		if w.Kind != "device_moved" || w.Device != dev.Public().String() || w.User != b.user(1+k) || w.Was != b.user(2-k) {
			t.Fatalf("room %d: warning %+v", k, w)
		}
	}
}

// TestJoinDeviceHome: `device join` on a fresh home over loopback TCP
// writes an identity without a master key (which then loads as the linked
// user and cannot link) and the rooms to follow; a linked home, a home
// that ran a node, and a used code are refused.
func TestJoinDeviceHome(t *testing.T) {
	master, ident := newUser(t)
	h := tcpHost(t, ident)
	defer h.Close()
	rep, err := NewReplica(h, crdt.NewMemStore(), ident, ReplicaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rep.Serve(ctx) }()
	defer wg.Wait()
	defer cancel()
	<-rep.Ready()
	r, err := rep.Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	l := p2p.NewLinker(h, rep.Engine, master, nil)
	defer l.Close()
	code, err := l.NewCode(time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	if _, err := Init(home, "second"); err != nil { // an unused identity gives up its master key
		t.Fatal(err)
	}
	before, _, _, err := loadOrCreateKeys(home)
	if err != nil {
		t.Fatal(err)
	}
	res, err := JoinDevice(ctx, home, code.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if res.User != ident.User.String() || res.Device != before.Device.Public().String() || len(res.Rooms) != 1 || res.Rooms[0] != r.Room {
		t.Fatalf("result %+v", res)
	}
	after, _, created, err := loadOrCreateKeys(home)
	if err != nil || created || after.User != ident.User || after.Device.Public() != before.Device.Public() {
		t.Fatalf("linked identity: %v created=%v user %s", err, created, after.User)
	}
	if m, err := loadMaster(home); err != nil || m != nil {
		t.Fatalf("a linked home holds a master key: %v", err)
	}
	var st linkState
	if err := readJSON(filepath.Join(home, linkFile), &st); err != nil || len(st.Rooms) != 1 || len(st.Peers) == 0 {
		t.Fatalf("link file %+v: %v", st, err)
	}
	code2, err := l.NewCode(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinDevice(ctx, home, code2.Encode()); err == nil || !strings.Contains(err.Error(), "linked device already") {
		t.Fatalf("a linked home joined again: %v", err)
	}
	ran := t.TempDir()
	if err := os.Mkdir(filepath.Join(ran, storeDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := JoinDevice(ctx, ran, code2.Encode()); err == nil || !strings.Contains(err.Error(), "fresh home") {
		t.Fatalf("a home that ran a node joined: %v", err)
	}
	if _, err := JoinDevice(ctx, t.TempDir(), code.Encode()); !errors.Is(err, p2p.ErrLinkUsed) || !strings.Contains(err.Error(), "already used") || strings.Contains(err.Error(), "node:") || strings.Contains(err.Error(), "p2p:") {
		t.Fatalf("a used code: %v", err)
	}
}
