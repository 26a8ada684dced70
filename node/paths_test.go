package node

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/api"
	"github.com/parley-p2p/parley/node/mediasvc"
)

// outputTraps makes, in a fresh folder, a regular file "target" holding
// "keep" and three outputs that are not regular files: a symlink to it, a
// FIFO and a symlink to /dev/null (a device; never written here).
func outputTraps(t *testing.T) (dir string, outs []string) {
	t.Helper()
	dir = t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	link, fifo, dev := filepath.Join(dir, "link"), filepath.Join(dir, "fifo"), filepath.Join(dir, "devnull")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	if err := os.Symlink(os.DevNull, dev); err != nil {
		t.Fatal(err)
	}
	return dir, []string{link, fifo, dev}
}

// checkTrapsUntouched checks that every output is still what outputTraps made.
func checkTrapsUntouched(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(dir, "target")); err != nil || string(b) != "keep" {
		t.Errorf("the symlink's target changed: %q, %v", b, err)
	}
	for name, want := range map[string]os.FileMode{"link": os.ModeSymlink, "fifo": os.ModeNamedPipe, "devnull": os.ModeSymlink} {
		st, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || st.Mode().Type() != want {
			t.Errorf("%s is no longer a %v: %v, %v", name, want, st.Mode(), err)
		}
	}
	if d, _ := os.Readlink(filepath.Join(dir, "devnull")); d != os.DevNull {
		t.Errorf("devnull now points at %q", d)
	}
}

// media get -o refuses an output that exists and is not a regular file,
// and changes nothing (it used to rename a regular file over it).
func TestMediaGetRefusesNonRegularOutput(t *testing.T) {
	mn := newMediaNet(t, 1)
	blob, key, _ := mn.addBlob(0, 5000)
	dir, outs := outputTraps(t)
	for _, out := range outs {
		_, err := mn.media[0].Get(context.Background(), api.MediaGetReq{CID: blob.Root.String(), Key: mediasvc.KeyString(key), Out: out}, nil)
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") || KindOf(err) != api.KindInvalid {
			t.Errorf("get -o %s: %v, want an invalid 'is not a regular file'", filepath.Base(out), err)
		}
	}
	checkTrapsUntouched(t, dir)
	// A regular file is still replaced.
	target := filepath.Join(dir, "target")
	if _, err := mn.media[0].Get(context.Background(), api.MediaGetReq{CID: blob.Root.String(), Key: mediasvc.KeyString(key), Out: target}, nil); err != nil {
		t.Fatalf("get -o a regular file: %v", err)
	}
}

// export -o refuses the same outputs.
func TestExportRefusesNonRegularOutput(t *testing.T) {
	tn := newTestNet(t, 1)
	e := tn.reps[0].Engine
	r, err := e.CreateRoom(context.Background(), api.RoomCreateReq{Name: "out"})
	if err != nil {
		t.Fatal(err)
	}
	dir, outs := outputTraps(t)
	for _, out := range outs {
		_, err := e.Export(context.Background(), api.ExportReq{Room: r.Room, Out: out})
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("export -o %s: %v, want 'is not a regular file'", filepath.Base(out), err)
		}
	}
	checkTrapsUntouched(t, dir)
	if _, err := e.Export(context.Background(), api.ExportReq{Room: r.Room, Out: filepath.Join(dir, "target")}); err != nil {
		t.Fatalf("export over a regular file: %v", err)
	}
}

// media add, send-file's attach and import refuse a FIFO at once (opening
// one for reading used to block the request until a writer came).
func TestReadRefusesFIFO(t *testing.T) {
	mn := newMediaNet(t, 1)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	// Should a read block after all, a writer comes at the end to free it.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	for name, read := range map[string]func() error{
		"media add": func() error { _, err := mn.media[0].Add(context.Background(), api.MediaAddReq{Path: fifo}); return err },
		"send-file": func() error { _, _, err := mn.media[0].Attach(fifo, false); return err },
		"import": func() error {
			_, err := mn.reps[0].Engine.Import(context.Background(), api.ImportReq{Path: fifo})
			return err
		},
	} {
		done := make(chan error, 1)
		go func() { done <- read() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
				t.Errorf("%s of a FIFO: %v, want 'is not a regular file'", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s of a FIFO still blocked after 30 s", name)
		}
	}
}
