package e2e

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestMediaTransfer: node A adds a 5 MB random file, node B (connected)
// fetches it by CID and the bytes match; a CID nobody holds fails with
// exit 1 and one "parley: " line.
func TestMediaTransfer(t *testing.T) {
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	a.must(nil, "connect", b.addr)

	data := make([]byte, 5_000_000)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "random.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var added api.MediaAddResp
	a.must(&added, "media", "add", src)
	if added.CID == "" || added.Key == "" || added.Size != int64(len(data)) || added.MIME == "" {
		t.Fatalf("media add: %+v", added)
	}

	// The key inside the CID argument.
	out := filepath.Join(t.TempDir(), "fetched.bin")
	var got api.MediaGetResp
	b.must(&got, "media", "get", added.CID+"#"+added.Key, "-o", out)
	if got.CID != added.CID || got.Size != int64(len(data)) {
		t.Fatalf("media get: %+v, want cid %s size %d", got, added.CID, len(data))
	}
	if fetched, err := os.ReadFile(out); err != nil || !bytes.Equal(fetched, data) {
		t.Fatalf("fetched file differs from the original (%d bytes, %v)", len(fetched), err)
	}

	// The key as a flag, and human output; B now holds the blob itself.
	out2 := filepath.Join(t.TempDir(), "again.bin")
	if r := b.run("", "media", "get", added.CID, "--key", added.Key, "-o", out2); r.code != 0 || !strings.Contains(r.stdout, "wrote") {
		t.Fatalf("media get --key: %v", r)
	}
	if fetched, err := os.ReadFile(out2); err != nil || !bytes.Equal(fetched, data) {
		t.Fatalf("second fetch differs (%d bytes, %v)", len(fetched), err)
	}

	// A wrong key is refused and writes nothing.
	bad := strings.Repeat("A", 43)
	out3 := filepath.Join(t.TempDir(), "wrong.bin")
	if r := b.run("", "media", "get", added.CID+"#"+bad, "-o", out3); r.code != 1 || !strings.HasPrefix(r.stderr, "parley: ") {
		t.Fatalf("wrong key: %v", r)
	}
	if _, err := os.Stat(out3); !os.IsNotExist(err) {
		t.Fatalf("a wrong key left %s behind (stat: %v)", out3, err)
	}

	// A CID that no node holds.
	src2 := filepath.Join(t.TempDir(), "other.txt")
	os.WriteFile(src2, []byte("held nowhere once removed"), 0o600)
	var other api.MediaAddResp
	c := startDaemon(t, "C") // not connected to anyone
	c.must(&other, "media", "add", src2)
	r := b.run("", "media", "get", other.CID+"#"+other.Key, "-o", filepath.Join(t.TempDir(), "missing"))
	if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("missing CID: want exit 1 and one 'parley: ' line, got %v", r)
	}
	if !strings.Contains(r.stderr, "not held") {
		t.Errorf("missing CID: unhelpful message %q", r.stderr)
	}

	// No key, and no message here carries the file: a clear refusal.
	// Without -o: a usage error.
	if r := b.run("", "media", "get", added.CID, "-o", out); r.code != 1 || !strings.Contains(r.stderr, "give it as CID#KEY or --key") {
		t.Fatalf("no key: want exit 1 asking for the key, got %v", r)
	}
	if r := b.run("", "media", "get", added.CID+"#"+added.Key); r.code != 2 {
		t.Fatalf("no -o: want exit 2, got %v", r)
	}
}
