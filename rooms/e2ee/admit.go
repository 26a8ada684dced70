package e2ee

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/crdt"
)

// Admissibility (docs/design.md §5.3). These are pure functions over
// values the room state machine computes from an event's causal past; they
// never look at the DAG themselves. Each failure is an *Inadmissible that
// wraps ErrInadmissible and says which rule and why, in words.

// Rules checked here.
const (
	RuleRecipients = "rotation-recipients" // recipients = member devices at the view
	RuleAuthor     = "key-author"          // rotator or forwarder is a member device at the view
	RuleForward    = "forward-recipients"  // forwards go to member devices only
	RuleEpochKnown = "epoch-known"         // the epoch reached the author causally
	RuleEpochCut   = "epoch-after-cuts"    // the epoch descends from every removal the author saw
)

// Inadmissible is the error of a failed admissibility check.
type Inadmissible struct {
	Rule   string
	Reason string
}

func (e *Inadmissible) Error() string { return "e2ee: inadmissible (" + e.Rule + "): " + e.Reason }

// Unwrap makes errors.Is(err, ErrInadmissible) hold.
func (e *Inadmissible) Unwrap() error { return ErrInadmissible }

func inadmissible(rule, format string, args ...any) error {
	return &Inadmissible{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

func sortedDevices(s []crdt.DeviceID) []crdt.DeviceID {
	c := slices.Clone(s)
	slices.SortFunc(c, func(a, b crdt.DeviceID) int { return bytes.Compare(a[:], b[:]) })
	return slices.Compact(c)
}

// diff returns the elements of a not in b and of b not in a (both sorted, unique).
func diff(a, b []crdt.DeviceID) (onlyA, onlyB []crdt.DeviceID) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && bytes.Compare(a[i][:], b[j][:]) < 0:
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || bytes.Compare(a[i][:], b[j][:]) > 0:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}

func listDevices(ds []crdt.DeviceID) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

// CheckRotation: a rotation is admissible only if its author is a member
// device at the rotation's causal view and its recipient set equals the
// member device set at that view. For a rotation embedded in a kick, ban,
// join or device removal, the view is the state after that operation (so a
// removed device or a leaver never authors the next epoch). members is that
// set (any order); the author's own devices are in it.
func CheckRotation(r *Rotation, author crdt.DeviceID, members []crdt.DeviceID) error {
	m := sortedDevices(members)
	if _, ok := slices.BinarySearchFunc(m, author, cmpDevice); !ok {
		return inadmissible(RuleAuthor, "rotation author %s is not a member device at the rotation's causal view", author)
	}
	extra, missing := diff(r.Recipients(), m)
	switch {
	case len(extra) > 0:
		return inadmissible(RuleRecipients, "rotation of epoch %s wraps to non-member device(s) %s", r.Epoch, listDevices(extra))
	case len(missing) > 0:
		return inadmissible(RuleRecipients, "rotation of epoch %s omits member device(s) %s", r.Epoch, listDevices(missing))
	}
	return nil
}

// CheckForward: a key forward is admissible only if its author is a member
// device and every recipient is a member device at the forward's view.
// (Whether the forwarded epoch itself is admissible for the author is
// CheckEpochUse, as for a message.)
func CheckForward(f *KeyForward, author crdt.DeviceID, members []crdt.DeviceID) error {
	m := sortedDevices(members)
	if _, ok := slices.BinarySearchFunc(m, author, cmpDevice); !ok {
		return inadmissible(RuleAuthor, "forward author %s is not a member device at the forward's causal view", author)
	}
	if extra, _ := diff(f.Recipients(), m); len(extra) > 0 {
		return inadmissible(RuleForward, "forward of epoch %s wraps to non-member device(s) %s", f.Epoch, listDevices(extra))
	}
	return nil
}

func cmpDevice(a, b crdt.DeviceID) int { return bytes.Compare(a[:], b[:]) }

// EpochUse describes an event (a message, or a forward) that uses an epoch,
// as the room state machine sees it in the event's causal past.
type EpochUse struct {
	Epoch EpochID
	// Known: the rotation of Epoch, or a forward of Epoch to the author's
	// device, is in the event's causal past.
	Known bool
	// Seen: the cuts in the event's causal past: every removal (kick, ban,
	// leave, device removal, and the op that invalidated an add) and, in a
	// `joined` room, every join.
	Seen []crdt.EventID
	// Covered: the cuts in the causal past of the rotation of Epoch,
	// including the rotation's own event when the rotation is embedded in
	// the cut (a kick carries its rotation).
	Covered []crdt.EventID
}

// CheckEpochUse: an event may use an epoch only if the epoch reached its
// author causally and was created after every cut the author had seen, i.e.
// Seen ⊆ Covered. So once a sender knows of a removal, only a key made after
// the removal is acceptable, and every node checks it the same way.
func CheckEpochUse(u EpochUse) error {
	if !u.Known {
		return inadmissible(RuleEpochKnown, "epoch %s is in neither a rotation nor a forward to the author in the event's causal past", u.Epoch)
	}
	covered := make(map[crdt.EventID]bool, len(u.Covered))
	for _, c := range u.Covered {
		covered[c] = true
	}
	var late []string
	for _, s := range u.Seen {
		if !covered[s] {
			late = append(late, s.String())
		}
	}
	if len(late) > 0 {
		slices.Sort(late)
		late = slices.Compact(late)
		return inadmissible(RuleEpochCut, "epoch %s predates removal(s) %s that the author had seen", u.Epoch, strings.Join(late, ", "))
	}
	return nil
}

// RotationPolicy is the periodic rotation rule: a sender rotates before
// sending when the live epoch it would use carried MaxMessages messages, or
// is older than MaxAgeMS by the injected clock. Zero fields disable a limit.
type RotationPolicy struct {
	MaxMessages int
	MaxAgeMS    int64
}

// DefaultRotationPolicy: 100 messages or a week (Megolm's defaults).
var DefaultRotationPolicy = RotationPolicy{MaxMessages: 100, MaxAgeMS: 7 * 24 * 3600 * 1000}

// Due reports whether an epoch created at createdMS that carried messages
// messages must be replaced before sending at nowMS (both from the node's
// injected clock, in ms).
func (p RotationPolicy) Due(messages int, createdMS, nowMS int64) bool {
	return p.MaxMessages > 0 && messages >= p.MaxMessages ||
		p.MaxAgeMS > 0 && nowMS-createdMS >= p.MaxAgeMS
}
