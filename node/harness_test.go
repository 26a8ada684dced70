package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/node/internal/peertest"
	"github.com/parley-p2p/parley/node/p2p"
)

// testNet is a set of replicas on mocknet (the real libp2p stack over
// in-memory links) with in-memory stores.
type testNet struct {
	t      *testing.T
	mn     mocknet.Mocknet
	reps   []*Replica
	stores []crdt.Store
	ids    []*crdt.Identity
	ctx    context.Context
	cancel []context.CancelFunc
	wg     sync.WaitGroup
	tracer func(i int) p2p.Tracer // optional: each replica's tracer

	unguarded map[int]bool          // replicas whose gossip validator is stateless only (adversaries)
	done      map[int]chan struct{} // closed when replica i's Serve has returned
}

func newTestNet(t *testing.T, n int) *testNet { return newTracedTestNet(t, n, nil) }

// newTracedTestNet is newTestNet with a tracer for each replica (nil: none).
func newTracedTestNet(t *testing.T, n int, tracer func(i int) p2p.Tracer) *testNet {
	t.Helper()
	return buildTestNet(t, n, tracer, func(_ int, s crdt.Store) crdt.Store { return s })
}

// newTestNetWith is newTestNet with node i's store wrapped by wrap (the
// fault tests wrap some in a faultstore).
func newTestNetWith(t *testing.T, n int, wrap func(i int, s crdt.Store) crdt.Store) *testNet {
	t.Helper()
	return buildTestNet(t, n, nil, wrap)
}

func buildTestNet(t *testing.T, n int, tracer func(i int) p2p.Tracer, wrap func(i int, s crdt.Store) crdt.Store) *testNet {
	t.Helper()
	return buildTestNetOpts(t, n, tracer, wrap, nil)
}

func buildTestNetOpts(t *testing.T, n int, tracer func(i int) p2p.Tracer, wrap func(i int, s crdt.Store) crdt.Store, unguarded map[int]bool) *testNet {
	t.Helper()
	tn := &testNet{t: t, mn: mocknet.New(), ctx: context.Background(), tracer: tracer, unguarded: unguarded}
	for i := range n {
		master, _ := crdt.GenerateKey(rand.Reader)
		ident, _ := crdt.NewIdentity(master, rand.Reader)
		tn.ids = append(tn.ids, ident)
		tn.stores = append(tn.stores, wrap(i, crdt.NewMemStore()))
		tn.reps = append(tn.reps, nil)
		tn.cancel = append(tn.cancel, nil)
		tn.start(i)
	}
	t.Cleanup(tn.close)
	return tn
}

// start (re)starts replica i on its store.
func (tn *testNet) start(i int) {
	t := tn.t
	ident := tn.ids[i]
	var h = tn.mn.Host(peerIDOf(t, ident))
	if h == nil {
		sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pubBytes(ident.Device.Public())...))
		if err != nil {
			t.Fatal(err)
		}
		addr, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 10000+i))
		if h, err = tn.mn.AddPeer(sk, addr); err != nil {
			t.Fatal(err)
		}
	}
	opts := ReplicaOptions{Seed: uint64(i + 1), Unguarded: tn.unguarded[i]}
	if tn.tracer != nil {
		opts.Tracer = tn.tracer(i)
	}
	rep, err := NewReplica(h, tn.stores[i], ident, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(tn.ctx)
	tn.reps[i], tn.cancel[i] = rep, cancel
	if tn.done == nil {
		tn.done = map[int]chan struct{}{}
	}
	done := make(chan struct{})
	tn.done[i] = done
	tn.wg.Add(1)
	go func() {
		defer tn.wg.Done()
		defer close(done)
		if err := rep.Serve(ctx); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}()
	<-rep.Ready()
}

// stop stops replica i (its store and host stay).
func (tn *testNet) stop(i int) {
	tn.cancel[i]()
	tn.cancel[i] = func() {}
}

// stopWait stops replica i and waits until its Serve has returned, so
// that its store may be closed.
func (tn *testNet) stopWait(i int) {
	tn.stop(i)
	<-tn.done[i]
}

func (tn *testNet) close() {
	for _, c := range tn.cancel {
		c()
	}
	tn.wg.Wait()
	tn.mn.Close()
}

func peerIDOf(t *testing.T, ident *crdt.Identity) (id peer.ID) {
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pubBytes(ident.Device.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	id, err = peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// link links and connects i and j.
func (tn *testNet) link(i, j int) {
	a, b := tn.reps[i].host.ID(), tn.reps[j].host.ID()
	if _, err := tn.mn.LinkPeers(a, b); err != nil {
		tn.t.Fatal(err)
	}
	if _, err := tn.mn.ConnectPeers(a, b); err != nil {
		tn.t.Fatal(err)
	}
}

// cut partitions i from j.
func (tn *testNet) cut(i, j int) {
	a, b := tn.reps[i].host.ID(), tn.reps[j].host.ID()
	tn.mn.UnlinkPeers(a, b)
	tn.mn.DisconnectPeers(a, b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	peertest.Eventually(t, d, what, cond)
}

func (tn *testNet) history(i int, room string) []string {
	h, err := tn.reps[i].Engine.History(tn.ctx, api.HistoryReq{Room: room})
	if err != nil {
		tn.t.Fatalf("history on %d: %v", i, err)
	}
	var ids []string
	for _, e := range h.Events {
		ids = append(ids, e.ID)
	}
	return ids
}

// converged waits until every listed replica shows the same timeline of want events.
func (tn *testNet) converged(room string, want int, d time.Duration, which ...int) {
	tn.t.Helper()
	eventually(tn.t, d, "convergence", func() (bool, string) {
		first := tn.history(which[0], room)
		state := ""
		ok := true
		for _, i := range which {
			h := tn.history(i, room)
			state += fmt.Sprintf("node %d: %d events; ", i, len(h))
			if len(h) != want || fmt.Sprint(h) != fmt.Sprint(first) {
				ok = false
			}
		}
		return ok, state
	})
}

// convergeWithin bounds waits for convergence: longer than one anti-entropy
// period (headsPeriod ± 30 %), the repair of last resort when gossip lost
// something on a loaded machine.
const convergeWithin = 60 * time.Second
