package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/crdt/badgerstore"
)

// TestDiskFull: a daemon whose home is on a small filesystem that fills up
// while its peers keep writing refuses its own sends with a clear error,
// keeps serving, and once space returns converges with its peers without a
// restart and without losing an acknowledged message. Without the disk
// guard, badger dies with SIGBUS here (tmpfs faults a write through a
// memory-mapped file that finds no free page).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the full disk (run the e2e tests as root to include it)")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=256m"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): needs CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) }) // runs after the daemons are killed
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	c := newDaemon(t, "C", filepath.Join(mnt, "home"))
	if err := os.Mkdir(c.home, 0o700); err != nil {
		t.Fatal(err)
	}
	c.start()
	a.must(nil, "connect", b.addr)
	b.must(nil, "connect", c.addr)
	a.must(nil, "connect", c.addr)
	room := publicRoom(t, a, b, c)

	var acked []string
	send := func(d *daemon, text string) {
		t.Helper()
		var ev api.EventResp
		d.must(&ev, "send", room, text)
		acked = append(acked, ev.Event)
	}
	for _, d := range []*daemon{a, b, c} {
		send(d, "before, from "+d.name)
	}

	// Fill the filesystem up to just under the store's reserve.
	const reserve = 2*badgerstore.MemTableSize + badgerstore.NumLevelZeroTables*badgerstore.MemTableSize + badgerstore.BaseLevelSize
	ballast := filepath.Join(mnt, "ballast")
	fill(t, mnt, ballast, reserve-(4<<20))

	for k := range 5 {
		send(a, fmt.Sprint("while full, from A ", k))
		send(b, fmt.Sprint("while full, from B ", k))
	}
	r := c.run("", "send", room, "C on a full disk")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: disk full: ") {
		t.Fatalf("send on a full disk: want exit 1 and parley: disk full: ..., got %v", r)
	}
	// C keeps serving reads, and took nothing in while its disk was full.
	h, err := c.history(room)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(h, func(e api.TimelineEvent) bool { return strings.HasPrefix(e.Body, "while full") }) {
		t.Fatal("C shows a message it received while its disk was full")
	}
	roomInfo(t, c, room)
	if !c.running() {
		t.Fatal("C died on a full disk")
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	send(c, "C after the disk was freed")
	send(a, "A after the disk was freed")
	eventually(t, 3*govTimeout, "convergence after the disk was freed", func() error {
		var first []string
		var heads []string
		for i, d := range []*daemon{a, b, c} {
			var info api.RoomInfoResp
			if err := d.try(&info, "room", "info", room); err != nil {
				return err
			}
			slices.Sort(info.Sync.Heads)
			h, err := d.history(room)
			if err != nil {
				return err
			}
			got := ids(h)
			if i == 0 {
				first, heads = got, info.Sync.Heads
			}
			if info.Sync.Missing != 0 || !slices.Equal(info.Sync.Heads, heads) || !slices.Equal(got, first) {
				return fmt.Errorf("%s: %d events, missing %d, heads %v (A: %d events, heads %v)", d.name, len(got), info.Sync.Missing, info.Sync.Heads, len(first), heads)
			}
			for _, id := range acked {
				if !slices.Contains(got, id) {
					return fmt.Errorf("%s lacks acknowledged %s", d.name, id)
				}
			}
		}
		return nil
	})
	if !c.running() {
		t.Fatal("C died")
	}
}

// fill writes a ballast file until the filesystem of dir has about left
// bytes free.
func fill(t *testing.T, dir, path string, left int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*int64(st.Bsize) - left
	if n <= 0 {
		t.Fatalf("filesystem of %s has only %d bytes free", dir, int64(st.Bavail)*int64(st.Bsize))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := f.Write(chunk[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}
