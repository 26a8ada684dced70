package e2ee

import (
	"errors"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

func wantRule(t *testing.T, name string, err error, rule string) {
	t.Helper()
	var in *Inadmissible
	switch {
	case rule == "" && err != nil:
		t.Errorf("%s: refused: %v", name, err)
	case rule == "":
	case !errors.As(err, &in) || !errors.Is(err, ErrInadmissible):
		t.Errorf("%s: got %v, want rule %s", name, err, rule)
	case in.Rule != rule || in.Reason == "":
		t.Errorf("%s: rule %q (%q), want %q", name, in.Rule, in.Reason, rule)
	}
}

// B11 (the Quiet #3431 regression): a rotation whose recipients add a
// non-member device, or omit a member device at its causal view, is
// refused; so is one authored by a non-member.
func TestInjectedRotationRefused(t *testing.T) {
	r := seeded(20)
	alice1, alice2, bob, mallory := newDevice(t, r, nil), newDevice(t, r, nil), newDevice(t, r, nil), newDevice(t, r, nil)
	members := deviceIDs(bob, alice2, alice1) // any order

	exact, _ := rotate(t, r, bob, ReasonPeriodic, []*device{alice1, alice2, bob})
	wantRule(t, "exact recipients", CheckRotation(exact, bob.ID(), members), "")

	excluding, _ := rotate(t, r, bob, ReasonPeriodic, []*device{alice1, bob})
	err := CheckRotation(excluding, bob.ID(), members)
	wantRule(t, "omits alice2", err, RuleRecipients)
	if err != nil && !strings.Contains(err.Error(), alice2.ID().String()) {
		t.Errorf("reason does not name the omitted device: %v", err)
	}

	smuggling, _ := rotate(t, r, bob, ReasonPeriodic, []*device{alice1, alice2, bob, mallory})
	err = CheckRotation(smuggling, bob.ID(), members)
	wantRule(t, "adds mallory", err, RuleRecipients)
	if err != nil && !strings.Contains(err.Error(), "non-member") {
		t.Errorf("reason does not say non-member: %v", err)
	}

	injected, _ := rotate(t, r, mallory, ReasonPeriodic, []*device{alice1, alice2, bob})
	wantRule(t, "non-member author", CheckRotation(injected, mallory.ID(), members), RuleAuthor)

	// A rotation embedded in a device removal is judged after the removal:
	// the removed device cannot author it (nor can a leaver).
	afterRemoval := deviceIDs(alice1, bob)
	self, _ := rotate(t, r, alice2, ReasonDeviceRemoved, []*device{alice1, bob})
	wantRule(t, "removed device rotates", CheckRotation(self, alice2.ID(), afterRemoval), RuleAuthor)
	byOther, _ := rotate(t, r, alice1, ReasonDeviceRemoved, []*device{alice1, bob})
	wantRule(t, "sibling rotates", CheckRotation(byOther, alice1.ID(), afterRemoval), "")

	// Forwards: to members only, by members only.
	_, k := rotate(t, r, alice1, ReasonCreate, []*device{alice1})
	fwd, err := Forward(alice1.ID(), k, records(bob))
	if err != nil {
		t.Fatal(err)
	}
	wantRule(t, "forward to member", CheckForward(fwd, alice1.ID(), members), "")
	bad, _ := Forward(alice1.ID(), k, records(bob, mallory))
	wantRule(t, "forward to non-member", CheckForward(bad, alice1.ID(), members), RuleForward)
	wantRule(t, "forward by non-member", CheckForward(fwd, mallory.ID(), members), RuleAuthor)
}

// B12: a message under an epoch that does not descend from a removal its
// author had seen is refused; under the rotation carried by the removal it
// is accepted; a message concurrent with the removal may still use the old
// epoch (its author could not know).
func TestEpochOlderThanRemovalRefused(t *testing.T) {
	var e1, e2 EpochID
	e1[0], e2[0] = 1, 2
	kick := crdt.IDOf([]byte("kick carol, with rotate(E2)"))
	join := crdt.IDOf([]byte("dave joins"))

	wantRule(t, "old epoch after the kick", CheckEpochUse(EpochUse{Epoch: e1, Known: true, Seen: []crdt.EventID{kick}}), RuleEpochCut)
	wantRule(t, "new epoch after the kick", CheckEpochUse(EpochUse{Epoch: e2, Known: true, Seen: []crdt.EventID{kick}, Covered: []crdt.EventID{kick}}), "")
	wantRule(t, "old epoch concurrent with the kick", CheckEpochUse(EpochUse{Epoch: e1, Known: true}), "")
	wantRule(t, "epoch never received", CheckEpochUse(EpochUse{Epoch: e2}), RuleEpochKnown)
	// `joined` rooms count joins as cuts too.
	wantRule(t, "joined room, pre-join epoch", CheckEpochUse(EpochUse{Epoch: e2, Known: true, Seen: []crdt.EventID{kick, join}, Covered: []crdt.EventID{kick}}), RuleEpochCut)
}

func TestRotationPolicyDue(t *testing.T) {
	p := DefaultRotationPolicy
	week := int64(7 * 24 * 3600 * 1000)
	for _, c := range []struct {
		msgs         int
		created, now int64
		want         bool
	}{
		{0, 0, 0, false}, {99, 0, week - 1, false}, {100, 0, 0, true}, {0, 1000, 1000 + week, true},
	} {
		if got := p.Due(c.msgs, c.created, c.now); got != c.want {
			t.Errorf("Due(%d, %d, %d) = %v", c.msgs, c.created, c.now, got)
		}
	}
	if (RotationPolicy{}).Due(1<<30, 0, 1<<60) {
		t.Error("zero policy rotates")
	}
}
