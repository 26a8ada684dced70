package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves goroutines behind. The
// ignored functions are process-wide singletons of libraries we use, started
// once and never stopped by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// badger's and ristretto's package-level caches and z allocator.
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2/z.(*AllocatorPool).freeupAllocators"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		// go-log's and opencensus' global workers.
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
	)
}
