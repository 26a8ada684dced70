package e2ee

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/crdt"
)

func TestRotateOpenRoundTrip(t *testing.T) {
	r := seeded(1)
	ds := devices(t, r, 3)
	rot, k := rotate(t, r, ds[0], ReasonCreate, ds)
	b, err := rot.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRotation(testRoom, ds[0].ID(), b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(again, b) {
		t.Fatal("rotation does not re-encode to the same bytes")
	}
	want := deviceIDs(ds...)
	slices.SortFunc(want, cmpDevice)
	if !slices.Equal(got.Recipients(), want) {
		t.Fatalf("recipients %v, want sorted %v", got.Recipients(), want)
	}
	for _, d := range ds {
		opened, err := got.Open(d.KEM())
		if err != nil {
			t.Fatalf("device %s: %v", d.ID(), err)
		}
		if !opened.Equal(k) || opened.ID() != rot.Epoch {
			t.Fatalf("device %s opened another secret", d.ID())
		}
	}
}

// A1: a wrap is bound to its recipient device and KEM key, its room, its
// epoch and its sender; the unwrapped secret must derive to the epoch ID.
func TestWrapBinding(t *testing.T) {
	r := seeded(2)
	x, y, sender, outsider := newDevice(t, r, nil), newDevice(t, r, nil), newDevice(t, r, nil), newDevice(t, r, nil)
	rot, _ := rotate(t, r, sender, ReasonCreate, []*device{x, y, sender})
	b, _ := rot.Marshal()
	decode := func(room crdt.RoomID, from crdt.DeviceID) *Rotation {
		t.Helper()
		d, err := DecodeRotation(room, from, b)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	expect := func(name string, rot *Rotation, me DeviceKEM, want error) {
		t.Helper()
		if _, err := rot.Open(me); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}

	expect("outsider", decode(testRoom, sender.ID()), outsider.KEM(), ErrNoKey)
	// The outsider claims to be x, with its own KEM key.
	expect("outsider as x", decode(testRoom, sender.ID()), DeviceKEM{Device: x.ID(), Key: outsider.kem}, ErrDecrypt)

	// x's wrap relabelled as y's (and y's as x's): neither opens.
	swapped := decode(testRoom, sender.ID())
	ix := slices.IndexFunc(swapped.Wraps, func(w Wrap) bool { return w.Device == x.ID() })
	iy := slices.IndexFunc(swapped.Wraps, func(w Wrap) bool { return w.Device == y.ID() })
	swapped.Wraps[ix].Sealed, swapped.Wraps[iy].Sealed = swapped.Wraps[iy].Sealed, swapped.Wraps[ix].Sealed
	expect("x's wrap given to y", swapped, y.KEM(), ErrDecrypt)
	expect("y's wrap given to x", swapped, x.KEM(), ErrDecrypt)

	// Re-targeted to another room, another sender, another epoch.
	expect("other room", decode(crdt.IDOf([]byte("other room")), sender.ID()), x.KEM(), ErrDecrypt)
	expect("other sender", decode(testRoom, y.ID()), x.KEM(), ErrDecrypt)
	other, _ := rotate(t, r, sender, ReasonPeriodic, []*device{x, y, sender})
	retarget := decode(testRoom, sender.ID())
	retarget.Epoch = other.Epoch
	expect("other epoch", retarget, x.KEM(), ErrDecrypt)

	// A wrap to x's older KEM key: x's new key does not open it, whatever
	// seq it claims.
	newKEM, _ := GenerateKEMKey(r)
	expect("new KEM key, seq 1", decode(testRoom, sender.ID()), DeviceKEM{Device: x.ID(), Seq: 1, Key: newKEM}, ErrNoKey)
	expect("new KEM key, seq 0", decode(testRoom, sender.ID()), DeviceKEM{Device: x.ID(), Seq: 0, Key: newKEM}, ErrDecrypt)

	// A malicious rotator wraps to x a secret that is not the epoch's.
	wrong := bytes.Repeat([]byte{7}, SecretSize)
	ws, err := sealSecret(testRoom, rot.Epoch, wrong, sender.ID(), records(x, y, sender))
	if err != nil {
		t.Fatal(err)
	}
	evil := &Rotation{Room: testRoom, Sender: sender.ID(), Epoch: rot.Epoch, Reason: ReasonCreate, Wraps: ws}
	expect("secret not matching epoch id", evil, x.KEM(), ErrEpochMismatch)

	// Any flipped byte of the wrap fails.
	for _, at := range []int{0, encSize - 1, encSize, WrapSize - 1} {
		flipped := decode(testRoom, sender.ID())
		flipped.Wraps[ix].Sealed[at] ^= 1
		expect("flipped byte", flipped, x.KEM(), ErrDecrypt)
	}
}

func TestBacklinkChain(t *testing.T) {
	r := seeded(3)
	a, b, c := newDevice(t, r, nil), newDevice(t, r, nil), newDevice(t, r, nil)
	rot1, k1 := rotate(t, r, a, ReasonCreate, []*device{a, b})
	rot2, k2 := rotate(t, r, a, ReasonKick, []*device{a}, k1)
	rot3, k3 := rotate(t, r, a, ReasonPeriodic, []*device{a}, k2)
	_ = rot1

	// c (a new device) gets only E3, by a forward, and walks back to E1.
	fwd, err := Forward(a.ID(), k3, records(c))
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := fwd.Marshal()
	fwd, err = DecodeKeyForward(testRoom, a.ID(), fb)
	if err != nil {
		t.Fatal(err)
	}
	got3, err := fwd.Open(c.KEM())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		rot  *Rotation
		have *EpochKey
		want *EpochKey
	}{{rot3, got3, k2}, {rot2, k2, k1}} {
		b, _ := step.rot.Marshal()
		dec, err := DecodeRotation(testRoom, a.ID(), b)
		if err != nil {
			t.Fatal(err)
		}
		prev, err := dec.OpenBacklink(step.have)
		if err != nil {
			t.Fatal(err)
		}
		if len(prev) != 1 || !prev[0].Equal(step.want) {
			t.Fatalf("back-link of %s gave %v, want %v", dec.Epoch, prev, step.want)
		}
	}
	if prev, err := rot1.OpenBacklink(k1); err != nil || prev != nil {
		t.Fatalf("first epoch has no back-link: %v %v", prev, err)
	}
	if _, err := rot3.OpenBacklink(k2); !errors.Is(err, ErrNoKey) {
		t.Fatalf("back-link opened with another epoch's key: %v", err)
	}
	tampered := *rot3
	tampered.Backlink = bytes.Clone(rot3.Backlink)
	tampered.Backlink[30] ^= 1
	if _, err := tampered.OpenBacklink(k3); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered back-link: %v", err)
	}
	moved := *rot3
	moved.Sender = b.ID()
	if _, err := moved.OpenBacklink(k3); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("back-link under another sender: %v", err)
	}
	// A `joined` barrier has no back-link: nothing before it opens.
	barrier, kb := rotate(t, r, a, ReasonJoinBarrier, []*device{a, c})
	if prev, err := barrier.OpenBacklink(kb); err != nil || len(prev) != 0 {
		t.Fatalf("barrier back-link: %v %v", prev, err)
	}
}

func TestDecodeRotationStrict(t *testing.T) {
	r := seeded(4)
	ds := devices(t, r, 2)
	rot, _ := rotate(t, r, ds[0], ReasonCreate, ds)
	mutate := map[string]func(x *Rotation){
		"unsorted wraps":  func(x *Rotation) { x.Wraps[0], x.Wraps[1] = x.Wraps[1], x.Wraps[0] },
		"duplicate wrap":  func(x *Rotation) { x.Wraps[1] = x.Wraps[0] },
		"short wrap":      func(x *Rotation) { x.Wraps[0].Sealed = x.Wraps[0].Sealed[:100] },
		"no wraps":        func(x *Rotation) { x.Wraps = nil },
		"unknown reason":  func(x *Rotation) { x.Reason = "because" },
		"zero epoch":      func(x *Rotation) { x.Epoch = EpochID{} },
		"short back-link": func(x *Rotation) { x.Backlink = []byte{1, 2, 3} },
	}
	for name, m := range mutate {
		x := *rot
		x.Wraps = slices.Clone(rot.Wraps)
		m(&x)
		b, err := crdt.Marshal(&x) // bypass Marshal's validation
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRotation(testRoom, ds[0].ID(), b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: decoded (%v)", name, err)
		}
	}
	good, _ := rot.Marshal()
	if _, err := DecodeRotation("", ds[0].ID(), good); !errors.Is(err, ErrMalformed) {
		t.Errorf("rotation without room: %v", err)
	}
	if _, err := DecodeRotation(testRoom, ds[0].ID(), append(bytes.Clone(good), 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing byte: %v", err)
	}
	// An unknown field.
	type extra struct {
		Rotation
		X int `cbor:"x"`
	}
	b, _ := crdt.Marshal(extra{Rotation: *rot, X: 1})
	if _, err := DecodeRotation(testRoom, ds[0].ID(), b); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown field: %v", err)
	}
	if _, _, err := Rotate(r, RotateParams{Room: testRoom, Sender: ds[0].ID(), Reason: ReasonCreate, Recipients: records(ds[0], ds[0])}); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate recipient accepted: %v", err)
	}
}

func TestRotationSize(t *testing.T) {
	r := seeded(5)
	ds := devices(t, r, 100)
	_, old := rotate(t, r, ds[0], ReasonCreate, ds[:1])
	rot, _ := rotate(t, r, ds[0], ReasonKick, ds, old)
	b, _ := rot.Marshal()
	t.Logf("rotation for 100 devices with a back-link: %d bytes (%.0f per device)", len(b), float64(len(b))/100)
	if len(b) > 150_000 {
		t.Fatalf("rotation for 100 devices is %d bytes, goal < 150 KB", len(b))
	}
}
