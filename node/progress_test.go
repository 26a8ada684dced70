package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/media"
)

// serveTestNode opens and serves a node on loopback with an on-disk store
// in a temporary home, until the test ends.
func serveTestNode(t *testing.T) (*Node, context.Context) {
	t.Helper()
	nd, err := Open(Config{Home: t.TempDir(), API: "127.0.0.1:0", Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- nd.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	<-nd.Ready()
	return nd, ctx
}

// The progress table: bad or duplicate tokens count nothing, a token is
// found while its operation runs and gone once it is retired, and the table
// is bounded.
func TestProgressTable(t *testing.T) {
	var tb progressTable
	for _, bad := range []string{"", "short", string(make([]byte, 65))} {
		if p, _ := tb.start(bad); p != nil {
			t.Fatalf("token %q registered", bad)
		}
	}
	p, done := tb.start("abcdefgh")
	if dup, _ := tb.start("abcdefgh"); dup != nil {
		t.Fatal("a token registered twice")
	}
	p.setTotal(10)
	p.add(4)
	if r, err := tb.get(context.Background(), api.ProgressReq{ID: "abcdefgh"}); err != nil || r.Done != 4 || r.Total != 10 {
		t.Fatalf("progress %+v %v", r, err)
	}
	done()
	_, err := tb.get(context.Background(), api.ProgressReq{ID: "abcdefgh"})
	if ae := (*api.Error)(nil); !errors.As(err, &ae) || ae.Kind != api.KindNotFound {
		t.Fatalf("a retired token: %v", err)
	}
	var nilp *progress
	nilp.add(1) // counts nothing, and does not panic
	for i := range maxProgress {
		if q, _ := tb.start(fmt.Sprintf("token-%04d", i)); q == nil {
			t.Fatalf("token %d refused below the bound", i)
		}
	}
	if q, _ := tb.start("one-too-many"); q != nil {
		t.Fatal("the table grew past its bound")
	}
}

// A chat import counts its messages in the progress its request names: a
// first import counts every message, a second (nothing new) too.
func TestImportProgress(t *testing.T) {
	src := t.TempDir()
	writeTelegramExport(t, src, 120)
	nd, ctx := serveTestNode(t)
	req := api.ImportChatReq{Format: "telegram", Path: src, Name: "Counted"}
	for round := range 2 {
		p := &progress{}
		r, err := nd.importChatCounted(ctx, req, p)
		if err != nil {
			t.Fatal(err)
		}
		if p.done.Load() != 120 || p.total.Load() != 120 || r.New+r.Existing != 120 || (round == 1) != (r.Existing == 120) {
			t.Fatalf("round %d: progress %d of %d (import %+v)", round, p.done.Load(), p.total.Load(), r)
		}
		req = api.ImportChatReq{Format: "telegram", Path: src, Room: r.Room} // the second adds nothing
	}
	// An archive's export counts the events read of the room's events, and
	// its import the events taken in of the archive's.
	out := filepath.Join(t.TempDir(), "room.car")
	p := &progress{}
	ex, err := nd.engine.export(ctx, api.ExportReq{Room: req.Room, Out: out}, nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Events < 120 || p.done.Load() != int64(ex.Events) || p.total.Load() != int64(ex.Events) {
		t.Fatalf("export of %d events: progress %d of %d", ex.Events, p.done.Load(), p.total.Load())
	}
	path, a, err := readArchive(out)
	if err != nil {
		t.Fatal(err)
	}
	p = &progress{}
	im, err := nd.engine.importArchive(ctx, path, a, p)
	if err != nil {
		t.Fatal(err)
	}
	if p.done.Load() != int64(im.Events) || p.total.Load() != int64(im.Events) || im.Events != ex.Events {
		t.Fatalf("import of %d events: progress %d of %d", im.Events, p.done.Load(), p.total.Load())
	}
}

// A readable export (HTML page, JSON lines, Markdown) counts the room's
// readable messages: it ends with done and total both the messages it
// wrote.
func TestExportReadableProgress(t *testing.T) {
	src := t.TempDir()
	writeTelegramExport(t, src, 75)
	nd, ctx := serveTestNode(t)
	r, err := nd.importChat(ctx, api.ImportChatReq{Format: "telegram", Path: src, Name: "Readable"})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"html", "jsonl", "md"} {
		p := &progress{}
		out := filepath.Join(t.TempDir(), "out."+format)
		got, err := nd.exportReadableCounted(ctx, api.ExportReadableReq{Room: r.Room, Format: format, Out: out}, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Messages != 75 || p.done.Load() != 75 || p.total.Load() != 75 {
			t.Fatalf("%s: %d messages, progress %d of %d", format, got.Messages, p.done.Load(), p.total.Load())
		}
	}
}

// A media get counts the plaintext octets written of the file's size, for
// a single-block file and a file of several blocks (a manifest).
func TestMediaGetProgress(t *testing.T) {
	nd, ctx := serveTestNode(t)
	for _, size := range []int{1000, 3*media.BlockSize + 17} {
		src := filepath.Join(t.TempDir(), "file.bin")
		if err := os.WriteFile(src, bytes.Repeat([]byte{7}, size), 0o600); err != nil {
			t.Fatal(err)
		}
		added, err := nd.media.Add(ctx, api.MediaAddReq{Path: src})
		if err != nil {
			t.Fatal(err)
		}
		p := &progress{}
		out := filepath.Join(t.TempDir(), "copy.bin")
		got, err := nd.media.Get(ctx, api.MediaGetReq{CID: added.CID, Key: added.Key, Out: out}, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != int64(size) || p.done.Load() != int64(size) || p.total.Load() != int64(size) {
			t.Fatalf("%d octets: got %d, progress %d of %d", size, got.Size, p.done.Load(), p.total.Load())
		}
	}
}
