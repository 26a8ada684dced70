package rooms

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// TestDeviceRemovalOrders: random encrypted histories where users remove
// sibling devices, update their KEM records, rotate, kick, and send on
// stale views and with stale epochs, while alice demotes and promotes bob
// as bob invites dave (adds that strong removal may invalidate). State,
// key state, visibility and every reason must be identical across 50
// causal delivery orders, and both rules must have hidden something.
// Spec: docs/design.md §5.2 and §5.3 (ii),
// docs/protocol.md §5.1.
func TestDeviceRemovalOrders(t *testing.T) {
	devs := []string{"alice", "alice.2", "bob", "bob.2", "bob.3", "carol", "carol.2"}
	siblings := func(d string) []string {
		u, _, _ := strings.Cut(d, ".")
		var out []string
		for _, x := range devs {
			if y, _, _ := strings.Cut(x, "."); y == u && x != d {
				out = append(out, x)
			}
		}
		return out
	}
	deviceHidden, epochCut := 0, 0
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0xd1ce))
		w := newWorld(t, "alice", CreateBody{JoinRule: Private, E2EE: true})
		for _, l := range []string{"alice device", "alice power bob=50", "alice rotate", "alice.2 device",
			"alice invite bob", "bob join", "bob device", "bob.2 device", "bob.3 device",
			"alice invite carol", "carol join", "carol device", "carol.2 device"} {
			if out := w.doAction(t, l, false); out != "ok" {
				t.Fatalf("setup %q: %s", l, out)
			}
		}
		var labels, rots []string
		for i := 0; i < 100; i++ {
			d := devs[rng.IntN(len(devs))]
			at := ""
			var prev []crdt.EventID
			if len(labels) > 0 && rng.IntN(2) == 0 {
				l := labels[len(labels)-1-rng.IntN(min(8, len(labels)))]
				at = " at=" + l
				prev = []crdt.EventID{w.labels[l].ID}
			}
			var line string
			switch x := rng.IntN(40); {
			case x < 2:
				sib := siblings(d)
				line = d + " remove-device " + sib[rng.IntN(len(sib))]
			case x < 6:
				line = d + " rotate"
			case x < 8:
				line = d + " device"
			case x < 9 && !strings.HasPrefix(d, "carol"):
				line = "alice kick carol"
			case x < 10:
				line = "alice invite carol"
			case x < 11:
				line = "carol join"
			case x < 12 && at != "":
				// bob.3 invites dave while alice.2 demotes bob, on one view
				w.doAction(t, "bob.3 invite dave"+at+fmt.Sprintf(" as=g%dr", i), false)
				labels = append(labels, fmt.Sprintf("g%dr", i))
				line = "alice.2 power bob=0"
			case x < 13:
				line = "alice.2 power bob=50"
			case x < 16:
				line = d + " invite dave"
			case x < 18:
				line = "dave join"
			case x < 19:
				line = "dave device"
			case x < 23 && len(rots) > 0:
				line = d + " send stale m" + fmt.Sprint(i) + " epoch=" + rots[rng.IntN(len(rots))]
			default:
				line = d + " send m" + fmt.Sprint(i)
			}
			if strings.Contains(line, " send ") && !strings.Contains(line, "epoch=") && len(w.room.AdmissibleEpochs(prev)) == 0 {
				line = d + " rotate"
			}
			label := fmt.Sprintf("g%d", i)
			out := w.doAction(t, line+at+" as="+label, false)
			labels = append(labels, label)
			if strings.HasSuffix(line, " rotate") && out == "ok" {
				rots = append(rots, label)
			}
		}
		for _, e := range w.events {
			_, why := w.room.Visible(e.ID)
			switch {
			case !w.room.Accepted(e.ID):
			case strings.HasPrefix(why, "sender device"):
				deviceHidden++
			case why == reasonEpochCut:
				epochCut++
			}
		}
		t.Logf("seed %d: %d events; %s", seed, len(w.events), w.stats())
		if err := w.checkConverges(50, seed); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	if deviceHidden == 0 || epochCut == 0 {
		t.Fatalf("%d events hidden by a device removal, %d by an invalidated add's removal: the generator does not exercise both rules", deviceHidden, epochCut)
	}
	t.Logf("%d events hidden by a device removal, %d by an invalidated add's removal", deviceHidden, epochCut)
}
