package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/internal/cpubench"
)

// BenchmarkIngestE2EE measures a member's ingest of message events (decode
// and signature check, Log.Add, in-memory store commit, room state machine, and for encrypted rooms the epoch
// admissibility check, decryption and the local plaintext write) in a
// plaintext and an encrypted room. Goal: encrypted ≥ 80 % of plaintext.
// cpu-ns/op counts the process's CPU during the ingest, the background
// indexer's included as far as it ran then; index-after-cpu-ns/op is the
// CPU spent after it until the indexer caught up.
//
//	go test ./node -run x -bench IngestE2EE -benchtime 5x
func BenchmarkIngestE2EE(b *testing.B) {
	const n = 2000
	for _, enc := range []bool{false, true} {
		b.Run(fmt.Sprintf("encrypted=%v", enc), func(b *testing.B) {
			var total, cpu, idx time.Duration
			for range b.N {
				bs := newBus(b, 1, 2)
				r, err := bs.engines[0].CreateRoom(bs.ctx, api.RoomCreateReq{Name: "bench", Encrypted: &enc})
				bs.ok(err)
				bs.drain()
				bs.ok2(bs.engines[0].Invite(bs.ctx, api.RoomUserReq{Room: r.Room, User: bs.user(1)}))
				bs.drain()
				bs.join(1, r.Room)
				for k := range n {
					bs.send(0, r.Room, fmt.Sprintf("message %d with some ordinary length to it, as chat goes", k))
				}
				bs.mu.Lock()
				var evs []*crdt.Event
				for _, d := range bs.queue {
					if d.to == 1 {
						evs = append(evs, d.ev)
					}
				}
				bs.queue = nil
				bs.mu.Unlock()
				wire := make([][]byte, len(evs))
				for i, ev := range evs {
					wire[i] = ev.Encode()
				}
				start, cpu0 := time.Now(), cpubench.Now()
				for i := 0; i < len(wire); i += 100 {
					batch := make([]*crdt.Event, 0, 100)
					for _, w := range wire[i:min(i+100, len(wire))] {
						ev, err := crdt.Decode(w) // verifies the signature, as on receipt
						bs.ok(err)
						batch = append(batch, ev)
					}
					bs.ok(bs.engines[1].Ingest(bs.ctx, "", batch))
				}
				total, cpu = total+time.Since(start), cpu+cpubench.Now()-cpu0
				cpu1 := cpubench.Now()
				bs.indexed() // the search index is written in the background (indexer.go)
				idx += cpubench.Now() - cpu1
				if shown, undec := bs.texts(1, r.Room); len(shown) != n || undec != 0 {
					b.Fatalf("member shows %d, %d undecrypted", len(shown), undec)
				}
				bs.close()
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "events/s")
			cpubench.Report(b, cpu)
			b.ReportMetric(float64(idx.Nanoseconds())/float64(b.N), "index-after-cpu-ns/op") // the indexer's work left after the ingest
		})
	}
}
