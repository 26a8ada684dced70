package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
	"github.com/parley-p2p/parley/internal/cpubench"
)

// roundCounter is a tracer that counts the sync rounds a node started.
type roundCounter struct{ rounds atomic.Int64 }

func (c *roundCounter) EventsAccepted(crdt.RoomID, int) {}
func (c *roundCounter) SyncRound(crdt.RoomID, peer.ID)  { c.rounds.Add(1) }

// BenchmarkSyncUpToDate: one iteration is a sync session of a node with a
// peer that holds the same room (1,000 messages, badger, loopback TCP):
// anti-entropy's common case, a heads round that finds nothing to pull.
// cpu-ns/op is the process's CPU per session, both sides. Run at most
// 400 iterations (-benchtime 300x): past its burst of 400 the peer's rate
// limit of 200 requests a second (wire.PeerLimits) paces the sessions.
func BenchmarkSyncUpToDate(b *testing.B) {
	if b.N > 400 {
		b.Skipf("%d iterations: at most 400 (the peer's rate limit); run with -benchtime 300x", b.N)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcStore, err := badgerstore.Open(b.TempDir(), badgerstore.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer srcStore.Close()
	const n = 1000
	room := buildRoom(b, srcStore, n)
	_, srcHost, stopSrc := benchReplica(b, ctx, srcStore, 1)
	defer stopSrc()
	store, err := badgerstore.Open(b.TempDir(), badgerstore.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ident := newIdentity(b)
	h := tcpHost(b, ident)
	tr := &roundCounter{}
	rep, err := NewReplica(h, store, ident, ReplicaOptions{Seed: 2, Tracer: tr})
	if err != nil {
		b.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rep.Serve(rctx) }()
	defer func() { rcancel(); <-done; h.Close() }()
	<-rep.Ready()
	if err := h.Connect(ctx, peer.AddrInfo{ID: srcHost.ID(), Addrs: srcHost.Addrs()}); err != nil {
		b.Fatal(err)
	}
	if _, err := rep.Engine.TrackRoom(ctx, room.String()); err != nil {
		b.Fatal(err)
	}
	idle := func() {
		for {
			if q, r := rep.syncer.Jobs(); q == 0 && r == 0 {
				return
			}
			time.Sleep(20 * time.Microsecond) // polling interval
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := rep.Engine.Info(ctx, api.RoomReq{Room: room.String()})
		if err != nil {
			b.Fatal(err)
		}
		if info.Sync.Events == n+4 && info.Sync.Missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the room did not arrive in a minute: %+v", info.Sync)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	idle()
	b.ResetTimer()
	cpu0 := cpubench.Now()
	for range b.N {
		before := tr.rounds.Load()
		rep.syncer.Trigger(room, srcHost.ID())
		for tr.rounds.Load() == before {
			time.Sleep(20 * time.Microsecond) // polling interval
		}
		idle()
	}
	cpubench.Report(b, cpubench.Now()-cpu0)
}
