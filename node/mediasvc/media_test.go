package mediasvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/libp2p/go-msgio"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/media"
	"github.com/parley-p2p/parley/node/internal/peertest"
)

// mediaNet is n libp2p hosts on a mocknet, each with a media service on
// an in-memory store.
type mediaNet struct {
	t      *testing.T
	mn     mocknet.Mocknet
	hosts  []host.Host
	media  []*Service
	stores []*media.MemStore
	stop   func() // stops the services
}

// close stops the services, then the hosts (for callers with a bare
// testing.T, whose cleanups never run).
func (mn *mediaNet) close() {
	mn.stop()
	mn.mn.Close()
}

func newMediaNet(t *testing.T, n int, serve ...bool) *mediaNet {
	t.Helper()
	mn := &mediaNet{t: t, mn: mocknet.New()}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var once sync.Once
	mn.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(func() { mn.stop(); mn.mn.Close() })
	for i := range n {
		h, err := mn.mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		st := media.NewMemStore()
		m := New(h, st, nil)
		mn.hosts, mn.media, mn.stores = append(mn.hosts, h), append(mn.media, m), append(mn.stores, st)
		if len(serve) > i && !serve[i] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Serve(ctx)
		}()
		eventually(t, 5*time.Second, "media handler registered", func() (bool, string) {
			return slices.Contains(h.Mux().Protocols(), Protocol), ""
		})
	}
	return mn
}

// link connects i and j.
func (mn *mediaNet) link(i, j int) {
	a, b := mn.hosts[i].ID(), mn.hosts[j].ID()
	if _, err := mn.mn.LinkPeers(a, b); err != nil {
		mn.t.Fatal(err)
	}
	if _, err := mn.mn.ConnectPeers(a, b); err != nil {
		mn.t.Fatal(err)
	}
}

// cut partitions i from j.
func (mn *mediaNet) cut(i, j int) {
	a, b := mn.hosts[i].ID(), mn.hosts[j].ID()
	mn.mn.UnlinkPeers(a, b)
	mn.mn.DisconnectPeers(a, b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	peertest.Eventually(t, d, what, cond)
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

func TestMediaFetchSizes(t *testing.T) {
	mn := newMediaNet(t, 2)
	mn.link(0, 1)
	for _, size := range []int{0, 1, media.ChunkSize, media.ChunkSize + 1, 1 << 20, 1<<20 + 1, 3*(1<<20) + 12345} {
		blob, key, data := mn.addBlob(0, size)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := mn.media[1].Fetch(ctx, blob.Root); err != nil {
			cancel()
			t.Fatalf("size %d: fetch: %v", size, err)
		}
		cancel()
		if got := readBlob(t, mn.stores[1], blob.Root, key); !bytes.Equal(got, data) {
			t.Fatalf("size %d: fetched plaintext differs (%d octets)", size, len(got))
		}
		if miss, err := media.Missing(mn.stores[1], blob.Root); err != nil || len(miss) != 0 {
			t.Fatalf("size %d: still missing %v (%v)", size, miss, err)
		}
	}
}

func TestMediaFetchNotFound(t *testing.T) {
	mn := newMediaNet(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unknown := media.BlockCID(cid.Raw, []byte("nobody has this"))
	if err := mn.media[1].Fetch(ctx, unknown); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no peer: got %v, want ErrNotFound", err)
	}
	mn.link(0, 1)
	if err := mn.media[1].Fetch(ctx, unknown); !errors.Is(err, ErrNotFound) {
		t.Fatalf("peer without it: got %v, want ErrNotFound", err)
	}
	manifest := media.BlockCID(cid.DagCBOR, []byte("no manifest"))
	if err := mn.media[1].Fetch(ctx, manifest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing manifest: got %v, want ErrNotFound", err)
	}
}

// evilHandler serves the blocks of st with one bit flipped.
func evilHandler(st media.BlobStore, asked *atomic.Int64) network.StreamHandler {
	return func(s network.Stream) {
		defer s.Close()
		c := newMediaConn(s)
		for {
			req, err := c.recv()
			if err != nil {
				return
			}
			id, _ := cid.Cast(req.CID)
			data, err := st.Get(id)
			if err != nil {
				c.send(&mediaMsg{Op: mediaOpNotFound, CID: req.CID})
				continue
			}
			asked.Add(1)
			data[len(data)/2] ^= 1
			c.send(&mediaMsg{Op: mediaOpBlock, CID: req.CID, Data: data})
		}
	}
}

// A peer that serves corrupted blocks is rejected (nothing it sent is
// stored) and the blocks come from another peer.
func TestMediaCorruptPeer(t *testing.T) {
	mn := newMediaNet(t, 3, true, true, true)
	mn.link(0, 1)
	mn.link(0, 2)
	// The fetcher asks the peers in ID order: make the first one evil.
	evil, good := 1, 2
	if mn.hosts[2].ID() < mn.hosts[1].ID() {
		evil, good = 2, 1
	}
	var asked atomic.Int64
	mn.hosts[evil].SetStreamHandler(Protocol, evilHandler(mn.stores[evil], &asked))

	data := make([]byte, 5<<20+7)
	rand.Read(data)
	key, _ := media.NewFileKey(rand.Reader)
	blob, err := media.Import(mn.stores[good], bytes.NewReader(data), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := media.Import(mn.stores[evil], bytes.NewReader(data), key); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := mn.media[0].Fetch(ctx, blob.Root); err != nil {
		t.Fatalf("fetch with an evil peer first: %v", err)
	}
	if got := readBlob(t, mn.stores[0], blob.Root, key); !bytes.Equal(got, data) {
		t.Fatal("fetched plaintext differs")
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("the evil peer served %d blocks, want exactly 1 (then it is not asked again)", n)
	}
	if n := mn.media[good].served.Load(); n != 7 { // manifest + 6 blocks
		t.Fatalf("the good peer served %d blocks, want 7", n)
	}

	// With only the evil peer, nothing bad is stored and the fetch fails.
	blob2, _, _ := mn.addBlob(evil, 100)
	if err := mn.media[0].Fetch(ctx, blob2.Root); !errors.Is(err, ErrNotFound) {
		t.Fatalf("evil only: got %v, want ErrNotFound", err)
	}
	if ok, _ := mn.stores[0].Has(blob2.Root); ok {
		t.Fatal("a corrupted block was stored")
	}
}

// putHook is a store that calls after on every Put.
type putHook struct {
	media.BlobStore
	after func()
}

func (s *putHook) Put(c cid.Cid, data []byte) error {
	err := s.BlobStore.Put(c, data)
	s.after()
	return err
}

// An interrupted fetch resumes: the second fetch asks only for the blocks
// the first did not store.
func TestMediaFetchResume(t *testing.T) {
	mn := newMediaNet(t, 2)
	mn.link(0, 1)
	blob, key, data := mn.addBlob(0, 8<<20+3) // manifest + 9 blocks
	total, err := media.Blocks(mn.stores[0], blob.Root)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, stop := context.WithCancel(ctx)
	var puts atomic.Int64
	mn.media[1].store = &putHook{BlobStore: mn.stores[1], after: func() {
		if puts.Add(1) == 3 { // the manifest and two blocks
			stop()
		}
	}}
	if err := mn.media[1].Fetch(first, blob.Root); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: got %v, want context.Canceled", err)
	}
	missing, err := media.Missing(mn.stores[1], blob.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) == 0 || len(missing) >= len(total) {
		t.Fatalf("after the interruption %d of %d blocks are missing; want some but not all", len(missing), len(total))
	}
	// Let the server finish what the interrupted fetch had asked for.
	eventually(t, 5*time.Second, "interrupted streams closed", func() (bool, string) {
		return mn.media[0].PeerLimits.Streams(mn.hosts[1].ID()) == 0, ""
	})
	before := mn.media[0].served.Load()
	if err := mn.media[1].Fetch(ctx, blob.Root); err != nil {
		t.Fatalf("resumed fetch: %v", err)
	}
	if n := mn.media[0].served.Load() - before; n != int64(len(missing)) {
		t.Fatalf("the resumed fetch asked for %d blocks, want the %d missing", n, len(missing))
	}
	if got := readBlob(t, mn.stores[1], blob.Root, key); !bytes.Equal(got, data) {
		t.Fatal("resumed plaintext differs")
	}
}

// A peer gets at most MaxPeerStreams streams served at once.
func TestMediaPeerStreamLimit(t *testing.T) {
	mn := newMediaNet(t, 2)
	mn.link(0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var open []network.Stream
	defer func() {
		for _, s := range open {
			s.Reset()
		}
	}()
	for range MaxPeerStreams {
		s, err := mn.hosts[1].NewStream(ctx, mn.hosts[0].ID(), Protocol)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
		c := newMediaConn(s) // a first exchange makes the server take the stream
		c.send(&mediaMsg{Op: mediaOpGet, CID: media.BlockCID(cid.Raw, nil).Bytes()})
		if m, err := c.recv(); err != nil || m.Op != mediaOpNotFound {
			t.Fatalf("stream within the limit: %v %v", m, err)
		}
	}
	eventually(t, 5*time.Second, "streams admitted", func() (bool, string) {
		return mn.media[0].PeerLimits.Streams(mn.hosts[1].ID()) == MaxPeerStreams, ""
	})
	s, err := mn.hosts[1].NewStream(ctx, mn.hosts[0].ID(), Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	c := newMediaConn(s)
	c.send(&mediaMsg{Op: mediaOpGet, CID: media.BlockCID(cid.Raw, nil).Bytes()})
	if _, err := c.recv(); err == nil {
		t.Fatal("a stream over the per-peer limit was served")
	}
}

func FuzzDecodeMediaMsg(f *testing.F) {
	for _, m := range []*mediaMsg{
		{Op: mediaOpGet, CID: media.BlockCID(cid.Raw, []byte("x")).Bytes()},
		{Op: mediaOpBlock, CID: []byte{1}, Data: []byte("data")},
		{Op: mediaOpNotFound, CID: []byte{1}},
		{Op: mediaOpError, Err: "no"},
	} {
		b, _ := crdt.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0xa1, 0x62, 'o', 'p', 0x63, 'g', 'e', 't'})
	f.Fuzz(func(t *testing.T, b []byte) {
		agreeWithCanonical(t, b) // the hand-written codec accepts what the generic one does
		m, err := decodeMediaMsg(b)
		if err != nil {
			return
		}
		again, err := crdt.Marshal(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a frame that does not re-encode to itself: %x", b)
		}
		parseMediaCID(m.CID) // must not panic
	})
}

// FuzzMediaFrame sends arbitrary frames to a live media handler (real
// libp2p stack on mocknet) and checks that every answer decodes and that
// the handler keeps serving.
func FuzzMediaFrame(f *testing.F) {
	mn := newMediaNet(&testing.T{}, 2)
	defer mn.close()
	mn.link(0, 1)
	blob, _, _ := mn.addBlob(0, 100)
	valid := func(m *mediaMsg) []byte {
		b, err := crdt.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	get := valid(&mediaMsg{Op: mediaOpGet, CID: blob.Root.Bytes()})
	f.Add(get, []byte{})
	f.Add(get, get)
	f.Add(valid(&mediaMsg{Op: mediaOpGet, CID: []byte("not a cid")}), get)
	f.Add(valid(&mediaMsg{Op: mediaOpGet, CID: media.BlockCID(cid.DagCBOR, []byte("x")).Bytes()}), []byte{0xff})
	f.Add(valid(&mediaMsg{Op: mediaOpBlock, CID: blob.Root.Bytes(), Data: []byte("x")}), get)
	f.Add([]byte{0xa1, 0x62, 'o', 'p'}, []byte{0xff})

	server := mn.hosts[0].ID()
	client := mn.hosts[1]
	f.Fuzz(func(t *testing.T, first, second []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := client.NewStream(ctx, server, Protocol)
		if err != nil {
			t.Skip("stream:", err)
		}
		st.SetDeadline(time.Now().Add(5 * time.Second))
		w := msgio.NewVarintWriter(st)
		r := msgio.NewVarintReaderSize(st, mediaMaxFrame)
		w.WriteMsg(first)
		w.WriteMsg(second)
		st.CloseWrite()
		for {
			b, err := r.ReadMsg()
			if err != nil {
				break
			}
			if _, err := decodeMediaMsg(b); err != nil {
				t.Fatalf("server sent an undecodable frame: %v", err)
			}
		}
		st.Close()
		// The server still serves a proper request.
		s := &fetchSession{m: mn.media[1], conns: map[peer.ID]*mediaConn{}}
		defer s.close()
		var data []byte
		for try := 0; try < 50; try++ { // a finished stream may still hold its slot for a moment
			if data, err = s.get(ctx, server, blob.Root); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil || media.VerifyBlock(blob.Root, data) != nil {
			t.Fatalf("server stopped serving: %v", err)
		}
	})
}
