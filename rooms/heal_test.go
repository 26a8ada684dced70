package rooms

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

func TestHealPolicy(t *testing.T) {
	dev := func(b byte) crdt.DeviceID { var d crdt.DeviceID; d[0] = b; return d }
	name := func(d crdt.DeviceID) string { return string('a' + d[0] - 1) }
	recs := func(bs ...byte) []*e2ee.KEMRecord {
		var out []*e2ee.KEMRecord
		for _, b := range bs {
			out = append(out, &e2ee.KEMRecord{Device: dev(b)})
		}
		return out
	}
	epoch := func(id byte, holders ...byte) EpochInfo {
		ep := EpochInfo{ID: e2ee.EpochID{id}}
		for _, h := range holders {
			ep.Holders = append(ep.Holders, dev(h))
		}
		return ep
	}
	show := func(p HealPlan) string {
		var parts []string
		for _, f := range p.Forward {
			var to []string
			for _, r := range f.To {
				to = append(to, name(r.Device))
			}
			parts = append(parts, fmt.Sprintf("fwd e%d→%s", f.Epoch[0], strings.Join(to, ",")))
		}
		if p.At != 0 {
			parts = append(parts, fmt.Sprintf("recheck@%d", p.At))
		}
		if p.Gap {
			parts = append(parts, "gap")
		}
		if len(parts) == 0 {
			return "nothing"
		}
		return strings.Join(parts, " ")
	}
	// Devices a < b < c < d; now = 1000, jitter 250.
	for _, tc := range []struct {
		name string
		in   HealInput
		want string
	}{
		{"all hold: nothing", HealInput{Me: dev(1), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1, 2, 3)}, Whole: true}, "nothing"},
		{"lowest holder forwards at once", HealInput{Me: dev(1), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1, 2)}, Whole: true}, "fwd e1→c"},
		{"second holder waits rank×2s+jitter", HealInput{Me: dev(2), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1, 2)}, Whole: true}, "recheck@3250"},
		{"third holder waits longer", HealInput{Me: dev(3), Devices: recs(1, 2, 3, 4), Epochs: []EpochInfo{epoch(1, 1, 2, 3)}, Whole: true}, "recheck@5250"},
		{"forced: a waiting holder forwards", HealInput{Me: dev(2), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1, 2)}, Whole: true, Force: true}, "fwd e1→c"},
		{"back-linked holder heals last", HealInput{Me: dev(3), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1, 2)}, Whole: true}, "recheck@5250"},
		{"gap: put off", HealInput{Me: dev(1), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1)}}, "recheck@4000 gap"},
		{"gap, forced: forwards", HealInput{Me: dev(1), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 1)}, Force: true}, "fwd e1→b,c"},
		{"not a member device: nothing", HealInput{Me: dev(4), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 4)}, Whole: true}, "nothing"},
		{"two epochs: forward one, wait for the other", HealInput{Me: dev(2), Devices: recs(1, 2, 3), Epochs: []EpochInfo{epoch(1, 2), epoch(2, 1, 2)}, Whole: true}, "fwd e1→a,c recheck@3250"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Now, in.Jitter = 1000, 250
			for i := range in.Epochs {
				slices.SortFunc(in.Epochs[i].Holders, cmpDeviceID)
			}
			if got := show(Heal(in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
