package e2ee

import (
	"io"
	"math/rand/v2"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// seeded returns a deterministic random source for tests.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return rand.NewChaCha8(s)
}

var testRoom = crdt.IDOf([]byte("test room create event"))

// device is a test device: its user's master key, its signing identity and
// a KEM key with its signed record.
type device struct {
	master *crdt.SecretKey
	id     *crdt.Identity
	kem    *KEMSecretKey
	rec    *KEMRecord
}

func (d *device) ID() crdt.DeviceID { return d.id.Device.Public() }
func (d *device) KEM() DeviceKEM    { return DeviceKEM{Device: d.ID(), Seq: d.rec.Seq, Key: d.kem} }

func newDevice(t testing.TB, r io.Reader, master *crdt.SecretKey) *device {
	t.Helper()
	var err error
	if master == nil {
		if master, err = crdt.GenerateKey(r); err != nil {
			t.Fatal(err)
		}
	}
	id, err := crdt.NewIdentity(master, r)
	if err != nil {
		t.Fatal(err)
	}
	k, err := GenerateKEMKey(r)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := SignKEMRecord(id.Device, k.Public(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &device{master: master, id: id, kem: k, rec: rec}
}

func devices(t testing.TB, r io.Reader, n int) []*device {
	out := make([]*device, n)
	for i := range out {
		out[i] = newDevice(t, r, nil)
	}
	return out
}

func records(ds ...*device) []*KEMRecord {
	out := make([]*KEMRecord, len(ds))
	for i, d := range ds {
		out[i] = d.rec
	}
	return out
}

func deviceIDs(ds ...*device) []crdt.DeviceID {
	out := make([]crdt.DeviceID, len(ds))
	for i, d := range ds {
		out[i] = d.ID()
	}
	return out
}

func rotate(t testing.TB, r io.Reader, sender *device, reason Reason, to []*device, old ...*EpochKey) (*Rotation, *EpochKey) {
	t.Helper()
	rot, k, err := Rotate(r, RotateParams{Room: testRoom, Sender: sender.ID(), Reason: reason, Recipients: records(to...), Supersedes: old})
	if err != nil {
		t.Fatal(err)
	}
	return rot, k
}
