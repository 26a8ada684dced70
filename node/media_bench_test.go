package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media/fsstore"
	"github.com/parley-p2p/parley/node/mediasvc"
)

// seededReader yields n pseudo-random octets from a seeded source without
// holding them.
type seededReader struct {
	n   int64
	rng *rand.ChaCha8
}

func (g *seededReader) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n)]
	_, _ = g.rng.Read(p)
	g.n -= int64(len(p))
	return len(p), nil
}

// writeSeededFile writes n pseudo-random octets to path through a bounded
// buffer and returns their SHA-256.
func writeSeededFile(tb testing.TB, path string, n int64, seed byte) [32]byte {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), &seededReader{n: n, rng: rand.NewChaCha8([32]byte{seed})}, make([]byte, 256<<10)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// fileSHA256 hashes a file streaming.
func fileSHA256(tb testing.TB, path string) ([32]byte, int64) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		tb.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

// heapSampler records the peak of the live-and-unswept heap above a
// baseline taken after a GC, sampling runtime/metrics every millisecond
// (no stop-the-world) until stopped.
type heapSampler struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func readHeap(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	s := []metrics.Sample{{Name: heapMetric}}
	runtime.GC()
	runtime.GC() // a second cycle sweeps what the first freed
	hs := &heapSampler{base: readHeap(s), stop: make(chan struct{}), done: make(chan struct{})}
	hs.peak.Store(hs.base)
	go func() {
		defer close(hs.done)
		s := []metrics.Sample{{Name: heapMetric}}
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := readHeap(s); v > hs.peak.Load() {
				hs.peak.Store(v)
			}
			select {
			case <-hs.stop:
				return
			case <-t.C:
			}
		}
	}()
	return hs
}

// growth stops the sampler and returns the peak growth in octets.
func (hs *heapSampler) growth() uint64 {
	close(hs.stop)
	<-hs.done
	return hs.peak.Load() - hs.base
}

// mediaBenchNode is a replica and its Media component on a real TCP
// loopback host, with an on-disk blob store.
type mediaBenchNode struct {
	host  host.Host
	rep   *Replica
	media *mediasvc.Service
	stop  func()
}

func newMediaBenchNode(b *testing.B, seed uint64) *mediaBenchNode {
	b.Helper()
	ident := newIdentity(b)
	h := tcpHost(b, ident)
	rep, err := NewReplica(h, crdt.NewMemStore(), ident, ReplicaOptions{Seed: seed, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	store, err := fsstore.Open(filepath.Join(b.TempDir(), "media"))
	if err != nil {
		b.Fatal(err)
	}
	m := mediasvc.New(h, store, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rep.Serve(ctx) }()
	go func() { defer wg.Done(); m.Serve(ctx) }()
	<-rep.Ready()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(h.Mux().Protocols(), mediasvc.Protocol) {
		if time.Now().After(deadline) {
			b.Fatal("media handler not registered")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	return &mediaBenchNode{host: h, rep: rep, media: m, stop: func() { cancel(); wg.Wait(); h.Close() }}
}

// BenchmarkMediaTransfer: one iteration is a fresh node B fetching a
// 256 MiB file (PARLEY_BENCH_MEDIA_MB to change it) that node A added with
// media/add, over loopback TCP through /parley/media/1.0.0, into an
// on-disk store, and writing the decrypted file out (media/get). It reports
// the transfer rate and the peak heap growth of the process during the
// fetch (both nodes run in it, so the figure bounds the fetching side's).
func BenchmarkMediaTransfer(b *testing.B) {
	mb := 256
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_MEDIA_MB")); err == nil && v > 0 {
		mb = v
	}
	size := int64(mb) << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "source.bin")
	want := writeSeededFile(b, src, size, 42)

	a := newMediaBenchNode(b, 1)
	defer a.stop()
	ctx := context.Background()
	added, err := a.media.Add(ctx, api.MediaAddReq{Path: src})
	if err != nil {
		b.Fatal(err)
	}
	if added.Size != size {
		b.Fatalf("added %d octets, want %d", added.Size, size)
	}
	if err := os.Remove(src); err != nil { // only the blocks remain
		b.Fatal(err)
	}

	var total time.Duration
	var peak uint64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		nb := newMediaBenchNode(b, uint64(2+i))
		if err := nb.host.Connect(ctx, peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(b.TempDir(), "copy.bin")
		hs := startHeapSampler()
		b.StartTimer()
		start := time.Now()
		got, err := nb.media.Get(ctx, api.MediaGetReq{CID: added.CID, Key: added.Key, Out: out}, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		peak = max(peak, hs.growth())
		if got.Size != size {
			b.Fatalf("got %d octets, want %d", got.Size, size)
		}
		if sum, n := fileSHA256(b, out); n != size || !bytes.Equal(sum[:], want[:]) {
			b.Fatalf("the fetched file differs (%d octets)", n)
		}
		nb.stop()
		b.StartTimer()
	}
	b.ReportMetric(float64(size)*float64(b.N)/total.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(peak)/(1<<20), "heapMB")
}
