// Package roomstest builds room events for tests of what receives them,
// such as a stranger's validly signed invite. Only tests import it; it
// keeps to crdt and rooms (no network, store or wall clock).
package roomstest

import (
	"crypto/rand"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms"
)

// NewUser makes a fresh user with one device.
func NewUser() (*crdt.Identity, error) {
	master, err := crdt.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return crdt.NewIdentity(master, rand.Reader)
}

// Invite is what anyone can make without a room: inviter's create event
// of a new private room named name, and an invite of target to it, both
// validly signed, at time ts (Unix milliseconds).
func Invite(inviter *crdt.Identity, target crdt.UserID, name string, ts int64) (create, invite *crdt.Event, err error) {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	create, err = crdt.Sign(inviter, crdt.Draft{Type: crdt.TypeCreate, TS: ts, Body: rooms.Encode(rooms.CreateBody{Name: name, JoinRule: rooms.Private, History: rooms.HistoryShared, Nonce: nonce})})
	if err != nil {
		return nil, nil, err
	}
	sk := target.String()
	invite, err = crdt.Sign(inviter, crdt.Draft{Room: create.ID, Type: rooms.TypeMember, StateKey: &sk, Prev: []crdt.EventID{create.ID}, Auth: []crdt.EventID{create.ID}, Depth: 1, TS: ts, Body: rooms.Encode(rooms.MemberBody{Membership: rooms.Invite})})
	if err != nil {
		return nil, nil, err
	}
	return create, invite, nil
}
