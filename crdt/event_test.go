package crdt

import (
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
