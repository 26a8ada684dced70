package mediasvc

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/media"
)

// Three nodes in a triangle that all pull through for each other, none
// holding the block: the request that comes back round (c asks a, a asks
// b, b asks c, c asks a) gets not-found at once, and the fetch fails fast.
func TestMediaPullThroughNoLoop(t *testing.T) {
	const a, b, c = 0, 1, 2
	mn := newMediaNet(t, 3)
	mn.link(a, b)
	mn.link(b, c)
	mn.link(a, c)
	all := func(context.Context, peer.ID) bool { return true }
	for i := range 3 {
		mn.media[i].SetRelayPolicy(all)
	}
	nowhere := media.BlockCID(cid.Raw, []byte("held by no one"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := mn.media[c].Fetch(ctx, nowhere); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch of a block no one holds: %v, want not found", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the fetch took %v", d)
	}
	for i := range 3 {
		if n := mn.media[i].relay.pulled.Load(); n != 0 {
			t.Fatalf("node %d pulled %d blocks", i, n)
		}
	}
}

// gatedStore holds every Get until open is closed.
type gatedStore struct {
	media.BlobStore
	open chan struct{}
}

func (s *gatedStore) Get(c cid.Cid) ([]byte, error) {
	<-s.open
	return s.BlobStore.Get(c)
}

// Two requesters of the same block at once get it from one pull-through:
// the second waits for the first, and the holder serves each block once.
func TestMediaPullThroughOnePerCID(t *testing.T) {
	const author, host, m1, m2 = 0, 1, 2, 3
	mn := newMediaNet(t, 4)
	mn.link(author, host)
	mn.link(m1, host)
	mn.link(m2, host)
	mn.media[host].SetRelayPolicy(func(context.Context, peer.ID) bool { return true })
	blob, key, data := mn.addBlob(author, 2<<20+5) // manifest + 3 blocks
	blocks, err := media.Blocks(mn.stores[author], blob.Root)
	if err != nil {
		t.Fatal(err)
	}
	gate := &gatedStore{BlobStore: mn.stores[author], open: make(chan struct{})}
	mn.media[author].store = gate
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	calls := func() int {
		r := &mn.media[host].relay
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.calls)
	}
	errs := make(chan error, 2)
	go func() { errs <- mn.media[m1].Fetch(ctx, blob.Root) }()
	eventually(t, 5*time.Second, "the host pulls the manifest through", func() (bool, string) { return calls() == 1, "" })
	go func() { errs <- mn.media[m2].Fetch(ctx, blob.Root) }()
	m2ID := mn.hosts[m2].ID()
	eventually(t, 5*time.Second, "the second requester asks the host", func() (bool, string) {
		return mn.media[host].PeerLimits.Streams(m2ID) > 0, ""
	})
	if n := calls(); n != 1 {
		t.Fatalf("%d pull-throughs in flight, want 1", n)
	}
	close(gate.open)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("fetch: %v", err)
		}
	}
	for _, i := range []int{m1, m2} {
		if got := readBlob(t, mn.stores[i], blob.Root, key); !bytes.Equal(got, data) {
			t.Fatalf("node %d: the file differs", i)
		}
	}
	if n := mn.media[author].served.Load(); n != int64(len(blocks))+1 {
		t.Fatalf("the author served %d blocks, want %d (each once)", n, len(blocks)+1)
	}
}
