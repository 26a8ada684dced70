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
