package rooms

import (
	"bytes"
	"slices"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// Key healing (docs/design.md §5): a member device that lacks an
// admissible epoch (it was added concurrently with a rotation, or a
// rotation's wrap to it was lost) receives the epoch by a key forward from
// a device that holds it. Heal is the policy, a pure function of the
// room's member devices, the epochs a device holds with their holders,
// and the time: the lowest-ID member device holding an epoch forwards at
// once; the others check again after a back-off that grows with their
// rank, so an offline preferred healer is replaced and concurrent healers
// rarely duplicate. A device that holds an epoch only by a back-link heals
// last. While the copy has gaps (a forward may be on its way) no one
// forwards until the copy is whole or a back-off expires.

// Healing back-offs, in milliseconds.
const (
	HealGapWaitMS  = 3000 // a copy with gaps checks again after this
	HealRankStepMS = 2000 // a healer of rank r waits r × this ...
	HealJitterMS   = 1000 // ... plus a jitter below this
)

// HealInput is what Heal decides from.
type HealInput struct {
	Me      crdt.DeviceID
	Devices []*e2ee.KEMRecord // the room's member devices, sorted by device
	Epochs  []EpochInfo       // the admissible epochs Me holds (Holders sorted)
	Whole   bool              // the copy misses no event and has none pending
	Force   bool              // a back-off expired: forward whatever the rank
	Now     int64             // ms
	Jitter  int64             // ms in [0, HealJitterMS): drawn by the caller from a seeded source
}

// HealForward is one key forward to author: the epoch, to the member
// devices that lack it.
type HealForward struct {
	Epoch e2ee.EpochID
	To    []*e2ee.KEMRecord
}

// HealPlan is Heal's decision: the forwards to author now, and when to
// check again (forced), 0 for never.
type HealPlan struct {
	Forward []HealForward
	At      int64 // ms; a forced re-check is due then (0: none)
	Gap     bool  // the check was put off because the copy is not whole
}

// Heal decides who forwards which epoch to whom, and when (see above).
func Heal(in HealInput) HealPlan {
	if !in.Force && !in.Whole {
		return HealPlan{At: in.Now + HealGapWaitMS, Gap: true}
	}
	if !slices.ContainsFunc(in.Devices, func(d *e2ee.KEMRecord) bool { return d.Device == in.Me }) {
		return HealPlan{}
	}
	var plan HealPlan
	later := -1
	for _, ep := range in.Epochs {
		var lacking []*e2ee.KEMRecord
		var healers []crdt.DeviceID
		for _, d := range in.Devices {
			if _, ok := slices.BinarySearchFunc(ep.Holders, d.Device, cmpDeviceID); ok {
				healers = append(healers, d.Device)
			} else {
				lacking = append(lacking, d)
			}
		}
		if len(lacking) == 0 {
			continue
		}
		rank := slices.Index(healers, in.Me)
		if rank < 0 {
			rank = len(healers) // holds it by a back-link: heal last
		}
		if rank > 0 && !in.Force {
			later = max(later, rank)
			continue
		}
		plan.Forward = append(plan.Forward, HealForward{Epoch: ep.ID, To: lacking})
	}
	if later > 0 {
		plan.At = in.Now + int64(later)*HealRankStepMS + in.Jitter
	}
	return plan
}

func cmpDeviceID(a, b crdt.DeviceID) int { return bytes.Compare(a[:], b[:]) }
