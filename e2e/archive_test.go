package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestArchiveExportImport: a room's history (50 messages, a redaction and a
// kick) exported by A and imported by B, which never talks to A, gives B the
// same timeline and the same room state; importing again adds nothing; a
// truncated archive is refused and changes nothing.
func TestArchiveExportImport(t *testing.T) {
	t.Parallel()
	a, c := startDaemon(t, "A"), startDaemon(t, "C")
	a.must(nil, "connect", c.addr)
	room := publicRoom(t, a, c)
	c.must(nil, "send", room, "hello from C")
	waitBodies(t, []*daemon{a}, room, "hello from C")
	var first api.EventResp
	for i := range 50 {
		var ev api.EventResp
		a.must(&ev, "send", room, fmt.Sprintf("message %d", i))
		if i == 0 {
			first = ev
		}
	}
	a.must(nil, "redact", room, first.Event, "--reason", "typo")
	a.must(nil, "room", "kick", room, c.user, "--reason", "archived")
	waitMembership(t, []*daemon{a}, room, c.user, "leave")

	file := filepath.Join(t.TempDir(), "room.car")
	var ex api.ExportResp
	a.must(&ex, "export", room, "-o", file)
	infoA := roomInfo(t, a, room)
	if ex.Room != room || ex.Events != infoA.Sync.Events || ex.Blobs != 0 {
		t.Fatalf("export answered %+v; A holds %d events of %s", ex, infoA.Sync.Events, room)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("archive file: %v, mode %v (want 0600)", err, st.Mode().Perm())
	}
	histA, err := a.history(room)
	if err != nil {
		t.Fatal(err)
	}

	b := startDaemon(t, "B") // fresh, connected to nobody
	var im api.ImportResp
	b.must(&im, "import", file)
	if im != (api.ImportResp{Room: room, Events: ex.Events, New: ex.Events}) {
		t.Fatalf("import answered %+v, want room %s with %d events, all new", im, room, ex.Events)
	}
	histB, err := b.history(room)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(histA), ids(histB)) {
		t.Fatalf("history ids differ:\nA %v\nB %v", ids(histA), ids(histB))
	}
	if !slices.ContainsFunc(histB, func(e api.TimelineEvent) bool { return e.ID == first.Event && e.Redacted && e.Body == "" }) {
		t.Errorf("B does not show the redacted message %s as redacted", first.Event)
	}
	infoB := roomInfo(t, b, room)
	sameState(t, infoA, infoB)
	if m := findMember(infoB.Members, c.user); m == nil || m.Membership != "leave" {
		t.Errorf("B shows the kicked user as %+v, want membership leave", m)
	}

	// Again: idempotent.
	b.must(&im, "import", file)
	if im.New != 0 || im.Events != ex.Events {
		t.Fatalf("second import answered %+v, want new 0", im)
	}

	// A truncated archive: refused, nothing changes.
	whole, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(t.TempDir(), "truncated.car")
	if err := os.WriteFile(trunc, whole[:len(whole)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	r := b.run("", "import", trunc)
	refused(t, r, "importing a truncated archive")
	if !strings.Contains(r.stderr, "invalid history archive") {
		t.Errorf("truncated archive: the error does not say the archive is invalid: %q", r.stderr)
	}
	// Into a node without the room, too: it must not start keeping it.
	d := startDaemon(t, "D")
	refused(t, d.run("", "import", trunc), "importing a truncated archive into a fresh node")
	var rl api.RoomListResp
	d.must(&rl, "room", "list")
	if len(rl.Rooms) != 0 {
		t.Errorf("a refused import left rooms behind: %+v", rl.Rooms)
	}
	if after := roomInfo(t, b, room); !reflect.DeepEqual(after, infoB) {
		t.Errorf("a refused import changed the room:\nbefore %+v\nafter  %+v", infoB, after)
	}
}

func roomInfo(t *testing.T, d *daemon, room string) api.RoomInfoResp {
	t.Helper()
	var info api.RoomInfoResp
	d.must(&info, "room", "info", room)
	slices.SortFunc(info.Members, func(x, y api.MemberInfo) int { return strings.Compare(x.User, y.User) })
	slices.Sort(info.Sync.Heads)
	return info
}

// sameState compares what room info says about the room itself (not how
// complete each copy is, which is compared separately).
func sameState(t *testing.T, x, y api.RoomInfoResp) {
	t.Helper()
	xs, ys := x, y
	xs.Sync, ys.Sync = api.SyncInfo{}, api.SyncInfo{}
	if !reflect.DeepEqual(xs, ys) {
		t.Errorf("room state differs:\nA %+v\nB %+v", xs, ys)
	}
	if x.Sync.Events != y.Sync.Events || !slices.Equal(x.Sync.Heads, y.Sync.Heads) || y.Sync.Missing != 0 || y.Sync.Pending != 0 {
		t.Errorf("copies differ: A %+v, B %+v", x.Sync, y.Sync)
	}
}

func ids(evs []api.TimelineEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}
