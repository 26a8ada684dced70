package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore"
	"github.com/parley-p2p/parley/internal/cpubench"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/rooms/mimi"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tcpHost is a real libp2p host on loopback TCP with the device key as peer key.
func tcpHost(tb testing.TB, ident *crdt.Identity) host.Host {
	tb.Helper()
	sk, err := crypto.UnmarshalEd25519PrivateKey(append(ident.Device.Seed(), pubBytes(ident.Device.Public())...))
	if err != nil {
		tb.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func newIdentity(tb testing.TB) *crdt.Identity {
	master, _ := crdt.GenerateKey(rand.Reader)
	ident, err := crdt.NewIdentity(master, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return ident
}

// buildRoom writes a public room with n messages by a few authors straight
// into store, each committed on its own, as a fast set-up for benchmarks.
func buildRoom(tb testing.TB, store crdt.Store, n int) crdt.RoomID {
	tb.Helper()
	b := newRoomBuilder(tb, store)
	b.messages(n)
	return b.room
}

// roomBuilder writes a public room of four members (the creator and three
// joined) straight into a store; messages adds to it.
type roomBuilder struct {
	tb      testing.TB
	store   crdt.Store
	room    crdt.RoomID
	log     *crdt.Log
	authors []*crdt.Identity
	text    []byte
	n       int // messages so far
}

// message signs the next message (by the authors in turn) on the log's
// heads, without taking it in.
func (rb *roomBuilder) message() *crdt.Event {
	i := rb.n
	rb.n++
	a := rb.authors[i%len(rb.authors)]
	d := rb.log.Prepare(a.Device.Public(), int64(3+i), crdt.Draft{Type: rooms.TypeMessage, Auth: []crdt.EventID{rb.room}, Body: rb.content(a, i)})
	ev, err := crdt.Sign(a, d)
	if err != nil {
		rb.tb.Fatal(err)
	}
	return ev
}

// content is the body of the i-th message as a current node writes it
// (Engine.Send: MIMI content naming its sender and room, with a salt; here
// derived from i so that a room is the same on every build).
func (rb *roomBuilder) content(a *crdt.Identity, i int) []byte {
	var salt mimi.Salt
	binary.BigEndian.PutUint64(salt[:], uint64(i))
	c := mimi.New(mimi.Header{Salt: salt, SenderURI: UserURI(a.User), RoomURI: RoomURI(rb.room)}, mimi.TextPart(fmt.Sprintf("%d %s", i, rb.text)))
	b, _, err := c.Marshal()
	if err != nil {
		rb.tb.Fatal(err)
	}
	return b
}

// messages adds n messages, each committed on its own.
func (rb *roomBuilder) messages(n int) {
	for range n {
		rb.commit(rb.message())
	}
}

func (rb *roomBuilder) commit(evs ...*crdt.Event) {
	r := rb.log.Add(evs...)
	if err := rb.store.Commit(r.Batch); err != nil {
		rb.tb.Fatal(err)
	}
}

func newRoomBuilder(tb testing.TB, store crdt.Store) *roomBuilder {
	tb.Helper()
	creator := newIdentity(tb)
	create, err := crdt.Sign(creator, crdt.Draft{Type: crdt.TypeCreate, TS: 1, Body: rooms.Encode(rooms.CreateBody{JoinRule: rooms.Public, History: rooms.HistoryShared})})
	if err != nil {
		tb.Fatal(err)
	}
	rb := &roomBuilder{tb: tb, store: store, room: create.ID, log: crdt.NewLog(create.ID, crdt.LogConfig{}),
		authors: []*crdt.Identity{creator, newIdentity(tb), newIdentity(tb), newIdentity(tb)}, text: make([]byte, 300)}
	rb.commit(create)
	for _, a := range rb.authors[1:] {
		me := a.User.String()
		d := rb.log.Prepare(a.Device.Public(), 2, crdt.Draft{Type: rooms.TypeMember, StateKey: &me, Auth: []crdt.EventID{create.ID}, Body: rooms.Encode(rooms.MemberBody{Membership: rooms.Join})})
		ev, _ := crdt.Sign(a, d)
		rb.commit(ev)
	}
	for i := range rb.text {
		rb.text[i] = 'a' + byte(i%26)
	}
	return rb
}

// BenchmarkCatchUp: one iteration is a fresh node pulling a 100,000-event
// room from one peer over loopback TCP through the sync protocol into badger.
// cpu-ns/op is the process's CPU until the node holds the room;
// indexed-cpu-ns/op until its search indexer has also indexed it.
// PARLEY_BENCH_CPUPROFILE=file profiles the timed part only;
// PARLEY_BENCH_INDEX_QUEUE=n bounds the indexer's queue (indexQueueCap) to
// make a smaller room overflow it as a large one does.
func BenchmarkCatchUp(b *testing.B) {
	defer benchDaemonGC()()
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_INDEX_QUEUE")); err == nil {
		defer func(q int) { indexQueueCap = q }(indexQueueCap)
		indexQueueCap = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcStore, room, want := benchRoom(b)
	defer srcStore.Close()
	src, srcHost, stopSrc := benchReplica(b, ctx, srcStore, 1)
	defer stopSrc()
	// The source's store was built without a search index, so it indexes
	// the room in the background at start (indexer.go): let it finish
	// before the timer, or its work is counted as the catch-up's.
	waitIndexed(b, ctx, src.Engine)
	defer benchProfile(b)()
	b.ResetTimer()
	var total, cpu, indexed time.Duration
	for range b.N {
		b.StopTimer()
		rep, h, stop := benchTarget(b, ctx)
		b.StartTimer()
		start, cpu0 := time.Now(), cpubench.Now()
		if err := h.Connect(ctx, peer.AddrInfo{ID: srcHost.ID(), Addrs: srcHost.Addrs()}); err != nil {
			b.Fatal(err)
		}
		if _, err := rep.Engine.TrackRoom(ctx, room.String()); err != nil {
			b.Fatal(err)
		}
		for {
			info, err := rep.Engine.Info(ctx, api.RoomReq{Room: room.String()})
			if err != nil {
				b.Fatal(err)
			}
			if info.Sync.Events == want {
				break
			}
			time.Sleep(5 * time.Millisecond) // polling interval
		}
		total, cpu = total+time.Since(start), cpu+cpubench.Now()-cpu0
		b.StopTimer()
		waitIndexed(b, ctx, rep.Engine)
		indexed += cpubench.Now() - cpu0
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(want*b.N)/total.Seconds(), "events/s")
	cpubench.Report(b, cpu)
	b.ReportMetric(float64(indexed.Nanoseconds())/float64(b.N), "indexed-cpu-ns/op")
}

// benchDaemonGC runs the daemon's memory limit (FollowMemoryLimit, as
// cmd/parley does unless GOMEMLIMIT is set) when PARLEY_BENCH_DAEMON_GC is
// set; the returned function stops it.
func benchDaemonGC() func() {
	if os.Getenv("PARLEY_BENCH_DAEMON_GC") == "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	ctx, stop := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { defer close(followed); FollowMemoryLimit(ctx, DaemonMemoryLimit) }()
	return func() { stop(); <-followed; debug.SetMemoryLimit(math.MaxInt64) }
}

// benchProfile starts a CPU profile into the file PARLEY_BENCH_CPUPROFILE
// names, if any; the returned function stops it.
func benchProfile(b *testing.B) func() {
	path := os.Getenv("PARLEY_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// waitIndexed waits until e's search indexer has indexed what it was
// handed, the start-up rebuild included (five minutes at most).
func waitIndexed(b *testing.B, ctx context.Context, e *Engine) {
	b.Helper()
	if e.ixr == nil {
		return
	}
	deadline := time.Now().Add(5 * time.Minute)
	for !e.ixr.wait(ctx, time.Second) {
		if time.Now().After(deadline) {
			b.Fatal("the search indexer did not catch up in five minutes")
		}
	}
}

// BenchmarkArchiveImport: one iteration is a fresh node importing the
// 100,000-event room of BenchmarkCatchUp from a history archive into badger
// (read, verify in batches, add, commit). Compare it with
// BenchmarkVerifyCeiling in crdt/badgerstore. cpu-ns/op is the process's
// CPU during the import; PARLEY_BENCH_CPUPROFILE=file profiles it (and the
// set-up of each fresh node between imports).
func BenchmarkArchiveImport(b *testing.B) {
	defer benchDaemonGC()()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcStore, room, want := benchRoom(b)
	defer srcStore.Close()
	src, _, stop := benchReplica(b, ctx, srcStore, 1)
	path := b.TempDir() + "/room.car"
	if _, err := src.Engine.Export(ctx, api.ExportReq{Room: room.String(), Out: path}); err != nil {
		b.Fatal(err)
	}
	stop()
	defer benchProfile(b)()
	b.ResetTimer()
	var total, cpu time.Duration
	for range b.N {
		b.StopTimer()
		rep, _, stop := benchTarget(b, ctx)
		b.StartTimer()
		start, cpu0 := time.Now(), cpubench.Now()
		resp, err := rep.Engine.Import(ctx, api.ImportReq{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		total, cpu = total+time.Since(start), cpu+cpubench.Now()-cpu0
		b.StopTimer()
		if resp.New != want {
			b.Fatalf("imported %d new events, want %d", resp.New, want)
		}
		stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(want*b.N)/total.Seconds(), "events/s")
	cpubench.Report(b, cpu)
}

// BenchmarkIngestOne: one iteration is one gossiped message, from its
// transport frame to committed in badger: decoded and verified
// (crdt.Decode, one signature, as on receipt), taken in by the engine
// (Engine.Ingest: Log.Add, the room state machine, the commit) into a room
// of 1,000 messages (PARLEY_BENCH_EVENTS) that a node on a loopback TCP
// host keeps. ns/op is the latency of a single event; cpu-ns/op the
// process's CPU in the timed loop (the background indexer's included, as
// far as it ran then).
//
//	go test ./node -run '^$' -bench IngestOne -benchtime 2000x
func BenchmarkIngestOne(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := benchEvents(1000)
	store := benchStore(b)
	defer store.Close()
	rb := newRoomBuilder(b, store)
	rb.messages(n)
	frames := make([][]byte, b.N)
	for i := range frames {
		ev := rb.message()
		rb.log.Add(ev) // the next chains on it; the store gets it from the node
		frames[i] = ev.Encode()
	}
	rep, _, stop := benchReplica(b, ctx, store, 1)
	defer stop()
	waitIndexed(b, ctx, rep.Engine) // the store was built without a search index
	defer benchProfile(b)()
	b.ResetTimer()
	cpu0 := cpubench.Now()
	for _, f := range frames {
		ev, err := crdt.Decode(f)
		if err != nil {
			b.Fatal(err)
		}
		if err := rep.Engine.Ingest(ctx, "", []*crdt.Event{ev}); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpubench.Now() - cpu0
	b.StopTimer()
	info, err := rep.Engine.Info(ctx, api.RoomReq{Room: rb.room.String()})
	if err != nil {
		b.Fatal(err)
	}
	if want := n + 4 + b.N; info.Sync.Events != want {
		b.Fatalf("the node holds %d events, want %d", info.Sync.Events, want)
	}
	cpubench.Report(b, cpu)
}

// benchRoom opens a badger store holding the benchmark room: 100,000
// messages (or PARLEY_BENCH_EVENTS) and, in all, want events.
func benchRoom(b *testing.B) (store *badgerstore.Store, room crdt.RoomID, want int) {
	n := benchEvents(100_000)
	store = benchStore(b)
	return store, buildRoom(b, store, n), n + 4 // create, three joins
}

// benchEvents is PARLEY_BENCH_EVENTS, or def.
func benchEvents(def int) int {
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_EVENTS")); err == nil {
		return v
	}
	return def
}

// benchStore opens a fresh badger store in a temporary folder.
func benchStore(b *testing.B) *badgerstore.Store {
	store, err := badgerstore.Open(b.TempDir(), badgerstore.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	return store
}

// benchTarget is a fresh node on a fresh store, with no signature
// remembered as verified; stop also closes the store.
func benchTarget(b *testing.B, ctx context.Context) (*Replica, host.Host, func()) {
	crdt.ForgetVerified()
	store := benchStore(b)
	rep, h, stop := benchReplica(b, ctx, store, 2)
	return rep, h, func() { stop(); store.Close() }
}

// benchReplica serves a replica over store on a loopback TCP host until the
// returned stop is called.
func benchReplica(b *testing.B, ctx context.Context, store crdt.Store, seed uint64) (*Replica, host.Host, func()) {
	ident := newIdentity(b)
	h := tcpHost(b, ident)
	rep, err := NewReplica(h, store, ident, ReplicaOptions{Seed: seed})
	if err != nil {
		b.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); rep.Serve(rctx) }()
	<-rep.Ready()
	return rep, h, func() { rcancel(); <-done; h.Close() }
}
