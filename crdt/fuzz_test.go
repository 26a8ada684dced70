package crdt

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to the
// same bytes with the same ID (one encoding per event; docs/design.md §2,
// the malleability rule).
func FuzzDecode(f *testing.F) {
	id := testIdentity(f)
	create, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("room")})
	if err != nil {
		f.Fatal(err)
	}
	sk := "alice"
	msg, err := Sign(id, Draft{Room: create.ID, Type: "member", StateKey: &sk, Seq: 1, Self: create.ID, Prev: []EventID{create.ID}, Auth: []EventID{create.ID}, Depth: 1, TS: 2, Epoch: []byte("e1"), Body: []byte{}})
	if err != nil {
		f.Fatal(err)
	}
	withLen, err := Sign(id, Draft{Room: create.ID, Type: "message", Seq: 2, Self: msg.ID, Prev: []EventID{msg.ID}, Auth: []EventID{create.ID}, Depth: 2, TS: 3, Body: []byte("counted"), SignBodyLen: true})
	if err != nil {
		f.Fatal(err)
	}
	for _, ev := range []*Event{create, msg, withLen} {
		good := ev.Encode()
		f.Add(good)
		f.Add(ev.WithoutBody().Encode())
		f.Add(good[:len(good)/2])              // truncated
		f.Add(append(bytes.Clone(good), 0x00)) // trailing byte
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0x10
		f.Add(flipped)
	}
	f.Add([]byte{})
	f.Add([]byte{0x82, 0x40, 0x40})
	f.Add([]byte{0x82, 0xf6, 0xf6})
	f.Add([]byte{0x9f, 0xff}) // indefinite length
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		again := ev.Encode()
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes re-encode differently:\n in  %x\n out %x", b, again)
		}
		ev2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if ev2.ID != ev.ID || ev.ID != IDOf(ev.Envelope) {
			t.Fatalf("id changed: %s, %s", ev.ID, ev2.ID)
		}
	})
}

// FuzzEnvelopeFast: whatever envelope bytes parseEnvelopeFast accepts, the
// strict decoder (UnmarshalCanonical) accepts too, with the same envelope;
// the envelopes Sign makes take the fast path.
func FuzzEnvelopeFast(f *testing.F) {
	id := testIdentity(f)
	create, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("room")})
	if err != nil {
		f.Fatal(err)
	}
	sk := "alice"
	member, err := Sign(id, Draft{Room: create.ID, Type: "member", StateKey: &sk, Seq: 1, Self: create.ID, Prev: []EventID{create.ID}, Auth: []EventID{create.ID}, Depth: 1, TS: -2, Epoch: []byte("e1"), Body: []byte{}})
	if err != nil {
		f.Fatal(err)
	}
	withLen, err := Sign(id, Draft{Room: create.ID, Type: "message", Seq: 1 << 40, Self: member.ID, Prev: []EventID{create.ID, member.ID}, Auth: []EventID{create.ID}, Depth: 300, TS: 1 << 33, Body: []byte("counted"), SignBodyLen: true})
	if err != nil {
		f.Fatal(err)
	}
	for _, ev := range []*Event{create, member, withLen} {
		var env envelope
		if !parseEnvelopeFast(ev.Envelope, &env) {
			f.Fatalf("a %s envelope made by Sign misses the fast path", ev.Type)
		}
		f.Add(ev.Envelope)
		f.Add(ev.Envelope[:len(ev.Envelope)-1])
		f.Add(append(bytes.Clone(ev.Envelope), 0))
		for _, at := range []int{0, 1, 2, 5, 9, 20, 40, 80, len(ev.Envelope) / 2} {
			b := bytes.Clone(ev.Envelope)
			b[at] ^= 0x01
			f.Add(b)
			b[at] ^= 0x21
			f.Add(b)
		}
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x61, 'v', 0x18, 0x01}) // a head longer than needed
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, ref envelope
		if !parseEnvelopeFast(b, &fast) {
			return
		}
		if err := UnmarshalCanonical(b, &ref); err != nil {
			t.Fatalf("%x: the fast path accepts what the strict decoder refuses: %v", b, err)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("%x: fast path %+v, strict decoder %+v", b, fast, ref)
		}
	})
}
