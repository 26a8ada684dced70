package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/internal/spypeer"
	"github.com/parley-p2p/parley/node/p2p"
)

// The acceptance of issue 17 item 2 through the real binary: a hostile
// libp2p client (in the test process, with a valid device certificate and a
// gossipsub router of its own) connects to a daemon that is in a private
// room. No topic the daemon announces contains the room id; subscribed to
// them all, the client sees no message while the members talk; its sync
// requests, naming the room by what the topic names carry or by guesses,
// are refused; and nothing the daemon sends it names the room id.
func TestRoomPrivacyHostileClient(t *testing.T) {
	t.Parallel()
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	a.must(nil, "connect", b.addr)
	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", marker("room-name"))
	room := rr.Room
	id, err := crdt.ParseID(room)
	if err != nil {
		t.Fatal(err)
	}
	a.must(nil, "room", "invite", room, b.user)
	b.must(nil, "room", "join", room, "--via", a.addr)
	waitMembership(t, []*daemon{a, b}, room, b.user, "join")

	hc := newHostile(t, a)
	eventually(t, govTimeout, "A announces the room's topics to the client", func() error {
		if ts := hc.roomTopics(); len(ts) < 3 {
			return fmt.Errorf("room topics seen: %q", ts)
		}
		return nil
	})
	secrets := [][]byte{[]byte(id), []byte(room)}
	for _, topic := range hc.roomTopics() {
		if strings.Contains(topic, room) {
			t.Errorf("A announces topic %q, which names the room id", topic)
		}
	}
	unsubscribe, err := hc.Subscribe(hc.ps, "/parley/room/")
	defer unsubscribe()
	if err != nil {
		t.Fatal(err)
	}

	// The members talk, in both directions, after the client subscribed.
	var bodies []string
	for i := range 3 {
		fa, fb := marker(fmt.Sprintf("a-%d", i)), marker(fmt.Sprintf("b-%d", i))
		a.must(nil, "send", room, fa)
		b.must(nil, "send", room, fb)
		bodies = append(bodies, fa, fb)
	}
	waitBodies(t, []*daemon{a, b}, room, bodies...)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	server, err := peer.Decode(a.peerID)
	if err != nil {
		t.Fatal(err)
	}
	names := [][]byte{make([]byte, 32), []byte(crdt.IDOf([]byte("a guess")))}
	rand.Read(names[0])
	names = append(names, spypeer.Names(hc.roomTopics())...)
	for _, name := range names {
		if n := hc.ask(ctx, server, name); n > 0 {
			t.Errorf("A served the client %d events for the room named %x", n, name)
		}
	}

	if n := len(hc.Messages("/parley/room/")); n > 0 {
		t.Errorf("the client received %d gossip messages of the room", n)
	}
	for _, b := range hc.Leaks(secrets...) {
		t.Errorf("A sent the client the room id in %x", b)
	}
}

// hostile is a libp2p client with a gossipsub router and no gate, that
// records what it is announced and sent.
type hostile struct {
	t     *testing.T
	ident *crdt.Identity
	h     host.Host
	ps    *pubsub.PubSub
	*spypeer.Spy
}

func newHostile(t *testing.T, to *daemon) *hostile {
	t.Helper()
	master, _ := crdt.GenerateKey(rand.Reader)
	ident, err := crdt.NewIdentity(master, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(ident.Device.Seed()))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	hc := &hostile{t: t, ident: ident, h: h, Spy: spypeer.New()}
	for _, p := range []protocol.ID{p2p.SyncProtocol, "/parley/sync/1.0.0", "/parley/room-proof/1.0.0"} {
		h.SetStreamHandler(p, hc.Record)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if hc.ps, err = p2p.NewPubSub(ctx, h, pubsub.WithAppSpecificRpcInspector(hc.Inspect)); err != nil {
		t.Fatal(err)
	}
	info, err := peer.AddrInfoFromString(to.addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}
	return hc
}

// ask sends sync requests naming the room as given (a session that starts
// with heads, and requests that skip it) and counts the events served.
func (hc *hostile) ask(ctx context.Context, server peer.ID, name []byte) (events int) {
	events, err := hc.AskSync(ctx, hc.h, server, p2p.SyncProtocol, hc.ident.User[:], hc.ident.Cert, name)
	if err != nil {
		hc.t.Fatalf("client: open a sync stream: %v", err)
	}
	return events
}

func (hc *hostile) roomTopics() []string { return hc.Topics("/parley/room/") }
