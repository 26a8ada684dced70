package node

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// FollowMemoryLimit keeps the runtime's soft memory limit at base while
// the live heap is small, and at twice the live heap once that is more
// than half of base, until ctx ends. A fixed limit below twice the live
// heap makes the collector run without pause (up to its cap of half the
// CPU): a node holding a room of 100,000 messages (a few hundred MB of
// live heap: BenchmarkImportTelegram reports it) spent more time collecting than
// working, an import more than doubled in CPU. Above the threshold the
// limit changes nothing that GOGC does not already do; below it, it keeps
// bursts of garbage from doubling a small resident set, as before.
func FollowMemoryLimit(ctx context.Context, base int64) {
	debug.SetMemoryLimit(base)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := base
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		want := max(base, 2*int64(sample[0].Value.Uint64()))
		if want != last {
			debug.SetMemoryLimit(want)
			last = want
		}
	}
}
