package crdt

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

func testIdentity(t testing.TB) *Identity {
	t.Helper()
	master, err := SecretKeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := SecretKeyFromSeed([]byte(strings.Repeat("d", 32)))
	return &Identity{User: master.Public(), Device: dev, Cert: CertifyDevice(master, dev.Public())}
}

func TestSignDecodeRoundTrip(t *testing.T) {
	id := testIdentity(t)
	create, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("params")})
	if err != nil {
		t.Fatal(err)
	}
	if create.Room != create.ID {
		t.Fatalf("create room %v != id %v", create.Room, create.ID)
	}
	if !strings.HasPrefix(create.ID.String(), "bafyrei") {
		t.Fatalf("id %s is not a dag-cbor sha2-256 CIDv1", create.ID)
	}
	want, err := cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: mh.SHA2_256, MhLength: -1}.Sum(create.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := create.ID.Cid(); !got.Equals(want) {
		t.Fatalf("id %s, go-cid computes %s", got, want)
	}
	msg, err := Sign(id, Draft{Room: create.ID, Type: "message", Seq: 1, Self: create.ID, Prev: []EventID{create.ID}, Auth: []EventID{create.ID}, Depth: 1, TS: 2, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(msg.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != msg.ID || string(got.Body) != "hi" || got.Room != create.ID || got.Depth != 1 {
		t.Fatalf("round trip changed the event: %+v", got)
	}
	parsed, err := ParseID(msg.ID.String())
	if err != nil || parsed != msg.ID {
		t.Fatalf("ParseID(%s) = %v, %v", msg.ID, parsed, err)
	}
	// A purged body still verifies.
	if _, err := Decode(msg.WithoutBody().Encode()); err != nil {
		t.Fatalf("purged body: %v", err)
	}
	// A changed body does not.
	bad := *msg
	bad.Body = []byte("ho")
	if _, err := Decode(bad.Encode()); !errors.Is(err, ErrBodyHash) {
		t.Fatalf("changed body: %v", err)
	}
}

func TestSecretKeyNeverPrints(t *testing.T) {
	id := testIdentity(t)
	for _, s := range []string{id.Device.String(), id.Device.GoString()} {
		if strings.Contains(s, string(id.Device.Seed())) {
			t.Fatal("secret in output")
		}
	}
}

// TestBodyLen: an event signed with its body length (blen) keeps it when
// its body is purged, so its SignedSize is the same with or without the
// body; an event signed without it is encoded as before (no blen key); a
// length that no body with the signed hash has leaves the event without
// its body, on every node alike.
func TestBodyLen(t *testing.T) {
	id := testIdentity(t)
	create, err := Sign(id, Draft{Type: TypeCreate, TS: 1, Body: []byte("room")})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("twenty-one bytes long")
	d := Draft{Room: create.ID, Type: "message", Prev: []EventID{create.ID}, Auth: []EventID{create.ID}, Depth: 1, TS: 2, Body: body}
	plain, err := Sign(id, d)
	if err != nil {
		t.Fatal(err)
	}
	if plain.HasBodyLen || bytes.Contains(plain.Envelope, []byte("blen")) {
		t.Fatalf("an event signed without SignBodyLen carries blen: %x", plain.Envelope)
	}
	d.SignBodyLen = true
	ev, err := Sign(id, d)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Decode(ev.Encode())
	if err != nil {
		t.Fatal(err)
	}
	purged, err := Decode(ev.WithoutBody().Encode())
	if err != nil {
		t.Fatal(err)
	}
	if !whole.HasBodyLen || whole.BodyLen != uint64(len(body)) || whole.SignedSize() != int64(whole.Size()) ||
		purged.Body != nil || purged.SignedSize() != whole.SignedSize() {
		t.Fatalf("blen %v %d, signed sizes %d (whole, size %d) and %d (purged)", whole.HasBodyLen, whole.BodyLen, whole.SignedSize(), whole.Size(), purged.SignedSize())
	}

	// An author that signs a wrong length: the body is dropped, the
	// envelope stands.
	n := uint64(len(body) + 1)
	sum := sha256.Sum256(body)
	r, dev := link(create.ID), id.Device.Public()
	env := envelope{V: Version, Room: &r, Type: "message", User: id.User[:], Device: dev[:], Cert: id.Cert,
		Prev: toLinks(d.Prev), Auth: toLinks(d.Auth), Depth: 1, TS: 2, BodyHash: sum[:], BLen: &n}
	unsigned, err := encMode.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	env.Sig = id.Device.Sign(append([]byte(signTag), unsigned...))
	envBytes, err := encMode.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	liar, err := DecodeEnvelope(envBytes, body)
	if err != nil {
		t.Fatal(err)
	}
	if liar.Body != nil || liar.SignedSize() != int64(len(envBytes))+int64(n) {
		t.Fatalf("a body whose length differs from blen was kept: %q, signed size %d", liar.Body, liar.SignedSize())
	}
}
