package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestMediaThroughBlindHost is issue 5's acceptance with a blind host in
// the path: on a line A – H – B (A and B never connect), H hosts the
// encrypted room without its keys; A sends a 1 MB file, B reads the message
// and fetches the file by CID through H (pull-through), byte-identical; no
// 4 KiB slice of the plaintext is stored under H's home. The search is
// shown to work by finding the slice in the file B wrote out.
func TestMediaThroughBlindHost(t *testing.T) {
	t.Parallel()
	a, h, b := startDaemon(t, "A"), startDaemon(t, "H"), startDaemon(t, "B")
	a.must(nil, "connect", h.addr)
	b.must(nil, "connect", h.addr)
	notLinked := func() {
		t.Helper()
		for _, d := range []*daemon{a, b} {
			var p api.PeersResp
			d.must(&p, "peers")
			for _, pi := range p.Peers {
				if pi.PeerID == a.peerID || pi.PeerID == b.peerID {
					t.Fatalf("%s is connected to %s: A and B must meet only through H", d.name, pi.PeerID)
				}
			}
		}
	}
	notLinked()

	var rr api.RoomResp
	a.must(&rr, "room", "create", "--name", marker("media-host")) // private: encrypted
	room := rr.Room
	hostAndJoin(t, a, h, b, room)

	data := make([]byte, 1<<20)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "random.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var sf api.SendFileResp
	a.must(&sf, "send-file", room, src)
	file := acceptMedia(t, b, room, sf.Event)
	if file.CID != sf.CID || file.Size != uint64(len(data)) || file.Key == "" {
		t.Fatalf("file %+v, sent %s", file, sf.CID)
	}
	out := filepath.Join(b.home, "out", "random.bin") // inside B's home: the search must find it
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	b.must(nil, "media", "get", file.CID+"#"+file.Key, "-o", out)
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the file fetched through the host differs (%d octets, %v)", len(got), err)
	}
	notLinked()

	slice := data[len(data)/2:][:4096]
	if got := filesHolding(t, h.home, slice); len(got) > 0 {
		t.Errorf("the blind host stores plaintext of the file in %v", got)
	}
	// The search can fail: it finds the slice in the file B wrote out.
	if got := filesHolding(t, b.home, slice); len(got) != 1 || got[0] != out {
		t.Errorf("searching B's home found %v, want [%s]", got, out)
	}
}
