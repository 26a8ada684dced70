package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"
	"github.com/pion/logging"
	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/p2p"
)

// startTestRelay runs a TURN relay on a loopback socket until the test ends.
func startTestRelay(t *testing.T, o turnRelayOptions) (*turnRelay, string) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	loop := net.IPv4(127, 0, 0, 1)
	o.bindIP, o.announce = loop, func() net.IP { return loop }
	if o.allocRate == 0 {
		o.allocRate, o.totalRate = 1<<20, 1<<20
	}
	if o.maxAllocs == 0 {
		o.maxAllocs, o.maxPerPeer = turnMaxAllocs, turnMaxPerPeer
	}
	if o.ttl == 0 {
		o.ttl, o.maxAge = turnCredTTL, turnMaxAge
	}
	r, err := newTURNRelay(conn, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	return r, conn.LocalAddr().String()
}

// testTURNClient is a pion TURN client on a loopback socket, closed when
// the test ends.
func testTURNClient(t *testing.T, server, user, pass string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: user, Password: pass, Realm: turnRealm,
		LoggerFactory: &logging.DefaultLoggerFactory{Writer: io.Discard},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	master, _ := crdt.GenerateKey(rand.Reader)
	id, err := crdt.NewIdentity(master, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return peerIDOf(t, id)
}

// An expired credential, a forged one and one for another user name open
// no allocation; a fresh one does.
func TestTURNExpiredCredentialRefused(t *testing.T) {
	r, addr := startTestRelay(t, turnRelayOptions{})
	p := testPeerID(t)

	user, pass, _ := r.credentialsUntil(p, time.Now().Add(-time.Minute))
	if _, err := testTURNClient(t, addr, user, pass).Allocate(); err == nil {
		t.Fatal("an expired credential opened an allocation")
	}
	user, pass, _ = r.credentials(p)
	if _, err := testTURNClient(t, addr, user, pass+"x").Allocate(); err == nil {
		t.Fatal("a wrong password opened an allocation")
	}
	other, _, _ := r.credentials(testPeerID(t))
	if _, err := testTURNClient(t, addr, other, pass).Allocate(); err == nil {
		t.Fatal("one peer's password opened an allocation under another's user name")
	}
	if got := r.refused.Load(); got < 1 {
		t.Fatalf("refused = %d, want the expired credential counted", got)
	}
	if got := r.allocs.Load(); got != 0 {
		t.Fatalf("allocations = %d after refusals", got)
	}
	relayed, err := testTURNClient(t, addr, user, pass).Allocate()
	if err != nil {
		t.Fatalf("a fresh credential: %v", err)
	}
	defer relayed.Close()
	if got := r.allocs.Load(); got != 1 {
		t.Fatalf("allocations = %d, want 1", got)
	}
}

// A peer holds at most maxPerPeer allocations at once.
func TestTURNPerPeerBound(t *testing.T) {
	r, addr := startTestRelay(t, turnRelayOptions{maxAllocs: 8, maxPerPeer: 1})
	p := testPeerID(t)
	user, pass, _ := r.credentials(p)
	first, err := testTURNClient(t, addr, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := testTURNClient(t, addr, user, pass).Allocate(); err == nil {
		t.Fatal("a second allocation for one peer over the bound")
	}
	user2, pass2, _ := r.credentials(testPeerID(t))
	second, err := testTURNClient(t, addr, user2, pass2).Allocate()
	if err != nil {
		t.Fatalf("another peer: %v", err)
	}
	second.Close()
}

// An allocation ends at the age bound, refreshes or not.
func TestTURNAllocationAgeBound(t *testing.T) {
	r, addr := startTestRelay(t, turnRelayOptions{ttl: time.Minute, maxAge: 300 * time.Millisecond})
	user, pass, _ := r.credentials(testPeerID(t))
	relayed, err := testTURNClient(t, addr, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	eventually(t, 60*time.Second, "the allocation ends at its age bound", func() (bool, string) {
		n := r.allocs.Load()
		return n == 0, fmt.Sprint(n, " live")
	})
}

// Datagrams over a bandwidth bound (per allocation, or of the whole relay)
// are dropped: what crosses the relay stays within the bucket's burst plus
// its rate over the time taken.
func TestTURNBandwidthBound(t *testing.T) {
	const rate, packet, count = 20000, 1000, 200 // bytes/s; 200 kB offered at once
	for _, tc := range []struct {
		name string
		o    turnRelayOptions
	}{
		{"allocation", turnRelayOptions{allocRate: rate, totalRate: 1 << 30}},
		{"total", turnRelayOptions{allocRate: 1 << 30, totalRate: rate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, addr := startTestRelay(t, tc.o)
			user, pass, _ := r.credentials(testPeerID(t))
			relayed, err := testTURNClient(t, addr, user, pass).Allocate()
			if err != nil {
				t.Fatal(err)
			}
			defer relayed.Close()
			sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			got := make(chan int, count)
			go func() {
				buf := make([]byte, 2*packet)
				for {
					n, _, err := sink.ReadFrom(buf)
					if err != nil {
						close(got)
						return
					}
					got <- n
				}
			}()
			start := time.Now()
			buf := make([]byte, packet)
			for range count {
				if _, err := relayed.WriteTo(buf, sink.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 60*time.Second, "datagrams dropped over the bound", func() (bool, string) {
				return r.dropped.Load() > 0, fmt.Sprint(r.relayed.Load(), " bytes relayed")
			})
			received := 0
			eventually(t, 60*time.Second, "a datagram crosses the relay", func() (bool, string) {
				for {
					select {
					case n := <-got:
						received += n
						continue
					default:
					}
					return received > 0, ""
				}
			})
			bound := float64(max(rate, turnMinBurst)+packet) + rate*time.Since(start).Seconds()
			if got := float64(r.relayed.Load()); got > bound {
				t.Fatalf("relayed %v bytes, over the bound %v", got, bound)
			}
			if float64(received) > bound {
				t.Fatalf("received %d bytes, over the bound %v", received, bound)
			}
		})
	}
}

// A node without --turn answers STUN Binding requests with the address it
// sees; so does the TURN relay; neither answers anything else.
func TestSTUNAnswers(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newSTUNServer(conn)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	_, relayAddr := startTestRelay(t, turnRelayOptions{})
	for _, server := range []string{conn.LocalAddr().String(), relayAddr} {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		to, _ := net.ResolveUDPAddr("udp4", server)
		c.WriteTo([]byte("not stun at all, but long enough to look at"), to)
		req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
		var m *stun.Message
		eventually(t, 60*time.Second, "a binding answer from "+server, func() (bool, string) {
			if _, err := c.WriteTo(req.Raw, to); err != nil {
				return false, err.Error()
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 1500)
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return false, err.Error()
			}
			m = &stun.Message{Raw: buf[:n]}
			return m.Decode() == nil, "undecodable"
		})
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(m); err != nil {
			t.Fatal(err)
		}
		if m.TransactionID != req.TransactionID || m.Type != stun.BindingSuccess || xor.String() != c.LocalAddr().String() {
			t.Fatalf("answer %v mapped %v, want a binding success for %v", m, xor, c.LocalAddr())
		}
	}
}

// Only a peer that proved the room and whose user is joined in it gets
// ICE servers: a peer that knows the room but never joined is refused, so
// is a stranger that names the room's reference without proving it, a
// peer that shows another member's certificate, and a blocked member.
func TestTURNCredentialsOnlyForMembers(t *testing.T) {
	tn := newTestNet(t, 4)
	for i := 1; i < 4; i++ {
		tn.link(0, i)
	}
	ctx := tn.ctx
	created, err := tn.reps[0].Engine.CreateRoom(ctx, api.RoomCreateReq{Name: "calls", Public: true})
	if err != nil {
		t.Fatal(err)
	}
	room, _ := crdt.ParseID(created.Room)
	for _, i := range []int{1, 2} {
		if _, err := tn.reps[i].Engine.TrackRoom(ctx, created.Room); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, fmt.Sprintf("room state reaches node %d", i), func() (bool, string) {
			tn.reps[i].SyncNow(ctx)
			ok, _ := tn.reps[i].Engine.HasRoomState(ctx, room)
			return ok, ""
		})
	}
	eventually(t, 60*time.Second, "node 1 joins", func() (bool, string) {
		_, err := tn.reps[1].Engine.Join(ctx, room)
		return err == nil, fmt.Sprint(err)
	})
	eventually(t, 60*time.Second, "node 0 sees the join", func() (bool, string) {
		return tn.reps[0].Engine.callMember(ctx, room, tn.ids[1].User), ""
	})
	svcs := make([]*turnService, 4)
	var issued atomic.Int32
	for i := range svcs {
		h := tn.mn.Host(peerIDOf(t, tn.ids[i]))
		svcs[i] = newTURNService(h, tn.reps[i].Gate, tn.ids[i], tn.reps[i].Engine.callMember, func(p peer.ID) *turnResp {
			return &turnResp{STUN: 3478, TURN: 3478, User: "1:" + p.String(), Pass: "secret", Expires: 1}
		})
	}
	svcs[0].issued = func(ok bool) {
		if ok {
			issued.Add(1)
		}
	}
	server := peerIDOf(t, tn.ids[0])

	r, err := svcs[1].fetch(ctx, server, room)
	if err != nil {
		t.Fatalf("a member: %v", err)
	}
	if r.TURN != 3478 || r.User != "1:"+peerIDOf(t, tn.ids[1]).String() {
		t.Fatalf("a member got %+v", r)
	}
	if _, err := svcs[2].fetch(ctx, server, room); !errors.Is(err, errTURNRefused) {
		t.Fatalf("a peer that knows the room but is no member: %v, want refused", err)
	}
	if _, err := svcs[3].fetch(ctx, server, room); err == nil {
		t.Fatal("a stranger got credentials")
	}
	// The stranger sends the request by hand, without the proof.
	ref := p2p.RefOf(room)
	frame := func(i int) []byte {
		b, err := crdt.Marshal(&turnReq{Room: ref[:], User: tn.ids[i].User[:], Cert: tn.ids[i].Cert})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	resp, err := askTURN(svcs[3].host, server, frame(3))
	if err != nil || resp.Err == "" || resp.TURN != 0 || resp.User != "" {
		t.Fatalf("a stranger's raw request: %+v, %v; want a bare refusal", resp, err)
	}
	// A member's certificate does not help another peer.
	resp, err = askTURN(svcs[2].host, server, frame(1))
	if err != nil || resp.Err == "" {
		t.Fatalf("a borrowed certificate: %+v, %v; want a refusal", resp, err)
	}
	if n := issued.Load(); n != 1 {
		t.Fatalf("issued %d credentials, want 1", n)
	}
	// A member this node blocked is refused too.
	if _, err := tn.reps[0].Engine.SetBlocked(ctx, tn.ids[1].User.String(), true); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs[1].fetch(ctx, server, room); !errors.Is(err, errTURNRefused) {
		t.Fatalf("a blocked member: %v, want refused", err)
	}
}

// FuzzTURNDecoders: the protocol's decoders and the relay's user names
// take any bytes without a crash, and what they accept survives a round
// trip.
func FuzzTURNDecoders(f *testing.F) {
	ref := p2p.RefOf("room")
	user := make([]byte, 32)
	req, _ := crdt.Marshal(&turnReq{Room: ref[:], User: user, Cert: []byte("cert")})
	resp, _ := crdt.Marshal(&turnResp{STUN: 3478, TURN: 3478, User: "1:p", Pass: "x", Expires: 1})
	refusal, _ := crdt.Marshal(&turnResp{Err: "refused"})
	f.Add(req)
	f.Add(resp)
	f.Add(refusal)
	f.Add([]byte{0xa0})
	f.Add([]byte("1700000000:12D3KooWA"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeTURNReq(b); err == nil {
			again, err := crdt.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeTURNReq(again); err != nil {
				t.Fatalf("a request accepted once is refused after a round trip: %v", err)
			}
		}
		if m, err := decodeTURNResp(b); err == nil {
			again, err := crdt.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeTURNResp(again); err != nil {
				t.Fatalf("an answer accepted once is refused after a round trip: %v", err)
			}
		}
		if exp, p, ok := parseTURNUser(string(b)); ok && (exp.Unix() <= 0 || p.Validate() != nil) {
			t.Fatalf("user name %q parsed to %v %v", b, exp, p)
		}
	})
}

// FuzzSTUNAnswer: the STUN answerer takes any datagram without a crash and
// answers only Binding requests, with their transaction ID.
func FuzzSTUNAnswer(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingSuccess).Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewSoftware("x"), stun.Fingerprint).Raw)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42})
	from := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := stunAnswer(b, from)
		if !ok {
			return
		}
		in := &stun.Message{Raw: append([]byte(nil), b...)}
		m := &stun.Message{Raw: out}
		var xor stun.XORMappedAddress
		if in.Decode() != nil || in.Type != stun.BindingRequest || m.Decode() != nil || m.Type != stun.BindingSuccess ||
			m.TransactionID != in.TransactionID || xor.GetFrom(m) != nil || xor.String() != from.String() {
			t.Fatalf("answered %x with %x", b, out)
		}
	})
}

// FuzzTURNStream sends arbitrary frames to a live TURNProtocol handler
// (real libp2p stack on mocknet) from a peer that is in no room: the
// handler never crashes, and it never answers with anything but a
// refusal.
func FuzzTURNStream(f *testing.F) {
	tn := newTestNet(&testing.T{}, 2)
	defer tn.close()
	tn.link(0, 1)
	rid := publicRoomOn(f, tn, 0)
	ref := p2p.RefOf(rid)
	ident := tn.ids[1]
	req, _ := crdt.Marshal(&turnReq{Room: ref[:], User: ident.User[:], Cert: ident.Cert})
	f.Add(req)
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x64, 'r', 'o', 'o', 'm'})
	newTURNService(tn.reps[0].host, tn.reps[0].Gate, tn.ids[0], tn.reps[0].Engine.callMember, func(p peer.ID) *turnResp {
		return &turnResp{STUN: 1, TURN: 1, User: "1:" + p.String(), Pass: "x", Expires: 1}
	})
	server := tn.reps[0].host.ID()
	client := tn.reps[1].host
	f.Fuzz(func(t *testing.T, frame []byte) {
		resp, err := askTURN(client, server, frame)
		if err == nil && resp.Err == "" {
			t.Fatalf("a stranger's frame %x got %+v", frame, resp)
		}
	})
}

// askTURN sends frame as the one request of a TURNProtocol stream from
// client to server and reads the answer.
func askTURN(client host.Host, server peer.ID, frame []byte) (*turnResp, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := client.NewStream(ctx, server, TURNProtocol)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(5 * time.Second))
	msgio.NewVarintWriter(st).WriteMsg(frame)
	st.CloseWrite()
	return recvTURN(st, decodeTURNResp)
}

// Bad STUN and TURN settings are refused before anything starts.
func TestCallNetConfigChecked(t *testing.T) {
	for _, cfg := range []Config{
		{NoSTUN: true, TURN: TURNConfig{On: true}},
		{TURN: TURNConfig{On: true, Ports: "50000"}},
		{TURN: TURNConfig{On: true, Ports: "60000-50000"}},
		{TURN: TURNConfig{On: true, Ports: "80-90"}},
		{TURN: TURNConfig{On: true, IP: "::1"}},
		{TURN: TURNConfig{On: true, IP: "0.0.0.0"}},
		{TURN: TURNConfig{On: true, AllocKbps: -1}},
	} {
		if err := checkCallNet(cfg); err == nil || KindOf(err) != api.KindInvalid {
			t.Errorf("%+v: %v, want invalid", cfg, err)
		}
	}
	if err := checkCallNet(Config{TURN: TURNConfig{On: true, IP: "203.0.113.7", Ports: "50000-50100"}}); err != nil {
		t.Errorf("good settings: %v", err)
	}
}

// An allocation outlives the credential it was opened with: after the
// expiry its own client still creates permissions (authenticated requests)
// and relays, while a new allocation under that credential is refused.
func TestTURNAllocationOutlivesCredential(t *testing.T) {
	r, addr := startTestRelay(t, turnRelayOptions{})
	exp := time.Now().Add(2 * time.Second)
	user, pass, _ := r.credentialsUntil(testPeerID(t), exp)
	relayed, err := testTURNClient(t, addr, user, pass).Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	<-time.After(time.Until(exp.Truncate(time.Second).Add(time.Second))) // the credential's expiry, to the second
	if _, err := testTURNClient(t, addr, user, pass).Allocate(); err == nil {
		t.Fatal("an expired credential opened a second allocation")
	}
	// A peer address the allocation has no permission for yet (loopback,
	// as the relay is).
	sink, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2 on this machine:", err)
	}
	defer sink.Close()
	got := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 100)
		if _, _, err := sink.ReadFrom(buf); err == nil {
			got <- struct{}{}
		}
	}()
	eventually(t, 60*time.Second, "a datagram relayed after the credential expired", func() (bool, string) {
		relayed.WriteTo([]byte("after expiry"), sink.LocalAddr())
		select {
		case <-got:
			return true, ""
		case <-time.After(200 * time.Millisecond):
			return false, fmt.Sprint(r.refused.Load(), " refused")
		}
	})
}
