package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
)

// writeTelegramExport writes a Telegram Desktop result.json of n messages
// by five authors, every tenth a reply and every seventh with a reaction.
func writeTelegramExport(tb testing.TB, dir string, n int) {
	tb.Helper()
	type msg struct {
		ID        int              `json:"id"`
		Type      string           `json:"type"`
		Date      string           `json:"date"`
		DateUnix  string           `json:"date_unixtime"`
		From      string           `json:"from"`
		FromID    string           `json:"from_id"`
		Text      string           `json:"text"`
		ReplyTo   int              `json:"reply_to_message_id,omitempty"`
		Reactions []map[string]any `json:"reactions,omitempty"`
	}
	msgs := make([]msg, n)
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range msgs {
		ts := t0.Add(time.Duration(i) * time.Minute)
		m := msg{ID: i + 1, Type: "message", Date: ts.Format("2006-01-02T15:04:05"), DateUnix: fmt.Sprint(ts.Unix()),
			From: fmt.Sprintf("Member %d", i%5), FromID: fmt.Sprintf("user%d", i%5), Text: fmt.Sprintf("message number %d of the generated export", i+1)}
		if i%10 == 9 {
			m.ReplyTo = i - 3
		}
		if i%7 == 0 {
			m.Reactions = []map[string]any{{"type": "emoji", "count": 1, "emoji": "👍", "recent": []map[string]string{{"from": "Member 1"}}}}
		}
		msgs[i] = m
	}
	b, err := json.Marshal(map[string]any{"name": "Generated", "type": "private_group", "id": 42, "messages": msgs})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkImportTelegram: one iteration imports a generated Telegram
// export of 100,000 messages (2,000 with -short) into a new room of a
// fresh node with an on-disk store, through the import/chat method, and
// reports messages per second and the CPU-seconds (user and system, of
// the whole process: the node's engine, store and gossip) one import took,
// which mean more than wall time on a loaded machine, and the live heap
// after it (the node still open; PARLEY_BENCH_HEAPPROFILE=FILE writes a
// heap profile there). index-after-cpu-s is the CPU the background search
// indexer spent after the import until it caught up.
func BenchmarkImportTelegram(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 2_000
	}
	if v, err := strconv.Atoi(os.Getenv("PARLEY_BENCH_IMPORT_N")); err == nil && v > 0 {
		n = v
	}
	src := b.TempDir()
	writeTelegramExport(b, src, n)
	if os.Getenv("GOMEMLIMIT") == "" { // as the daemon does (cmd/parley)
		ctx, stop := context.WithCancel(context.Background())
		followed := make(chan struct{})
		go func() { defer close(followed); FollowMemoryLimit(ctx, DaemonMemoryLimit) }()
		defer func() { stop(); <-followed; debug.SetMemoryLimit(math.MaxInt64) }()
	}
	var total time.Duration
	var cpu, live, idx float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		nd, err := Open(Config{Home: b.TempDir(), API: "127.0.0.1:0", Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- nd.Serve(ctx) }()
		select {
		case <-nd.Ready():
		case err := <-done:
			b.Fatal(err)
		}
		b.StartTimer()
		start, cpu0 := time.Now(), processCPU()
		r, err := nd.importChat(ctx, api.ImportChatReq{Format: "telegram", Path: src})
		total += time.Since(start)
		cpu += processCPU() - cpu0
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if x := nd.replica.Engine.ixr; x != nil { // the search index, written in the background
			c := processCPU()
			for i := 0; i < 30 && !x.wait(ctx, time.Minute); i++ {
			}
			idx += processCPU() - c
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		live += float64(ms.HeapAlloc) / (1 << 20)
		if f := os.Getenv("PARLEY_BENCH_HEAPPROFILE"); f != "" {
			if w, err := os.Create(f); err == nil {
				pprof.WriteHeapProfile(w)
				w.Close()
			}
		}
		if r.New != n {
			b.Fatalf("imported %d new of %d", r.New, n)
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "msgs/s")
	if processCPU() >= 0 {
		b.ReportMetric(cpu/float64(b.N), "cpu-s")
		b.ReportMetric(idx/float64(b.N), "index-after-cpu-s") // the indexer's work left after the import
	}
	b.ReportMetric(live/float64(b.N), "live-MB")
}
