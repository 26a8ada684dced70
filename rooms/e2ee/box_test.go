package e2ee

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

// TestDeviceBox: a box opens only for its recipient, in its room, from its
// sender, untampered.
func TestDeviceBox(t *testing.T) {
	r := seeded(11)
	ds := devices(t, r, 3)
	alice, bob, eve := ds[0], ds[1], ds[2]
	msg := []byte("v=0 an offer")
	box, err := SealToDevice(testRoom, alice.ID(), bob.rec, msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(box) != len(msg)+BoxOverhead {
		t.Fatalf("box of %d bytes for %d: want overhead %d", len(box), len(msg), BoxOverhead)
	}
	got, err := OpenFromDevice(testRoom, alice.ID(), bob.KEM(), box)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %q, %v", got, err)
	}
	other := crdt.IDOf([]byte("another room"))
	tampered := bytes.Clone(box)
	tampered[len(tampered)-1] ^= 1
	for name, try := range map[string]func() ([]byte, error){
		"another recipient": func() ([]byte, error) { return OpenFromDevice(testRoom, alice.ID(), eve.KEM(), box) },
		"another room":      func() ([]byte, error) { return OpenFromDevice(other, alice.ID(), bob.KEM(), box) },
		"another sender":    func() ([]byte, error) { return OpenFromDevice(testRoom, eve.ID(), bob.KEM(), box) },
		"tampered":          func() ([]byte, error) { return OpenFromDevice(testRoom, alice.ID(), bob.KEM(), tampered) },
	} {
		if _, err := try(); !errors.Is(err, ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", name, err)
		}
	}
	if _, err := OpenFromDevice(testRoom, alice.ID(), bob.KEM(), box[:BoxOverhead-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short box: %v, want ErrMalformed", err)
	}
}

// FuzzOpenFromDevice: any bytes are refused cleanly or open to what was
// sealed.
func FuzzOpenFromDevice(f *testing.F) {
	r := seeded(12)
	ds := devices(f, r, 2)
	box, err := SealToDevice(testRoom, ds[0].ID(), ds[1].rec, []byte("hello"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(box)
	f.Add(box[:BoxOverhead])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := OpenFromDevice(testRoom, ds[0].ID(), ds[1].KEM(), b)
		if err == nil && !bytes.Equal(msg, []byte("hello")) {
			t.Fatalf("opened %q", msg)
		}
	})
}
