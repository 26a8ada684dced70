package mediasvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
)

// A blind host (a node that holds a blob's blocks but not its key) serves
// it: it fetched the ciphertext without the key, cannot read it, and a
// member that reaches only the blind host fetches and decrypts the file.
func TestMediaFetchFromBlindHost(t *testing.T) {
	const author, member, blind = 0, 1, 2
	mn := newMediaNet(t, 3)
	marker := []byte("PLAINTEXT-MARKER ")
	data := bytes.Repeat(marker, (3<<20)/len(marker)+1) // manifest + 4 blocks
	key, err := media.NewFileKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := media.Import(mn.stores[author], bytes.NewReader(data), key)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := media.Blocks(mn.stores[author], blob.Root)
	if err != nil || len(blocks) != 4 {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The blind host replicates the blob by CID alone, then loses the author.
	mn.link(author, blind)
	if err := mn.media[blind].Fetch(ctx, blob.Root); err != nil {
		t.Fatalf("blind host fetch: %v", err)
	}
	mn.cut(author, blind)
	if miss, err := media.Missing(mn.stores[blind], blob.Root); err != nil || len(miss) != 0 {
		t.Fatalf("blind host misses %d blocks (%v)", len(miss), err)
	}
	_ = mn.stores[blind].List(func(c cid.Cid) bool {
		b, _ := mn.stores[blind].Get(c)
		if bytes.Contains(b, marker) {
			t.Errorf("the blind host holds plaintext in %s", c)
		}
		return true
	})
	other, _ := media.NewFileKey(rand.Reader) // any key but the file's
	if r, err := media.NewReader(mn.stores[blind], blob.Root, other); err == nil {
		if _, err := io.ReadAll(r); !errors.Is(err, media.ErrDecrypt) {
			t.Fatalf("the blind host read the blob without its key: %v", err)
		}
	}

	// The member reaches only the blind host.
	mn.link(member, blind)
	if slices.Contains(mn.hosts[member].Network().Peers(), mn.hosts[author].ID()) {
		t.Fatal("the member is connected to the author")
	}
	authorServed, blindServed := mn.media[author].served.Load(), mn.media[blind].served.Load()
	if err := mn.media[member].Fetch(ctx, blob.Root); err != nil {
		t.Fatalf("fetch from the blind host: %v", err)
	}
	if got := readBlob(t, mn.stores[member], blob.Root, key); !bytes.Equal(got, data) {
		t.Fatal("the plaintext fetched from the blind host differs")
	}
	if n := mn.media[blind].served.Load() - blindServed; n != int64(len(blocks))+1 {
		t.Fatalf("the blind host served %d blocks, want %d (manifest and blocks)", n, len(blocks)+1)
	}
	if n := mn.media[author].served.Load() - authorServed; n != 0 {
		t.Fatalf("the author served %d blocks to the member", n)
	}
}

// cutStore is a server's store that cuts the connection to the fetcher
// while serving the first ciphertext block read once due() holds, and
// records what is read once recording is on.
type cutStore struct {
	media.BlobStore
	due  func() bool
	cut  func()
	once sync.Once

	mu        sync.Mutex
	recording bool
	asked     map[string]int // guarded by mu
	bytes     int64          // guarded by mu
}

func (s *cutStore) Get(c cid.Cid) ([]byte, error) {
	data, err := s.BlobStore.Get(c)
	if c.Type() == cid.Raw && s.due() {
		s.once.Do(s.cut) // this block is never delivered
	}
	s.mu.Lock()
	if s.recording && err == nil {
		s.asked[c.KeyString()]++
		s.bytes += int64(len(data))
	}
	s.mu.Unlock()
	return data, err
}

// A transfer cut off mid-way by the network (the connection to the
// serving peer drops while blocks are in flight) fails; once the peer is
// back, a second fetch transfers exactly the blocks the first did not
// store, and the file is byte-identical.
func TestMediaFetchConnectionCutAndResume(t *testing.T) {
	const server, client = 0, 1
	mn := newMediaNet(t, 2)
	mn.link(server, client)
	blob, key, data := mn.addBlob(server, 16<<20+3) // manifest + 17 blocks
	blocks, err := media.Blocks(mn.stores[server], blob.Root)
	if err != nil || len(blocks) != 17 {
		t.Fatalf("%d blocks, %v", len(blocks), err)
	}
	// Cut once the client has stored the manifest and two blocks: with at
	// most mediaFetchWorkers requests in flight, some blocks are still to
	// be asked for.
	var stored atomic.Int64
	mn.media[client].store = &putHook{BlobStore: mn.stores[client], after: func() { stored.Add(1) }}
	cs := &cutStore{BlobStore: mn.stores[server], due: func() bool { return stored.Load() >= 3 }, cut: func() { mn.cut(server, client) }, asked: map[string]int{}}
	mn.media[server].store = cs

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := mn.media[client].Fetch(ctx, blob.Root); err == nil {
		t.Fatal("a fetch cut off mid-transfer succeeded")
	}
	missing, err := media.Missing(mn.stores[client], blob.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) == 0 || len(missing) == len(blocks) {
		t.Fatalf("after the cut %d of %d blocks are missing; want some but not all (stored %d)", len(missing), len(blocks), stored.Load())
	}
	var missingBytes int64
	want := map[string]int{}
	for _, c := range missing {
		b, err := mn.stores[server].Get(c)
		if err != nil {
			t.Fatal(err)
		}
		missingBytes += int64(len(b))
		want[c.KeyString()] = 1
	}
	// The server has finished with the streams of the cut connection.
	eventually(t, 5*time.Second, "cut streams released", func() (bool, string) {
		return mn.media[server].PeerLimits.Streams(mn.hosts[client].ID()) == 0, ""
	})

	cs.mu.Lock()
	cs.recording = true
	cs.mu.Unlock()
	mn.link(server, client)
	before := mn.media[server].served.Load()
	if err := mn.media[client].Fetch(ctx, blob.Root); err != nil {
		t.Fatalf("resumed fetch: %v", err)
	}
	if n := mn.media[server].served.Load() - before; n != int64(len(missing)) {
		t.Fatalf("the resumed fetch transferred %d blocks, want the %d missing", n, len(missing))
	}
	cs.mu.Lock()
	asked, sent := cs.asked, cs.bytes
	cs.mu.Unlock()
	if len(asked) != len(want) {
		t.Fatalf("the resumed fetch read %d distinct blocks, want %d", len(asked), len(want))
	}
	for k, n := range asked {
		if want[k] != n {
			t.Fatalf("the resumed fetch read block %s %d times; it was missing %d times", cid.MustParse([]byte(k)), n, want[k])
		}
	}
	if sent != missingBytes {
		t.Fatalf("the resumed fetch transferred %d octets, want %d (the missing blocks)", sent, missingBytes)
	}
	if got := readBlob(t, mn.stores[client], blob.Root, key); !bytes.Equal(got, data) {
		t.Fatal("the resumed file differs")
	}
}

// Two fetches at once from a single holder need more streams than it
// serves to one peer (MaxPeerStreams); a refused stream is a busy
// peer, not a bad one, and both fetches complete.
func TestMediaConcurrentFetchesFromOnePeer(t *testing.T) {
	const server, client = 0, 1
	mn := newMediaNet(t, 2)
	mn.link(server, client)
	const n = 3
	type file struct {
		blob media.Blob
		key  media.FileKey
		data []byte
	}
	var files []file
	for i := range n {
		blob, key, data := mn.addBlob(server, 4<<20+i)
		files = append(files, file{blob, key, data})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, n)
	for _, f := range files {
		go func() { errs <- mn.media[client].Fetch(ctx, f.blob.Root) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent fetch: %v", err)
		}
	}
	for i, f := range files {
		if got := readBlob(t, mn.stores[client], f.blob.Root, f.key); !bytes.Equal(got, f.data) {
			t.Fatalf("file %d differs", i)
		}
	}
	// Back to back, without waiting for the server to release the
	// streams of the previous fetch.
	for i := range n {
		blob, _, _ := mn.addBlob(server, 2<<20+i)
		if err := mn.media[client].Fetch(ctx, blob.Root); err != nil {
			t.Fatalf("fetch %d back to back: %v", i, err)
		}
	}
}

// media/get decrypts while it fetches: the file comes out whole and
// byte-identical; a wrong key or a blob no peer holds fails with the right
// kind and leaves no file behind.
func TestMediaGetStreams(t *testing.T) {
	const server, client = 0, 1
	mn := newMediaNet(t, 2)
	mn.link(server, client)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	kindOf := func(err error) api.Kind {
		var e *api.Error
		if errors.As(err, &e) {
			return e.Kind
		}
		return ""
	}
	for i, size := range []int{0, 1, media.ChunkSize, media.ChunkSize + 1, 5<<20 + 9} {
		blob, key, data := mn.addBlob(server, size)
		out := filepath.Join(dir, fmt.Sprintf("ok-%d", i))
		resp, err := mn.media[client].Get(ctx, api.MediaGetReq{CID: blob.Root.String(), Key: KeyString(key), Out: out}, nil)
		if err != nil || resp.Size != int64(size) {
			t.Fatalf("size %d: get: %+v %v", size, resp, err)
		}
		if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: the file written differs (%d octets, %v)", size, len(got), err)
		}
	}

	blob, _, _ := mn.addBlob(server, 6<<20)
	wrong, _ := media.NewFileKey(rand.Reader)
	out := filepath.Join(dir, "wrong")
	_, err := mn.media[client].Get(ctx, api.MediaGetReq{CID: blob.Root.String(), Key: KeyString(wrong), Out: out}, nil)
	if kindOf(err) != api.KindInvalid {
		t.Fatalf("wrong key: %v, want a KindInvalid error", err)
	}

	nowhere := media.BlockCID(cid.DagCBOR, []byte("held by no one"))
	_, err = mn.media[client].Get(ctx, api.MediaGetReq{CID: nowhere.String(), Key: KeyString(wrong), Out: filepath.Join(dir, "nowhere")}, nil)
	if kindOf(err) != api.KindNotFound {
		t.Fatalf("unknown blob: %v, want a KindNotFound error", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, p := range left {
		if b := filepath.Base(p); !strings.HasPrefix(b, "ok-") {
			t.Errorf("a failed get left %s behind", b)
		}
	}
}
