package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/api"
)

// TestSearchStoredIndex: `parley search ROOM QUERY` on a daemon, in an
// encrypted room: words, a prefix, an edit found by its new text only, a
// redaction never found; the answers are the same after a clean restart
// (the stored index is kept) and after a SIGKILL (it is rebuilt at start);
// a query with no word is refused with exit 1.
func TestSearchStoredIndex(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "S")
	var rr api.RoomResp
	d.must(&rr, "room", "create", "--name", "search")
	room := rr.Room
	var e1, e2, e3 api.EventResp
	d.must(&e1, "send", room, "Zebrafish swim at dawn")
	d.must(&e2, "send", room, "a quiet zebrafish tank")
	d.must(&e3, "send", room, "zebrafish to be deleted")
	d.must(nil, "edit", room, e1.Event, "Salmon swim at dawn")
	d.must(nil, "redact", room, e3.Event)

	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			q    string
			want []string
		}{
			{"zebrafish", []string{e2.Event}},
			{"ZEBRA", []string{e2.Event}}, // the last word is a prefix
			{"swim salm", []string{e1.Event}},
			{"quiet tank", []string{e2.Event}},
			{"deleted", nil},
			{"zebrafish swim", nil}, // the old version's words
		} {
			var r api.SearchResp
			d.must(&r, "search", room, c.q)
			var got []string
			for _, h := range r.Hits {
				got = append(got, h.Event.ID)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("%s: search %q: %v, want %v", when, c.q, got, c.want)
			}
		}
	}
	check("running")
	d.stop()
	d.start()
	check("after a clean restart")
	d.kill()
	d.start()
	check("after SIGKILL (index rebuilt)")

	r := d.run("", "search", room, "?!")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "parley: ") || !strings.Contains(r.stderr, "nothing to search for") {
		t.Fatalf("a query of no word: %v", r)
	}
}
