package p2p

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/peertest"
)

// The protocol tests of this package run the room gate and pull sync of a
// few peers on mocknet, each over a testEngine; the node's tests run them
// over the real engine.

// testEngine is a GossipEngine that keeps rooms holding only their create
// event (whose id is the room id) and takes nothing in: enough for the
// handlers' bounds and admission, not for convergence.
type testEngine struct {
	mu    sync.Mutex
	rooms []crdt.RoomID
}

func (e *testEngine) keep(room crdt.RoomID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rooms = append(e.rooms, room)
}

func (e *testEngine) kept(room crdt.RoomID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(e.rooms, room)
}

func (e *testEngine) Ingest(context.Context, peer.ID, []*crdt.Event) error { return nil }

func (e *testEngine) Heads(_ context.Context, room crdt.RoomID) ([]crdt.EventID, bool, error) {
	if !e.kept(room) {
		return nil, false, nil
	}
	return []crdt.EventID{room}, true, nil
}

func (e *testEngine) HeadsGap(ctx context.Context, room crdt.RoomID) ([]crdt.EventID, int, bool, error) {
	heads, ok, err := e.Heads(ctx, room)
	return heads, 0, ok, err
}

func (e *testEngine) Known(_ context.Context, room crdt.RoomID, ids []crdt.EventID) ([]bool, error) {
	out := make([]bool, len(ids))
	for i, id := range ids {
		out[i] = e.kept(room) && id == room
	}
	return out, nil
}

func (e *testEngine) Since(context.Context, crdt.RoomID, []crdt.EventID) ([]crdt.EventID, error) {
	return nil, nil
}

func (e *testEngine) Items(context.Context, crdt.RoomID, uint64) ([]crdt.Item, error) {
	return nil, nil
}

func (e *testEngine) Gap(context.Context, crdt.RoomID, int) (int, []crdt.EventID, error) {
	return 0, nil, nil
}

func (e *testEngine) MaxDepth(context.Context, crdt.RoomID) (uint64, error) { return 0, nil }

func (e *testEngine) MayServe(_ context.Context, room crdt.RoomID, _ crdt.UserID) bool {
	return e.kept(room)
}

func (e *testEngine) RoomIDs(context.Context) []crdt.RoomID {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.rooms)
}

// GossipJudge accepts everything: the validator's stateless checks are
// under test here, the engine's judgement in the node's tests.
func (e *testEngine) GossipJudge() func(*crdt.Event) Verdict {
	return func(*crdt.Event) Verdict { return Verdict{Result: pubsub.ValidationAccept} }
}

func (e *testEngine) InvalidInFlight([]byte, error) {}

func (e *testEngine) IngestFailure(error) (stop, quiet bool) { return false, false }

// testPeer is one peer: its host (keyed with its device key), identity,
// room gate and syncer.
type testPeer struct {
	host   host.Host
	ident  *crdt.Identity
	gate   *RoomGate
	syncer *Syncer
	engine *testEngine
}

// testNet is a few linked and connected peers; t.Cleanup stops them.
type testNet struct {
	t     testing.TB
	mn    mocknet.Mocknet
	ctx   context.Context
	peers []*testPeer
	stop  func()
}

// close stops the peers, then the hosts (for callers with a bare
// testing.T, whose cleanups never run).
func (tn *testNet) close() {
	tn.stop()
	tn.mn.Close()
}

func newTestNet(t testing.TB, n int) *testNet {
	ctx, cancel := context.WithCancel(context.Background())
	tn := &testNet{t: t, mn: mocknet.New(), ctx: ctx}
	var wg sync.WaitGroup
	var once sync.Once
	tn.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(tn.close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range n {
		master, _ := crdt.GenerateKey(rand.Reader)
		ident, _ := crdt.NewIdentity(master, rand.Reader)
		pub := ident.Device.Public()
		sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pub[:]...))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 10000+i))
		h, err := tn.mn.AddPeer(sk, addr)
		if err != nil {
			t.Fatal(err)
		}
		p := &testPeer{host: h, ident: ident, gate: NewRoomGate(h, log), engine: &testEngine{}}
		p.syncer = NewSyncer(h, p.engine, p.gate, crdt.NewMemStore(), ident, log, nil, uint64(i+1))
		tn.peers = append(tn.peers, p)
		for _, serve := range []func(context.Context) error{p.gate.Serve, p.syncer.Serve} {
			wg.Add(1)
			go func() { defer wg.Done(); serve(ctx) }()
		}
	}
	if err := tn.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	if err := tn.mn.ConnectAllButSelf(); err != nil {
		t.Fatal(err)
	}
	return tn
}

// room makes a room that peer i keeps (its engine and its gate).
func (tn *testNet) room(i int, name string) crdt.RoomID {
	room := crdt.IDOf([]byte(name))
	tn.peers[i].engine.keep(room)
	tn.peers[i].gate.Track(room)
	peertest.Eventually(tn.t, 60*time.Second, "room tracked", func() (bool, string) {
		_, ok := tn.peers[i].gate.RoomOf(RefOf(room))
		return ok, ""
	})
	return room
}
