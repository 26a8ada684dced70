package rooms

import (
	"errors"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// TestAuthorizePure checks the exported pure function against explicit
// auth states (the fixtures exercise the same rules through Room.Apply).
func TestAuthorizePure(t *testing.T) {
	w := newWorld(t, "alice", CreateBody{JoinRule: Private})
	alice, bob := w.user("alice"), w.user("bob")
	inv, _ := w.emit("alice", TypeMember, ptr(bob.String()), Encode(MemberBody{Membership: Invite}), opts{})
	join, _ := w.emit("bob", TypeMember, ptr(bob.String()), Encode(MemberBody{Membership: Join}), opts{})
	ban := w.draft("bob", TypeMember, ptr(alice.String()), Encode(MemberBody{Membership: Ban}), opts{})
	st := AuthState{Create: w.create, Members: map[crdt.UserID]*crdt.Event{bob: join}}
	err := Authorize(ban, st)
	if !errors.Is(err, ErrNotPermitted) || Reason(err) != "the creator cannot be banned" {
		t.Fatalf("bob bans alice: %v", err)
	}
	join2 := w.draft("bob", TypeMember, ptr(bob.String()), Encode(MemberBody{Membership: Join}), opts{})
	if err := Authorize(join2, AuthState{Create: w.create}); Reason(err) != "join needs an invite" {
		t.Fatalf("join without invite: %v", err)
	}
	if err := Authorize(join2, AuthState{Create: w.create, Members: map[crdt.UserID]*crdt.Event{bob: inv}}); err != nil {
		t.Fatalf("join with invite: %v", err)
	}
}
