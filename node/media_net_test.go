package node

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/internal/peertest"
	"github.com/parley-p2p/parley/node/mediasvc"
)

// mediaNet puts a media service with an in-memory store beside each
// replica of a testNet.
type mediaNet struct {
	*testNet
	media  []*mediasvc.Service
	stores []*media.MemStore
	stop   func() // stops the Media components
}

// close stops the Media components, then the replicas (for callers with
// a bare testing.T, whose cleanups never run).
func (mn *mediaNet) close() {
	mn.stop()
	mn.testNet.close()
}

func newMediaNet(t *testing.T, n int, serve ...bool) *mediaNet {
	t.Helper()
	mn := &mediaNet{testNet: newTestNet(t, n)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var once sync.Once
	mn.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(mn.stop)
	for i := range n {
		st := media.NewMemStore()
		m := mediasvc.New(mn.reps[i].host, st, nil)
		mn.media, mn.stores = append(mn.media, m), append(mn.stores, st)
		if len(serve) > i && !serve[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Serve(ctx)
		}()
		eventually(t, 5*time.Second, "media handler registered", func() (bool, string) {
			return slices.Contains(mn.reps[i].host.Mux().Protocols(), mediasvc.Protocol), ""
		})
	}
	return mn
}

// addBlob imports size random bytes into node i's store.
func (mn *mediaNet) addBlob(i int, size int) (media.Blob, media.FileKey, []byte) {
	mn.t.Helper()
	return peertest.AddBlob(mn.t, mn.stores[i], size)
}

func readBlob(t *testing.T, st media.BlobStore, root cid.Cid, key media.FileKey) []byte {
	t.Helper()
	return peertest.ReadBlob(t, st, root, key)
}
