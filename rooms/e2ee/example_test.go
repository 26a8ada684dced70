package e2ee_test

import (
	"crypto/rand"
	"fmt"

	"github.com/parley-p2p/parley/crdt"
	"github.com/parley-p2p/parley/rooms/e2ee"
)

// A device introduces an epoch for the room's members, seals a message
// under it, and another member device opens both.
func Example() {
	newDevice := func() (*crdt.Identity, *e2ee.KEMSecretKey, *e2ee.KEMRecord) {
		master, _ := crdt.GenerateKey(rand.Reader)
		id, _ := crdt.NewIdentity(master, rand.Reader)
		kem, _ := e2ee.GenerateKEMKey(rand.Reader)
		rec, _ := e2ee.SignKEMRecord(id.Device, kem.Public(), 0) // published in the device log
		return id, kem, rec
	}
	alice, _, aliceRec := newDevice()
	bob, bobKEM, bobRec := newDevice()
	create, _ := crdt.Sign(alice, crdt.Draft{Type: crdt.TypeCreate, Body: []byte("params")})

	// Alice rotates: the epoch goes to every member device.
	rot, key, _ := e2ee.Rotate(rand.Reader, e2ee.RotateParams{
		Room: create.ID, Sender: alice.Device.Public(), Reason: e2ee.ReasonCreate,
		Recipients: []*e2ee.KEMRecord{aliceRec, bobRec},
	})
	rotBody, _ := rot.Marshal()

	// Alice sends a message under it.
	epoch := key.ID()
	d := crdt.Draft{Room: create.ID, Type: "message", Seq: 1, Self: create.ID, Prev: []crdt.EventID{create.ID},
		Auth: []crdt.EventID{create.ID}, Depth: 1, TS: 1, Epoch: epoch[:]}
	h, _ := e2ee.DraftHeader(alice.User, alice.Device.Public(), d)
	d.Body, _ = key.Seal(rand.Reader, h, []byte("hello bob"))
	msg, _ := crdt.Sign(alice, d)

	// Bob opens the rotation, then the message.
	got, _ := e2ee.DecodeRotation(create.ID, alice.Device.Public(), rotBody)
	bobKey, err := got.Open(e2ee.DeviceKEM{Device: bob.Device.Public(), Seq: 0, Key: bobKEM})
	if err != nil {
		fmt.Println(err)
		return
	}
	mh, _ := e2ee.EventHeader(msg)
	text, err := bobKey.Open(mh, msg.Body)
	fmt.Println(string(text), err)
	// Output: hello bob <nil>
}
