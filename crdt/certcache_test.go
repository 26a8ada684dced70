package crdt

import (
	"errors"
	"testing"
)

// The signature cache is keyed by the envelope's digest, which covers the
// signature: a tampered copy of an envelope that verified before must still
// fail, whatever is cached.
func TestVerifyCacheIsKeyedByWholeEnvelope(t *testing.T) {
	id := testIdentity(t)
	ev, err := Sign(id, Draft{Type: TypeCreate, TS: 7, Body: []byte("cached")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decode(ev.Encode()); err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := UnmarshalCanonical(ev.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	env.Sig = append([]byte(nil), env.Sig...)
	env.Sig[0] ^= 1
	tampered, err := encMode.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	bad := &Event{Envelope: tampered, Body: ev.Body}
	if _, err := Decode(bad.Encode()); !errors.Is(err, ErrSignature) {
		t.Fatalf("tampered signature after a cached verify: err = %v, want ErrSignature", err)
	}
	ForgetVerified()
	if _, err := Decode(ev.Encode()); err != nil {
		t.Fatalf("after ForgetVerified: %v", err)
	}
}

// Decoding the same envelope twice gives the same immutable event while it
// is in use; with and without a body they stay distinct.
func TestDecodeInternsEvents(t *testing.T) {
	id := testIdentity(t)
	ev, err := Sign(id, Draft{Type: TypeCreate, TS: 8, Body: []byte("interned")})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Decode(ev.Encode())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Decode(ev.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("two decodes of one envelope gave two events")
	}
	c, err := DecodeEnvelope(ev.Envelope, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c == a || c.Body != nil || a.Body == nil {
		t.Errorf("bodyless decode shares with the full one (same %v, bodies %q %q)", c == a, c.Body, a.Body)
	}
}

// Ordinary events stop at MaxEventSize; events that carry keys for every
// member device may grow to MaxKeyEventSize, on signing and on decoding.
func TestSizeLimitsByType(t *testing.T) {
	id := testIdentity(t)
	room, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("r")})
	if err != nil {
		t.Fatal(err)
	}
	draft := func(typ string, n int) Draft {
		return Draft{Room: room.ID, Type: typ, Prev: []EventID{room.ID}, Auth: []EventID{room.ID}, Depth: 1, TS: 2, Body: make([]byte, n)}
	}
	if _, err := Sign(id, draft("message", MaxEventSize)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a message of %d bytes: err = %v, want ErrTooLarge", MaxEventSize, err)
	}
	big, err := Sign(id, draft("rotate", 200<<10))
	if err != nil {
		t.Fatalf("a 200 KiB rotation: %v", err)
	}
	if _, err := Decode(big.Encode()); err != nil {
		t.Fatalf("decode a 200 KiB rotation: %v", err)
	}
	if _, err := Sign(id, draft("rotate", MaxKeyEventSize)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a rotation of %d bytes: err = %v, want ErrTooLarge", MaxKeyEventSize, err)
	}
	// A large body under an ordinary type is refused by decoding too,
	// whoever signed it.
	disguised := &Event{Envelope: big.Envelope, Body: big.Body}
	var env envelope
	if err := UnmarshalCanonical(disguised.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	env.Type, env.Sig = "message", nil
	unsigned, _ := encMode.Marshal(&env)
	env.Sig = id.Device.Sign(append([]byte(signTag), unsigned...))
	b, _ := encMode.Marshal(&env)
	if _, err := Decode((&Event{Envelope: b, Body: big.Body}).Encode()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 200 KiB message: err = %v, want ErrTooLarge", err)
	}
}
