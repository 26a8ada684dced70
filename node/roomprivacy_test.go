package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/internal/spypeer"
	"github.com/parley-p2p/parley/node/p2p"
)

// stranger is a hostile peer on mocknet: a real libp2p host with a plain
// gossipsub router (no gate), a valid device certificate, and handlers that
// record whatever the members send it on the sync and room-proof protocols.
type stranger struct {
	t     *testing.T
	ident *crdt.Identity
	h     host.Host
	ps    *pubsub.PubSub
	*spypeer.Spy
}

func newStranger(t *testing.T, tn *testNet, port int, links ...int) *stranger {
	master, _ := crdt.GenerateKey(rand.Reader)
	ident, _ := crdt.NewIdentity(master, rand.Reader)
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pubBytes(ident.Device.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
	h, err := tn.mn.AddPeer(sk, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &stranger{t: t, ident: ident, h: h, Spy: spypeer.New()}
	for _, proto := range []protocol.ID{p2p.SyncProtocol, "/parley/sync/1.0.0", "/parley/room-proof/1.0.0"} {
		h.SetStreamHandler(proto, s.Record)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if s.ps, err = p2p.NewPubSub(ctx, h, pubsub.WithAppSpecificRpcInspector(s.Inspect)); err != nil {
		t.Fatal(err)
	}
	for _, i := range links {
		if _, err := tn.mn.LinkPeers(h.ID(), tn.reps[i].host.ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.mn.ConnectPeers(h.ID(), tn.reps[i].host.ID()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *stranger) roomTopics() []string { return s.Topics("/parley/room/") }

// ask runs sync requests naming room as given and returns the events it
// was sent.
func (s *stranger) ask(ctx context.Context, server peer.ID, room []byte) (events int) {
	events, err := s.AskSync(ctx, s.h, server, p2p.SyncProtocol, s.ident.User[:], s.ident.Cert, room)
	if err != nil {
		s.t.Fatalf("stranger: open sync stream: %v", err)
	}
	return events
}

// A stranger connected to two members of a private room — it subscribes to
// the topics it sees announced and issues sync requests with what the topic
// names carry and with guesses — learns neither the room id, nor any event
// of the log, nor any gossip message of the room, while a member and a
// blind host given the id still sync and gossip (docs/protocol.md 2.1).
func TestRoomPrivacyFromStranger(t *testing.T) {
	tn := newTestNet(t, 3)
	tn.link(0, 1)
	tn.link(0, 2)
	tn.link(1, 2)
	e0, e1, e2 := tn.reps[0].Engine, tn.reps[1].Engine, tn.reps[2].Engine
	r, err := e0.CreateRoom(tn.ctx, api.RoomCreateReq{Name: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := crdt.ParseID(r.Room)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e0.Invite(tn.ctx, api.RoomUserReq{Room: r.Room, User: tn.ids[1].User.String()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e1.TrackRoom(tn.ctx, r.Room); err != nil {
		t.Fatal(err)
	}
	eventually(t, convergeWithin, "room state at node 1", func() (bool, string) { ok, _ := e1.HasRoomState(tn.ctx, id); return ok, "" })
	if _, err := e1.Join(tn.ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e2.TrackRoom(tn.ctx, r.Room); err != nil { // node 2 hosts the room blind
		t.Fatal(err)
	}

	s := newStranger(t, tn, 10099, 0, 1)
	eventually(t, convergeWithin, "room topics announced to the stranger", func() (bool, string) {
		ts := s.roomTopics()
		return len(ts) >= 3, fmt.Sprint(ts)
	})
	secrets := [][]byte{[]byte(id), []byte(id.String())}
	for _, topic := range s.roomTopics() {
		for _, sec := range secrets {
			if strings.Contains(topic, string(sec)) {
				t.Errorf("topic name %q reveals the room id", topic)
			}
		}
	}
	unsubscribe, err := s.Subscribe(s.ps, "/parley/room/")
	defer unsubscribe()
	if err != nil {
		t.Fatal(err)
	}

	// The members talk (events, heads announcements, typing) until node 1
	// has node 0's messages, the host holds the whole log, and node 0's
	// event topic counts the member and the host as peers, not the stranger.
	watch, stop, err := e1.Watch(tn.ctx, r.Room)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	sent, typing := 0, false
	eventually(t, convergeWithin, "members and host in sync and gossiping", func() (bool, string) {
		if sent < 10 {
			if _, err := e0.Send(tn.ctx, api.SendReq{Room: r.Room, Text: fmt.Sprintf("secret %d", sent)}); err != nil {
				t.Fatal(err)
			}
			if _, err := e1.Send(tn.ctx, api.SendReq{Room: r.Room, Text: fmt.Sprintf("reply %d", sent)}); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if _, data, err := e0.Typing(tn.ctx, api.TypingReq{Room: r.Room, On: true}); err == nil {
			tn.reps[0].Ephemeral().Publish(id, data)
		}
	drain:
		for {
			select {
			case it := <-watch:
				typing = typing || it.Kind == "typing"
			default:
				break drain
			}
		}
		h0, h1, h2 := tn.history(0, r.Room), tn.history(1, r.Room), tn.history(2, r.Room)
		heads0, _, _ := e0.Heads(tn.ctx, id)
		heads2, _, _ := e2.Heads(tn.ctx, id)
		peers := tn.reps[0].gossip.EventPeers(id)
		ok := sent == 10 && typing && len(h0) == len(h1) && len(h0) > 20 && fmt.Sprint(heads0) == fmt.Sprint(heads2) &&
			slices.Contains(peers, tn.reps[1].host.ID()) && slices.Contains(peers, tn.reps[2].host.ID())
		return ok, fmt.Sprintf("sent %d, typing %v, histories %d/%d/%d, host heads equal %v, topic peers %v", sent, typing, len(h0), len(h1), len(h2), fmt.Sprint(heads0) == fmt.Sprint(heads2), peers)
	})
	for i := range 2 {
		if slices.Contains(tn.reps[i].gossip.EventPeers(id), s.h.ID()) {
			t.Errorf("node %d counts the stranger as a peer of the room's event topic", i)
		}
	}

	// The stranger asks for the log with what the topic names carry (decoded
	// as a CID and as base32) and with guesses.
	ctx, cancel := context.WithTimeout(tn.ctx, 30*time.Second)
	defer cancel()
	names := spypeer.Names(s.roomTopics())
	guess := make([]byte, 32)
	rand.Read(guess)
	names = append(names, guess, []byte(crdt.IDOf([]byte("a guess"))))
	for _, server := range []int{0, 1} {
		for _, name := range names {
			if n := s.ask(ctx, tn.reps[server].host.ID(), name); n > 0 {
				t.Errorf("node %d served the stranger %d events for room name %x", server, n, name)
			}
		}
	}

	// Nothing the stranger received names the room id, and no gossip of the
	// room reached it.
	if n := len(s.Messages("/parley/room/")); n > 0 {
		t.Errorf("the stranger received %d gossip messages of the room", n)
	}
	for _, b := range s.Leaks(secrets...) {
		t.Errorf("the stranger was sent the room id: %x", b)
	}
}
