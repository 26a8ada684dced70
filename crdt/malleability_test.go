package crdt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// Spec: docs/design.md §2 (one encoding per event) and §4 scenario 8.
func TestMalleability(t *testing.T) {
	id := testIdentity(t)
	create, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("room")})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := Sign(id, Draft{Room: create.ID, Type: "message", Seq: 1, Self: create.ID, Prev: []EventID{create.ID}, Auth: []EventID{create.ID}, Depth: 1, TS: 7, Body: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	withEnv := func(env []byte) []byte {
		b, err := encMode.Marshal(frame{Env: env, Body: ev.Body})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := Decode(withEnv(ev.Envelope)); err != nil {
		t.Fatalf("the original does not decode: %v", err)
	}

	t.Run("non-minimal integer in the envelope", func(t *testing.T) {
		// "v": 1 is a1 61 76 01 ...; write the 1 as 0x18 0x01.
		i := bytes.Index(ev.Envelope, []byte{0x61, 'v', 0x01})
		if i < 0 {
			t.Fatal("no v key")
		}
		env := append(append(append([]byte(nil), ev.Envelope[:i+2]...), 0x18, 0x01), ev.Envelope[i+3:]...)
		if _, err := Decode(withEnv(env)); !errors.Is(err, ErrNonCanonical) {
			t.Fatalf("got %v, want ErrNonCanonical", err)
		}
	})
	t.Run("reordered map keys", func(t *testing.T) {
		var m map[string]cbor.RawMessage
		if err := cbor.Unmarshal(ev.Envelope, &m); err != nil {
			t.Fatal(err)
		}
		// Encode the same pairs in reverse canonical order by hand.
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sortLengthFirst(keys)
		var env []byte
		env = append(env, 0xa0|byte(len(keys)))
		for i := len(keys) - 1; i >= 0; i-- {
			kb, _ := encMode.Marshal(keys[i])
			env = append(env, kb...)
			env = append(env, m[keys[i]]...)
		}
		if len(env) != len(ev.Envelope) || bytes.Equal(env, ev.Envelope) {
			t.Fatal("reordering went wrong")
		}
		if _, err := Decode(withEnv(env)); !errors.Is(err, ErrNonCanonical) {
			t.Fatalf("got %v, want ErrNonCanonical", err)
		}
	})
	t.Run("non-minimal length in the frame", func(t *testing.T) {
		f := ev.Encode()
		// The frame is 82 <env bstr> <body bstr>; body "hello" is 45 68 65 6c 6c 6f.
		// Re-encode the body's length as 0x58 0x05.
		if !bytes.HasSuffix(f, append([]byte{0x45}, ev.Body...)) {
			t.Fatal("unexpected frame layout")
		}
		bad := append(append(append([]byte(nil), f[:len(f)-6]...), 0x58, 0x05), ev.Body...)
		if _, err := Decode(bad); !errors.Is(err, ErrNonCanonical) {
			t.Fatalf("got %v, want ErrNonCanonical", err)
		}
	})
	t.Run("bit-flipped signature", func(t *testing.T) {
		i := bytes.Index(ev.Envelope, []byte("\x63sig\x58\x40"))
		if i < 0 {
			t.Fatal("no sig")
		}
		env := bytes.Clone(ev.Envelope)
		env[i+6+10] ^= 0x04
		if _, err := Decode(withEnv(env)); !errors.Is(err, ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
	t.Run("200 kB body", func(t *testing.T) {
		_, err := Sign(id, Draft{Room: create.ID, Type: "message", Prev: []EventID{create.ID}, Depth: 1, Body: []byte(strings.Repeat("x", 200_000))})
		if err == nil {
			t.Fatal("Sign accepted a 200 kB body")
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("sign: got %v, want ErrTooLarge", err)
		}
		b, err := encMode.Marshal(frame{Env: ev.Envelope, Body: []byte(strings.Repeat("x", 200_000))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("decode: got %v, want ErrTooLarge", err)
		}
	})
}

// sortLengthFirst sorts CBOR text keys the canonical way: shorter first, then bytewise.
func sortLengthFirst(keys []string) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && (len(keys[j]) < len(keys[j-1]) || len(keys[j]) == len(keys[j-1]) && keys[j] < keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}
