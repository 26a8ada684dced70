package badgerstore

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/internal/cpubench"
)

const (
	benchEvents = 10_000
	benchBatch  = 1000
)

var benchFrames = sync.OnceValues(func() ([][]byte, error) { return makeFrames(benchEvents) })

// makeFrames signs a realistic room: 4 authors writing 300-500 byte message
// bodies, one to three of them concurrently on the same heads per round.
func makeFrames(n int) ([][]byte, error) {
	r := rand.New(rand.NewPCG(7, 7))
	var ids []*crdt.Identity
	for i := range 4 {
		master, _ := crdt.SecretKeyFromSeed(seed(fmt.Sprintf("bench user %d", i)))
		dev, _ := crdt.SecretKeyFromSeed(seed(fmt.Sprintf("bench device %d", i)))
		ids = append(ids, &crdt.Identity{User: master.Public(), Device: dev, Cert: crdt.CertifyDevice(master, dev.Public())})
	}
	create, err := crdt.Sign(ids[0], crdt.Draft{Type: crdt.TypeCreate, TS: 1, Body: []byte("bench room")})
	if err != nil {
		return nil, err
	}
	l := crdt.NewLog(create.ID, crdt.LogConfig{})
	l.Add(create)
	frames := [][]byte{create.Encode()}
	ts := int64(1_700_000_000_000)
	for len(frames) < n {
		k := 1 + r.IntN(3)
		var round []*crdt.Event
		for _, w := range r.Perm(len(ids))[:k] {
			body := make([]byte, 300+r.IntN(200))
			for i := range body {
				body[i] = byte(r.Uint32())
			}
			ts += int64(r.IntN(2000))
			d := l.Prepare(ids[w].Device.Public(), ts, crdt.Draft{Type: "message", Auth: []crdt.EventID{create.ID}, Epoch: []byte("epoch-1"), Body: body})
			ev, err := crdt.Sign(ids[w], d)
			if err != nil {
				return nil, err
			}
			round = append(round, ev)
		}
		l.Add(round...)
		for _, ev := range round {
			frames = append(frames, ev.Encode())
		}
	}
	return frames[:n], nil
}

func seed(s string) []byte {
	b := make([]byte, 32)
	copy(b, s)
	return b
}

// decodeParallel decodes and verifies frames on all cores, the signatures in
// batches, as the sync protocol's receiver does (crdt.DecodeBatch).
func decodeParallel(frames [][]byte) ([]*crdt.Event, error) {
	out, errs := crdt.DecodeBatch(frames)
	return out, errors.Join(errs...)
}

// BenchmarkIngest measures the receiver pipeline of docs/design.md
// §2 on 10k pre-signed events per iteration: parallel decode + verify,
// Log.Add, and one Store.Commit per 1000 events into a fresh badger store.
// Decoding of the next batch overlaps with the commit of the current one.
func BenchmarkIngest(b *testing.B) {
	frames, err := benchFrames()
	if err != nil {
		b.Fatal(err)
	}
	bytes := 0
	for _, f := range frames {
		bytes += len(f)
	}
	var elapsed, cpu time.Duration
	for range b.N {
		b.StopTimer()
		crdt.ForgetVerified()
		s, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start, cpu0 := time.Now(), cpubench.Now()
		decoded := make(chan []*crdt.Event, 1)
		errc := make(chan error, 1)
		go func() {
			defer close(decoded)
			for i := 0; i < len(frames); i += benchBatch {
				evs, err := decodeParallel(frames[i:min(i+benchBatch, len(frames))])
				if err != nil {
					errc <- err
					return
				}
				decoded <- evs
			}
		}()
		var l *crdt.Log
		for evs := range decoded {
			if l == nil {
				l = crdt.NewLog(evs[0].ID, crdt.LogConfig{})
			}
			r := l.Add(evs...)
			if len(r.Batch.Events) != len(evs) {
				b.Fatalf("%d of %d events processed", len(r.Batch.Events), len(evs))
			}
			if err := s.Commit(r.Batch); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case err := <-errc:
			b.Fatal(err)
		default:
		}
		elapsed, cpu = elapsed+time.Since(start), cpu+cpubench.Now()-cpu0
		b.StopTimer()
		if l.Len() != len(frames) || l.MissingCount() != 0 {
			b.Fatalf("log holds %d events, %d missing", l.Len(), l.MissingCount())
		}
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*len(frames))/elapsed.Seconds(), "events/s")
	cpubench.Report(b, cpu)
	b.ReportMetric(float64(b.N*bytes)/elapsed.Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(bytes)/float64(len(frames)), "B/event")
}

// BenchmarkVerifyCeiling is the bound BenchmarkIngest is compared with: raw
// Ed25519 verifies per second on all cores (runtime.GOMAXPROCS goroutines).
// Decode verifies each event's signature; device certificates are verified
// once per device and cached, so events/s is bounded by verifies/s.
// cpu-ns/verify is the process CPU per verify, the ceiling in CPU terms
// (less disturbed by other work on the machine than verifies/s).
func BenchmarkVerifyCeiling(b *testing.B) {
	const perIter = 10_000 // like BenchmarkIngest: a block of work per iteration
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 500)
	sig := ed25519.Sign(priv, msg)
	workers := runtime.GOMAXPROCS(0)
	start, cpu0 := time.Now(), cpubench.Now()
	for range b.N {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perIter; i += workers {
					if !ed25519.Verify(pub, msg, sig) {
						panic("verify failed")
					}
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.N*perIter)/time.Since(start).Seconds(), "verifies/s")
	b.ReportMetric(float64((cpubench.Now()-cpu0).Nanoseconds())/float64(b.N*perIter), "cpu-ns/verify")
}

// BenchmarkGetFrames reads a 60,000-event room back in sync pages of
// 1,000 events in (depth, ID) order, as a server answering since does.
func BenchmarkGetFrames(b *testing.B) {
	const n = 60_000
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	order := fillRoom(b, s, n, 100).Order()
	b.ResetTimer()
	cpu0 := cpubench.Now()
	for range b.N {
		for i := 0; i < len(order); i += 1000 {
			fs, err := s.GetFrames(order[i:min(len(order), i+1000)])
			if err != nil || len(fs) != min(len(order), i+1000)-i {
				b.Fatalf("%d frames, %v", len(fs), err)
			}
		}
	}
	cpubench.Report(b, cpubench.Now()-cpu0)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

// fillRoom commits a room of n generated events to s in batches of batch
// and returns its log.
func fillRoom(b *testing.B, s *Store, n, batch int) *crdt.Log {
	b.Helper()
	frames, err := makeFrames(n)
	if err != nil {
		b.Fatal(err)
	}
	evs, err := decodeParallel(frames)
	if err != nil {
		b.Fatal(err)
	}
	l := crdt.NewLog(evs[0].ID, crdt.LogConfig{})
	for i := 0; i < n; i += batch {
		r := l.Add(evs[i:min(n, i+batch)]...)
		if err := s.Commit(r.Batch); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkCommit is the store's share of a catch-up: 100,000 events,
// decoded and verified before the timer, taken into a log and committed in
// batches of 1,000 (a sync page) into a fresh store. cpu-ns/op is the
// process's CPU until the last commit returns: the commits, badger's writes
// and the flushes and compactions that ran meanwhile.
func BenchmarkCommit(b *testing.B) {
	const n = 100_000
	frames, err := commitFrames()
	if err != nil {
		b.Fatal(err)
	}
	evs, err := decodeParallel(frames)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var elapsed, cpu time.Duration
	for range b.N {
		b.StopTimer()
		s, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		l := crdt.NewLog(evs[0].ID, crdt.LogConfig{})
		b.StartTimer()
		start, cpu0 := time.Now(), cpubench.Now()
		for i := 0; i < n; i += benchBatch {
			r := l.Add(evs[i:min(i+benchBatch, n)]...)
			if err := s.Commit(r.Batch); err != nil {
				b.Fatal(err)
			}
		}
		elapsed, cpu = elapsed+time.Since(start), cpu+cpubench.Now()-cpu0
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "events/s")
	cpubench.Report(b, cpu)
}

var commitFrames = sync.OnceValues(func() ([][]byte, error) { return makeFrames(100_000) })
