package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/crdt/badgerstore/badgertest"
)

// TestHealLostEvent: B's store holds a message of the middle of a room by
// its envelope alone, as the split commit before 91091ec left some, in a
// store not repaired yet. B restarts: the store's one-time repair removes
// the message, and B heals through sync alone, with no second restart:
// `room info` shows nothing missing, both timelines agree, and B's own
// new message is accepted on both.
func TestHealLostEvent(t *testing.T) {
	t.Parallel()
	a, b := startDaemon(t, "A"), startDaemon(t, "B")
	room := publicRoom(t, a, b)
	const n = 20
	for i := range n {
		a.must(nil, "send", room, fmt.Sprintf("message %d", i))
	}
	ids := func(d *daemon) ([]string, error) {
		h, err := d.history(room)
		var out []string
		for _, e := range h {
			out = append(out, e.ID)
		}
		return out, err
	}
	agree := func(want int) func() error {
		return func() error {
			x, err := ids(a)
			if err != nil {
				return err
			}
			y, err := ids(b)
			if err != nil {
				return err
			}
			if len(x) < want || !slices.Equal(x, y) {
				return fmt.Errorf("A shows %d events, B %d (want %d, the same)", len(x), len(y), want)
			}
			return nil
		}
	}
	eventually(t, time.Minute, "B has the room", agree(n))
	h, err := ids(b)
	if err != nil {
		t.Fatal(err)
	}
	x, err := crdt.ParseID(h[len(h)/2])
	if err != nil {
		t.Fatal(err)
	}

	b.stop()
	if err := badgertest.StoreInPart(filepath.Join(b.home, "store"), x); err != nil {
		t.Fatal(err)
	}
	b.start()
	eventually(t, time.Minute, "B healed", func() error {
		if err := sameEvents([]*daemon{a, b}, room); err != nil {
			return err
		}
		return agree(len(h))()
	})
	if !strings.Contains(b.log.String(), "repaired events stored in part") {
		t.Fatal("B logged no store repair: the message was not removed")
	}
	b.must(nil, "send", room, "after")
	eventually(t, time.Minute, "B's message on both", agree(len(h)+1))
}
