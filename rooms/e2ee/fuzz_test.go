package e2ee

import (
	"bytes"
	"errors"
	"testing"
)

// Every decoder is fuzzed: it never panics, what it accepts re-encodes to
// the same bytes, and opening never yields a key that does not match its
// epoch ID.

func acceptableOpenErr(err error) bool {
	for _, e := range []error{ErrNoKey, ErrDecrypt, ErrEpochMismatch, ErrMalformed} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzRotation(f *testing.F) {
	r := seeded(60)
	a, b := newDevice(f, r, nil), newDevice(f, r, nil)
	_, k1 := rotate(f, r, a, ReasonCreate, []*device{a})
	rot, k2 := rotate(f, r, a, ReasonKick, []*device{a, b}, k1)
	good, _ := rot.Marshal()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(append(bytes.Clone(good), 0))
	for _, at := range []int{3, 40, len(good) / 2, len(good) - 3} {
		x := bytes.Clone(good)
		x[at] ^= 0x20
		f.Add(x)
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeRotation(testRoom, a.ID(), in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error not ErrMalformed: %v", err)
			}
			return
		}
		out, err := got.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes re-encode differently (%v)", err)
		}
		for _, d := range []*device{a, b} {
			k, err := got.Open(d.KEM())
			if err != nil {
				if !acceptableOpenErr(err) {
					t.Fatalf("open: %v", err)
				}
				continue
			}
			if k.ID() != got.Epoch {
				t.Fatal("opened a key that does not match the epoch")
			}
		}
		if got.Epoch == k2.ID() {
			prev, err := got.OpenBacklink(k2)
			if err != nil && !acceptableOpenErr(err) {
				t.Fatalf("back-link: %v", err)
			}
			for _, p := range prev {
				if id, _ := DeriveEpochID(testRoom, p.Secret()); id != p.ID() {
					t.Fatal("back-link yielded a key that does not match its epoch")
				}
			}
		}
	})
}

func FuzzKeyForward(f *testing.F) {
	r := seeded(61)
	a, b := newDevice(f, r, nil), newDevice(f, r, nil)
	_, k := rotate(f, r, a, ReasonCreate, []*device{a})
	fwd, err := Forward(a.ID(), k, records(b))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := fwd.Marshal()
	f.Add(good)
	x := bytes.Clone(good)
	x[len(x)-5] ^= 1
	f.Add(x)
	f.Add(good[:30])
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := DecodeKeyForward(testRoom, a.ID(), in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error not ErrMalformed: %v", err)
			}
			return
		}
		if out, err := got.Marshal(); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes re-encode differently (%v)", err)
		}
		if k, err := got.Open(b.KEM()); err == nil && k.ID() != got.Epoch {
			t.Fatal("opened a key that does not match the epoch")
		} else if err != nil && !acceptableOpenErr(err) {
			t.Fatalf("open: %v", err)
		}
	})
}

func FuzzKEMRecord(f *testing.F) {
	r := seeded(62)
	d := newDevice(f, r, nil)
	good, _ := d.rec.Marshal()
	f.Add(good)
	x := bytes.Clone(good)
	x[len(x)-70] ^= 1
	f.Add(x)
	f.Add(good[:100])
	f.Fuzz(func(t *testing.T, in []byte) {
		rec, err := DecodeKEMRecord(in)
		if err != nil {
			return
		}
		if out, err := rec.Marshal(); err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted bytes re-encode differently (%v)", err)
		}
		if rec.Verify() != nil {
			t.Fatal("accepted a record that does not verify")
		}
	})
}

// FuzzOpenMessage: Open never panics on any body, and accepts only what
// was sealed for exactly this header.
func FuzzOpenMessage(f *testing.F) {
	c := newChat(f)
	h := mustHeader(f, c)
	good, err := c.key.Seal(seeded(63), h, []byte("hello"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:SealOverhead])
	f.Add([]byte{})
	x := bytes.Clone(good)
	x[30] ^= 1
	f.Add(x)
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := c.key.Open(h, in)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("open: %v", err)
			}
			return
		}
		if !bytes.Equal(in, good) || string(p) != "hello" {
			t.Fatalf("forged body accepted: %q", p)
		}
	})
}
