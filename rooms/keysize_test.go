package rooms

import (
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// crdt lets exactly the event types that carry key material for every
// member device grow beyond crdt.MaxEventSize.
func TestKeyEventTypesMatchCrdt(t *testing.T) {
	for typ, want := range map[string]bool{
		TypeMember: true, TypeDevice: true, TypeRotate: true, TypeKeyFwd: true,
		TypeMessage: false, TypeProfile: false, TypeName: false, TypeTopic: false, TypeAvatar: false,
		TypePower: false, TypeJoinRule: false, TypeRedact: false, crdt.TypeCreate: false,
	} {
		if got := crdt.KeyEventType(typ); got != want {
			t.Errorf("crdt.KeyEventType(%q) = %v, want %v", typ, got, want)
		}
	}
}
